import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { HealthCheck } from '../../observability/health';
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
  const route = (path: string, summary: string) =>
    createRoute({
      method: 'get',
      path,
      summary,
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
    });
  const handler = async (c: Context) => {
    const report = await deps.health();
    if (report.ok) return c.json({ status: 'ok' as const, checks: report.checks }, 200);
    return c.json({ status: 'unavailable' as const, checks: report.checks }, 503);
  };
  // The seed's /health already reports both dependencies; /ready is the same check under the
  // name load balancers and orchestrators expect for readiness.
  app.openapi(route('/health', 'Whether Temporal and Redis answer'), handler);
  app.openapi(route('/ready', 'Readiness: Temporal and Redis answer'), handler);
}
