import { Redis } from 'ioredis';

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
