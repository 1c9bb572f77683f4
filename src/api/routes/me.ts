import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { SCOPES } from '../middleware/auth';
import { ProblemSchema, type ApiEnv } from './decisions';

const KeySchema = z
  .object({
    principal: z.string().openapi({
      description:
        "The key's id: the name API_KEYS gives it, or an id derived from it; `anonymous` when the API runs without authentication",
      example: 'billing-team',
    }),
    scopes: z.array(z.enum(SCOPES)).openapi({
      description: 'What the key may do; decisions:admin implies the others',
    }),
  })
  .openapi('Key');

/**
 * GET /me: the calling key's id and scopes, so that a client (the decision page) can offer only
 * what the key may do, and check a key before keeping it. It tells the key's holder nothing the
 * decisions it owns do not (their `owner`).
 */
export function registerMeRoute(app: OpenAPIHono<ApiEnv>): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/me',
      operationId: 'getCurrentKey',
      tags: ['Keys'],
      summary: 'The calling API key: its id and scopes',
      security: [{ bearer: [] }],
      responses: {
        200: {
          description: 'The key',
          content: { 'application/json': { schema: KeySchema } },
        },
        401: {
          description: 'No valid API key',
          content: { 'application/problem+json': { schema: ProblemSchema } },
        },
        429: {
          description: 'Rate limited; see Retry-After',
          content: { 'application/problem+json': { schema: ProblemSchema } },
        },
      },
    }),
    (c) =>
      c.json(
        {
          principal: c.get('principal'),
          scopes: SCOPES.filter((scope) => c.get('scopes').has(scope)),
        },
        200,
      ),
  );
}
