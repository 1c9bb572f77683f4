import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { requireScope } from '../middleware/auth';
import { HTTPException } from 'hono/http-exception';
import { ProblemSchema, type ApiEnv } from './decisions';

const SecretSchema = z
  .object({
    secret: z.string().openapi({
      description:
        "The `whsec_…` secret that signs this key's principal's webhook deliveries, to verify them with (Standard Webhooks)",
      example: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    }),
    principal: z.string().openapi({
      description: "The principal the secret belongs to (the calling key's id)",
      example: 'billing-team',
    }),
  })
  .openapi('WebhookSecret');

const problemOf = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: ProblemSchema } },
});

/**
 * GET /webhooks/secret: the secret the caller's deliveries are signed with, derived from
 * WEBHOOK_SECRET and the caller's principal, so that each tenant verifies its own deliveries and
 * no other's. For keys that may create decisions (and so webhooks).
 */
export function registerWebhookRoutes(
  app: OpenAPIHono<ApiEnv>,
  deps: { secretOf: ((principal: string) => string) | null },
): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/webhooks/secret',
      operationId: 'getWebhookSecret',
      tags: ['Webhooks'],
      summary: "The secret that signs the caller's webhook deliveries",
      description:
        "Each principal's deliveries are signed with a secret of its own, derived from the server's WEBHOOK_SECRET and the principal's name: a receiver that verifies with it accepts deliveries of this principal's decisions only.",
      security: [{ bearer: [] }],
      middleware: [requireScope('decisions:write')],
      responses: {
        200: {
          description: "The caller's signing secret",
          headers: { 'Cache-Control': { description: '`no-store`', schema: { type: 'string' } } },
          content: { 'application/json': { schema: SecretSchema } },
        },
        401: problemOf('No valid API key'),
        403: problemOf('The API key lacks the decisions:write scope'),
        404: problemOf('This server has no WEBHOOK_SECRET: it delivers no webhooks'),
        429: problemOf('Rate limited; see Retry-After'),
      },
    }),
    (c) => {
      if (!deps.secretOf) {
        throw new HTTPException(404, {
          message: 'This server delivers no webhooks: it has no WEBHOOK_SECRET to sign with',
        });
      }
      const principal = c.get('principal');
      c.header('Cache-Control', 'no-store');
      return c.json({ secret: deps.secretOf(principal), principal }, 200);
    },
  );
}
