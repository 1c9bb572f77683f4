import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/common';
import type { Redis } from 'ioredis';
import {
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
  type RateLimiterAbstract,
} from 'rate-limiter-flexible';
import { estimateInputTokens, unbilled } from './budget';
import { ModelErrorType } from './errors';
import { receivedUsage, type LanguageModel } from './model';

/** The failure of a call that would have waited for the provider's limit past its deadline. */
export const PROVIDER_LIMIT_WAIT = 'ProviderLimitWait';

export interface ProviderLimits {
  /** Requests a minute to one provider and model; 0: no limit. */
  requestsPerMinute: number;
  /** Tokens a minute (input and output); 0: no limit. */
  tokensPerMinute: number;
}

export interface ProviderLimiterOptions {
  /** The limit's window in whole seconds: 60, the providers' minute; tests use less. */
  windowSeconds?: number;
  /** Told each time Redis does not answer: the call is then limited by this worker alone. */
  onStoreError?: (err: unknown) => void;
  /** Told how long each call waited for its share, 0 for one that went at once. */
  onWaited?: (key: string, ms: number) => void;
}

/** What a call took from the limit: corrected once it is known what it used. */
export interface Grant {
  /** Replaces the call's reserved tokens by `used`; once. */
  settle(used: number): Promise<void>;
  /** Gives back the request and its tokens: the call was not sent, or not billed. */
  release(): Promise<void>;
}

/** One way of counting (Redis, or this process's memory while Redis is away). */
interface Counters {
  requests: RateLimiterAbstract | null;
  tokens: RateLimiterAbstract | null;
  /** A key held here (`block`) holds back every call until it expires: a 429's Retry-After. */
  hold: RateLimiterAbstract;
}

function counters(
  make: (keyPrefix: string, points: number, duration: number) => RateLimiterAbstract,
  prefix: string,
  limits: ProviderLimits,
  windowSeconds: number,
): Counters {
  return {
    requests:
      limits.requestsPerMinute > 0
        ? make(`${prefix}requests`, limits.requestsPerMinute, windowSeconds)
        : null,
    tokens:
      limits.tokensPerMinute > 0
        ? make(`${prefix}tokens`, limits.tokensPerMinute, windowSeconds)
        : null,
    hold: make(`${prefix}hold`, 1, 1),
  };
}

/** How long calls to `key` are held back still (a 429's Retry-After), in ms; 0 when they are not. */
async function heldFor(c: Counters, key: string): Promise<number> {
  const held = await c.hold.get(key);
  return held && held.consumedPoints > c.hold.points ? held.msBeforeNext : 0;
}

/** Whether a counter's window that ended at `end` (ms) is still the current one. */
const open = (end: number) => Date.now() < end;

/**
 * A limit on the calls to one provider and model, in requests and tokens a window (a minute),
 * counted in Redis so that every worker on it shares it: fixed windows of rate-limiter-flexible,
 * each call taking one request and its worst case in tokens, corrected to its real usage after.
 * A call over the limit waits for the window's end instead of being sent to meet a 429. While
 * Redis does not answer, each worker counts alone in memory against the same limits: calls go on
 * (the workers together may then pass the limit), never fail for want of the limiter.
 */
export class ProviderLimiter {
  private readonly shared: Counters;
  private readonly local: Counters;

  constructor(
    redis: Redis,
    prefix: string,
    readonly limits: ProviderLimits,
    private readonly options: ProviderLimiterOptions = {},
  ) {
    const window = options.windowSeconds ?? 60;
    // Not ready (reconnecting, closed): fail at once rather than queue behind the reconnection.
    this.shared = counters(
      (keyPrefix, points, duration) =>
        new RateLimiterRedis({
          storeClient: redis,
          keyPrefix,
          points,
          duration,
          rejectIfRedisNotReady: true,
        }),
      prefix,
      limits,
      window,
    );
    this.local = counters(
      (keyPrefix, points, duration) => new RateLimiterMemory({ keyPrefix, points, duration }),
      prefix,
      limits,
      window,
    );
  }

  /** True when neither limit is set: calls need not ask. */
  get unlimited(): boolean {
    return this.limits.requestsPerMinute <= 0 && this.limits.tokensPerMinute <= 0;
  }

  /** Runs `step` on Redis, or in memory when Redis does not answer. */
  private async either<T>(step: (c: Counters) => Promise<T>): Promise<T> {
    try {
      return await step(this.shared);
    } catch (err) {
      if (err instanceof RateLimiterRes) throw err;
      this.options.onStoreError?.(err);
      return step(this.local);
    }
  }

  /**
   * Takes one request and `tokens` from the limit of `key` (provider and model), waiting while
   * they do not fit. A call bigger than a whole window's tokens takes the whole window. It never
   * waits past `deadline` (ms since the epoch): when the wait would end later, it fails at once,
   * retryably, having taken nothing; `signal` ends the wait.
   */
  async take(
    key: string,
    tokens: number,
    wait: { signal?: AbortSignal; deadline?: number } = {},
  ): Promise<Grant> {
    const started = Date.now();
    const perWindow = this.limits.tokensPerMinute;
    const points = Math.max(0, Math.ceil(perWindow > 0 ? Math.min(tokens, perWindow) : tokens));
    for (;;) {
      wait.signal?.throwIfAborted();
      const step = await this.either((c) => this.tryTake(c, key, points));
      if ('grant' in step) {
        this.options.onWaited?.(key, Date.now() - started);
        return step.grant;
      }
      // A few ms past the window's end, so that its key has expired when the call asks again.
      const ms = Math.max(step.waitMs, 0) + 5;
      if (wait.deadline !== undefined && Date.now() + ms > wait.deadline) {
        const why =
          step.why === 'held'
            ? `calls to ${key} are held back after the provider's 429`
            : `the provider limit for ${key} (${this.describe()}) is reached`;
        throw ApplicationFailure.create({
          type: PROVIDER_LIMIT_WAIT,
          message:
            `Not sent: ${why} for ${Math.ceil(ms / 1000)} s more, past the end of this ` +
            'attempt; the next attempt waits for it',
          nonRetryable: false,
          nextRetryDelay: ms,
        });
      }
      await sleep(ms, undefined, { signal: wait.signal });
    }
  }

