import type { Context, MiddlewareHandler } from 'hono';
import type { RedisClient } from '../../projection/redis-client';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { problem, problemResponse } from '../problem';
import type { AuthVariables } from './auth';
import { addressBucket, clientAddress } from './client-address';

/**
 * A limiter counted in Redis, so that the limit holds across API replicas, with an in-memory
 * limiter of the same size standing in while Redis does not answer: the limit protects the
 * service, and a Redis outage must neither lift it nor stop requests.
 */
function limiter(redis: RedisClient, keyPrefix: string, points: number): RateLimiterRedis {
  return new RateLimiterRedis({
    storeClient: redis,
    keyPrefix,
    points,
    duration: 60,
    insuranceLimiter: new RateLimiterMemory({ keyPrefix, points, duration: 60 }),
  });
}

function tooMany(c: Context, limit: number, msBeforeNext: number, what: string) {
  const seconds = Math.max(1, Math.ceil(msBeforeNext / 1000));
  c.header('Retry-After', String(seconds));
  c.header('RateLimit-Limit', String(limit));
  c.header('RateLimit-Remaining', '0');
  return problemResponse(
    c,
    problem(429, `More than ${limit} ${what} a minute; retry in ${seconds} s`, {
      instance: c.req.path,
    }),
  );
}

/**
 * Limits each principal (API key, or the client's address without auth) to `perMinute` requests.
 * 429 with Retry-After past it.
 */
export function rateLimit(deps: {
  redis: RedisClient;
  prefix: string;
  perMinute: number;
  trustProxy?: boolean;
  onError?: (err: unknown) => void;
}): MiddlewareHandler<{ Variables: AuthVariables }> {
  const requests = limiter(deps.redis, `${deps.prefix}ratelimit`, deps.perMinute);
  return async (c, next) => {
    const principal = c.get('principal');
    const who =
      principal && principal !== 'anonymous'
        ? principal
        : addressBucket(clientAddress(c, deps.trustProxy));
    try {
      const res = await requests.consume(who);
      c.header('RateLimit-Limit', String(deps.perMinute));
      c.header('RateLimit-Remaining', String(res.remainingPoints));
    } catch (err) {
      if (err instanceof RateLimiterRes) {
        return tooMany(c, deps.perMinute, err.msBeforeNext, 'requests');
      }
      deps.onError?.(err);
    }
    return next();
  };
}

/** Counts failed attempts per client address; past the limit the address is refused a while. */
export interface AttemptLimiter {
  /**
   * Counts a failed attempt from the address (an IPv6 address by its /64) and checks it against
   * the limit in one atomic step, so that attempts made at once cannot all pass a check made
   * before any is counted: 0 when the attempt is within the limit, or else how long, in ms, the
   * address must wait.
   */
  fail(address: string): Promise<number>;
  refuse(c: Context, msBeforeNext: number): Response;
}

export function attemptLimiter(deps: {
  redis: RedisClient;
  prefix: string;
  perMinute: number;
  onError?: (err: unknown) => void;
}): AttemptLimiter {
  const failures = limiter(deps.redis, `${deps.prefix}authfail`, deps.perMinute);
  return {
    async fail(address) {
      try {
        // One Lua script: the count goes up and is compared with the limit in the same step.
        await failures.consume(addressBucket(address));
        return 0;
      } catch (err) {
        if (err instanceof RateLimiterRes) return Math.max(1, err.msBeforeNext);
        deps.onError?.(err);
        return 0;
      }
    },
    refuse: (c, ms) => tooMany(c, deps.perMinute, ms, 'failed authentications'),
  };
}
