import type { MiddlewareHandler } from 'hono';
import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { problem, problemResponse } from '../problem';
import type { AuthVariables } from './auth';

/**
 * Limits each principal (API key, or the connection's address without auth) to `perMinute` requests,
 * counted in Redis so the limit holds across API replicas. 429 with Retry-After past it. When
 * Redis does not answer, requests pass: the limit protects the service, it must not stop it.
 */
export function rateLimit(deps: {
  redis: Redis;
  prefix: string;
  perMinute: number;
  onError?: (err: unknown) => void;
}): MiddlewareHandler<{ Variables: AuthVariables }> {
  const limiter = new RateLimiterRedis({
    storeClient: deps.redis,
    keyPrefix: `${deps.prefix}ratelimit`,
    points: deps.perMinute,
    duration: 60,
  });
  return async (c, next) => {
    const principal = c.get('principal');
    // The socket's address, not X-Forwarded-For: a client could send a new one with each request.
    const who =
      principal && principal !== 'anonymous' ? principal : (clientAddress(c.env) ?? 'unknown');
    try {
      const res = await limiter.consume(who);
      c.header('RateLimit-Limit', String(deps.perMinute));
      c.header('RateLimit-Remaining', String(res.remainingPoints));
    } catch (err) {
      if (err instanceof RateLimiterRes) {
        const seconds = Math.max(1, Math.ceil(err.msBeforeNext / 1000));
        c.header('Retry-After', String(seconds));
        c.header('RateLimit-Limit', String(deps.perMinute));
        c.header('RateLimit-Remaining', '0');
        return problemResponse(
          c,
          problem(429, `More than ${deps.perMinute} requests a minute; retry in ${seconds} s`, {
            instance: c.req.path,
          }),
        );
      }
      deps.onError?.(err);
    }
    return next();
  };
}

function clientAddress(env: unknown): string | undefined {
  const incoming = (env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)
    ?.incoming;
  return incoming?.socket?.remoteAddress;
}