  private describe(): string {
    const { requestsPerMinute: r, tokensPerMinute: t } = this.limits;
    return [r > 0 ? `${r} requests` : '', t > 0 ? `${t} tokens` : '']
      .filter(Boolean)
      .join(' and ')
      .concat(' a minute');
  }

  /** One try: a grant, or how long to wait before the next. */
  private async tryTake(
    c: Counters,
    key: string,
    points: number,
  ): Promise<{ grant: Grant } | { waitMs: number; why: 'held' | 'limit' }> {
    const heldMs = await heldFor(c, key);
    if (heldMs > 0) return { waitMs: heldMs, why: 'held' };
    let requestsEnd = Infinity;
    if (c.requests) {
      try {
        const res = await c.requests.consume(key, 1);
        requestsEnd = Date.now() + res.msBeforeNext;
      } catch (err) {
        if (err instanceof RateLimiterRes) return { waitMs: err.msBeforeNext, why: 'limit' };
        throw err;
      }
    }
    let tokensEnd = Infinity;
    if (c.tokens && points > 0) {
      try {
        const res = await c.tokens.consume(key, points);
        tokensEnd = Date.now() + res.msBeforeNext;
      } catch (err) {
        // The tokens stay counted until the window ends (nothing smaller slips ahead of this
        // call); the request, not sent, is given back.
        if (c.requests && open(requestsEnd)) await c.requests.reward(key, 1);
        if (err instanceof RateLimiterRes) return { waitMs: err.msBeforeNext, why: 'limit' };
        throw err;
      }
    }
    let settled = false;
    // A correction lands only in the window that counted the call: in a later one it would
    // count what this call did not take there.
    const correct = async (diff: number) => {
      if (!c.tokens || diff === 0 || !open(tokensEnd)) return;
      if (diff > 0) await c.tokens.reward(key, Math.min(diff, points));
      else await c.tokens.penalty(key, -diff);
    };
    const once = async (step: () => Promise<void>) => {
      if (settled) return;
      settled = true;
      await step().catch((err: unknown) => this.options.onStoreError?.(err));
    };
    return {
      grant: {
        settle: (used) => once(() => correct(points - Math.max(0, Math.ceil(used)))),
        release: () =>
          once(async () => {
            if (c.requests && open(requestsEnd)) await c.requests.reward(key, 1);
            await correct(points);
          }),
      },
    };
  }

  /**
   * Holds back every call to `key`, on every worker, for `ms` (a 429's Retry-After), unless it is
   * held longer already.
   */
  async hold(key: string, ms: number): Promise<void> {
    // Whole seconds (the counters' unit), at least one: a hold of 0 s would never expire.
    const seconds = Math.max(1, Math.ceil(ms / 1000));
    await this.either(async (c) => {
      if ((await heldFor(c, key)) >= seconds * 1000) return;
      await c.hold.block(key, seconds);
    }).catch((err: unknown) => this.options.onStoreError?.(err));
  }
}

/** Where a call must have ended: its attempt's deadline, and how it is stopped. */
export interface CallBounds {
  signal?: AbortSignal;
  /** Ms since the epoch; a call that would wait past it fails, retryably, unsent. */
  deadline?: number;
}

/**
 * Wraps a model so that each call (each request to the provider) first takes its share of the
 * provider limit `key`: one request and its worst case in tokens (the input estimate plus the
 * output cap), corrected to the reported usage afterwards. A 429 with Retry-After holds every
 * worker's calls to `key` back for that long.
 */
export function withProviderLimit(
  model: LanguageModel,
  limiter: ProviderLimiter,
  key: string,
  bounds: CallBounds = {},
): LanguageModel {
  if (limiter.unlimited) return model;
  return {
    name: model.name,
    streams: model.streams,
    async generate(request) {
      const worst = estimateInputTokens(request) + request.maxOutputTokens;
      const grant = await limiter.take(key, worst, {
        signal: request.signal ?? bounds.signal,
        deadline: bounds.deadline,
      });
      try {
        const response = await model.generate(request);
        if (response.usage) {
          await grant.settle(response.usage.input_tokens + response.usage.output_tokens);
        }
        return response;
      } catch (err) {
        const received = receivedUsage(err);
        if (received) await grant.settle(received.input_tokens + received.output_tokens);
        // Refused by the provider, or by the decision's budget before it was sent.
        else if (
          unbilled(err) ||
          (err instanceof ApplicationFailure && err.type === 'BudgetExceeded')
        )
          await grant.release();
        if (err instanceof ApplicationFailure && err.type === ModelErrorType.RateLimited) {
          const ms = typeof err.nextRetryDelay === 'number' ? err.nextRetryDelay : undefined;
          if (ms !== undefined && ms > 0) await limiter.hold(key, ms);
        }
        throw err;
      }
    },
  };
}
