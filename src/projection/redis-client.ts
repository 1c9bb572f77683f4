import { Redis } from 'ioredis';

/**
 * A Redis client that fails fast while Redis is away instead of queueing commands for minutes:
 * Temporal retries projection writes, and the API falls back to Temporal for reads.
 */
export function createRedis(url: string): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    lazyConnect: false,
  });
}
