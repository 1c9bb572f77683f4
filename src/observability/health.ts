import type { Connection } from '@temporalio/client';
import type { RedisClient } from '../projection/redis-client';

export interface HealthReport {
  ok: boolean;
  checks: Record<'temporal' | 'redis', { ok: boolean; detail: string }>;
}

export type HealthCheck = () => Promise<HealthReport>;

async function probe(what: () => Promise<unknown>, timeoutMs: number): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      what(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Checks that Temporal and Redis both answer, each within the timeout. The report says only
 * which answers: addresses and error text go to `onFailure` (the log), not to whoever asks.
 */
export function createHealthCheck(deps: {
  connection: Connection;
  redis: RedisClient;
  timeoutMs?: number;
  onFailure?: (dependency: 'temporal' | 'redis', error: string) => void;
}): HealthCheck {
  const timeoutMs = deps.timeoutMs ?? 2000;
  return async () => {
    const [temporal, redis] = await Promise.all([
      probe(
        () =>
          deps.connection.withDeadline(Date.now() + timeoutMs, () =>
            deps.connection.workflowService.getSystemInfo({}),
          ),
        timeoutMs,
      ),
      probe(() => deps.redis.ping(), timeoutMs),
    ]);
    if (temporal !== null) deps.onFailure?.('temporal', temporal);
    if (redis !== null) deps.onFailure?.('redis', redis);
    const check = (error: string | null) => ({
      ok: error === null,
      detail: error === null ? 'answering' : 'not answering',
    });
    return {
      ok: temporal === null && redis === null,
      checks: { temporal: check(temporal), redis: check(redis) },
    };
  };
}
