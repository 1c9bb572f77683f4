import type { Context, MiddlewareHandler } from 'hono';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { problem, problemResponse } from '../problem';
import type { AuthVariables } from './auth';
import { clientAddress } from './client-address';

/**
 * A limiter counted in Redis, so that the limit holds across API replicas, with an in-memory
 * limiter of the same size standing in while Redis does not answer: the limit protects the
 * service, and a Redis outage must neither lift it nor stop requests.
 */
function limiter(redis: Redis, keyPrefix: string, points: number): RateLimiterRedis {
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
  redis: Redis;
  prefix: string;
  perMinute: number;
  trustProxy?: boolean;
  onError?: (err: unknown) => void;
}): MiddlewareHandler<{ Variables: AuthVariables }> {
  const requests = limiter(deps.redis, `${deps.prefix}ratelimit`, deps.perMinute);
  return async (c, next) => {
    const principal = c.get('principal');
    const who =
      principal && principal !== 'anonymous' ? principal : clientAddress(c, deps.trustProxy);
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

const CLEARED_FOR_MS = 1000;
const CLEARED_KEPT = 10_000;

/** Counts failed attempts per client address; past the limit the address is refused a while. */
export interface AttemptLimiter {
  /**
   * How long the address must still wait, in ms, or 0 when it may try. With a valid key, an
   * address found unblocked is not asked about again for a second (see attemptLimiter).
   */
  blocked(address: string, options?: { validKey?: boolean }): Promise<number>;
  count(address: string): Promise<void>;
  refuse(c: Context, msBeforeNext: number): Response;
}

export function attemptLimiter(deps: {
  redis: Redis;
  prefix: string;
  perMinute: number;
  onError?: (err: unknown) => void;
}): AttemptLimiter {
  const failures = limiter(deps.redis, `${deps.prefix}authfail`, deps.perMinute);
  // Addresses that presented a valid key and were not blocked, until when that holds: a client
  // polling with its key costs Redis one look a second, not one a request. Only a valid key's
  // request fills it, so a guesser's first right guess is still checked against Redis.
  const cleared = new Map<string, number>();
  return {
    async blocked(address, options = {}) {
      const now = Date.now();
      if (options.validKey && (cleared.get(address) ?? 0) > now) return 0;
      const res = await failures.get(address).catch((err: unknown) => {
        deps.onError?.(err);
        return null;
      });
      const wait = res && res.consumedPoints >= deps.perMinute ? Math.max(1, res.msBeforeNext) : 0;
      if (options.validKey && wait === 0) {
        if (cleared.size >= CLEARED_KEPT) cleared.clear();
        cleared.set(address, now + CLEARED_FOR_MS);
      }
      return wait;
    },
    async count(address) {
      await failures.penalty(address, 1).catch((err: unknown) => deps.onError?.(err));
    },
    refuse: (c, ms) => tooMany(c, deps.perMinute, ms, 'failed authentications'),
  };
}
