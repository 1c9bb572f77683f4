import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { inject } from 'vitest';
import { DecisionProjection } from '../../src/projection/redis-projection';

/** Addresses of the services the global setup started or found. */
export const services = {
  get temporalAddress() {
    return inject('temporalAddress');
  },
  get redisUrl() {
    return inject('redisUrl');
  },
  get workflowBundlePath() {
    return inject('workflowBundlePath');
  },
  get temporalCliPath() {
    return inject('temporalCliPath');
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
