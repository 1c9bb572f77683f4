import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { inject, type ProvidedContext } from 'vitest';
import { DecisionProjection } from '../../src/projection/redis-projection';

type Provided = keyof ProvidedContext;

/** What a global setup provided; a test of a tier without that setup fails saying so. */
function provided<K extends Provided>(key: K): ProvidedContext[K] {
  const value = inject(key);
  if (value === undefined) {
    throw new Error(
      `${key} is not provided in this tier: a test that needs servers belongs in the integration or system tier (vitest.config.mts)`,
    );
  }
  return value;
}

/** Addresses of the services the global setups started or found, and the workflow bundle. */
export const services = {
  get temporalAddress() {
    return provided('temporalAddress');
  },
  get redisUrl() {
    return provided('redisUrl');
  },
  get workflowBundlePath() {
    return provided('workflowBundlePath');
  },
  get temporalCliPath() {
    return provided('temporalCliPath');
  },
};

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** A Redis client and a projection under a key prefix of the test's own; `cleanup` deletes it. */
export function testProjection(ttlSeconds = 3600) {
  const prefix = `${uniqueName('test')}:`;
  const redis = new Redis(services.redisUrl, { maxRetriesPerRequest: 1 });
  const projection = new DecisionProjection(redis, { prefix, ttlSeconds });
  return {
    redis,
    prefix,
    projection,
    async cleanup() {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    },
  };
}

export { waitFor } from './wait';

/** A Redis client that is never ready: nothing listens on port 1, and it queues nothing. */
export const redisAway = () =>
  new Redis('redis://127.0.0.1:1', {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
  });
