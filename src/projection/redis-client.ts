import { Redis } from 'ioredis';
import type { WorkerConfig } from '../config';
import { DecisionProjection } from './redis-projection';

/**
 * A Redis client that fails fast while Redis is away or hung instead of queueing or waiting for
 * minutes: every command has `commandTimeoutMs` and one retry. Temporal retries projection writes,
 * the API falls back to Temporal for reads, and the response store and the budget ledger go on
 * without it.
 */
export function createRedis(url: string, commandTimeoutMs = 1000): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    commandTimeout: commandTimeoutMs,
    lazyConnect: false,
  });
}

/** The Redis client and the projection on it, as the configuration names them. */
export function createProjection(
  config: Pick<
    WorkerConfig,
    'REDIS_URL' | 'REDIS_COMMAND_TIMEOUT_MS' | 'REDIS_KEY_PREFIX' | 'DECISION_TTL_SECONDS'
  >,
): { redis: Redis; projection: DecisionProjection } {
  const redis = createRedis(config.REDIS_URL, config.REDIS_COMMAND_TIMEOUT_MS);
  const projection = new DecisionProjection(redis, {
    prefix: config.REDIS_KEY_PREFIX,
    ttlSeconds: config.DECISION_TTL_SECONDS,
  });
  return { redis, projection };
}
