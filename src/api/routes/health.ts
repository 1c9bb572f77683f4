import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { HealthCheck } from '../health';
import type { ApiEnv } from './decisions';

const Check = z.object({ ok: z.boolean(), detail: z.string() });
const HealthSchema = z
  .object({
    status: z.enum(['ok', 'unavailable']),
    checks: z.object({ temporal: Check, redis: Check }),
  })
  .openapi('Health');

/** GET /health: 200 when Temporal and Redis answer, 503 naming the one that does not. */
export function registerHealthRoutes(
  app: OpenAPIHono<ApiEnv>,
  deps: { health: HealthCheck },
): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/health',
      summary: 'Whether Temporal and Redis answer',
      responses: {
        200: {
          description: 'Both answer',
          content: { 'application/json': { schema: HealthSchema } },
        },
        503: {
          description: 'One or both do not answer',
          content: { 'application/json': { schema: HealthSchema } },
        },
      },
    }),
    async (c) => {
      const report = await deps.health();
      if (report.ok) return c.json({ status: 'ok' as const, checks: report.checks }, 200);
      return c.json({ status: 'unavailable' as const, checks: report.checks }, 503);
    },
  );
}
