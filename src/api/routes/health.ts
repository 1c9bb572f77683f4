import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { HealthCheck } from '../../observability/health';
import type { BuildWatch } from '../../temporal/build-watch';
import type { ApiEnv } from './decisions';

const Check = z.object({ ok: z.boolean(), detail: z.string() });
const HealthSchema = z
  .object({
    status: z.enum(['ok', 'degraded', 'unavailable']),
    checks: z.object({
      temporal: Check,
      redis: Check,
      workers: Check.optional().openapi({
        description:
          'Whether a worker of the current build has polled lately (WORKER_GONE_AFTER_SECONDS); when none has, the detail names the build and what to run, and creates answer 503',
      }),
    }),
  })
  .openapi('Health');

/**
 * GET /health and /ready: 200 when Temporal and Redis answer, 503 naming the one that does not.
 * No live worker of the current build answers 200 `degraded`, not 503: every API process shares
 * that state, and a load balancer taking them all out of rotation would turn away the reads,
 * cancels and status documents that still work (and explain it); creates answer 503 instead.
 */
export function registerHealthRoutes(
  app: OpenAPIHono<ApiEnv>,
  deps: { health: HealthCheck; workers?: Pick<BuildWatch, 'workersCheck'> | null },
): void {
  const route = (path: string, operationId: string, summary: string) =>
    createRoute({
      method: 'get',
      path,
      operationId,
      tags: ['Service'],
      summary,
      responses: {
        200: {
          description:
            'Both answer; `degraded` when no worker of the current build has polled lately (creates answer 503 meanwhile)',
          content: { 'application/json': { schema: HealthSchema } },
        },
        503: {
          description: 'One or both do not answer',
          content: { 'application/json': { schema: HealthSchema } },
        },
      },
    });
  const handler = async (c: Context) => {
    const [report, workers] = await Promise.all([deps.health(), deps.workers?.workersCheck()]);
    const checks = { ...report.checks, ...(workers ? { workers } : {}) };
    if (!report.ok) return c.json({ status: 'unavailable' as const, checks }, 503);
    const status = workers?.ok === false ? ('degraded' as const) : ('ok' as const);
    return c.json({ status, checks }, 200);
  };
  // The seed's /health already reports both dependencies; /ready is the same check under the
  // name load balancers and orchestrators expect for readiness.
  app.openapi(
    route('/health', 'getHealth', 'Whether Temporal and Redis answer, and the workers'),
    handler,
  );
  app.openapi(
    route('/ready', 'getReadiness', 'Readiness: Temporal and Redis answer; the workers'),
    handler,
  );
}
