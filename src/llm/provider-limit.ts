import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/common';
import type { Cluster, Redis } from 'ioredis';
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
  /** The limit's window in seconds: 60, the providers' minute; tests use less. */
  windowSeconds?: number;
  /**
   * How much longer than the window a call stays counted, in ms (default 2000): the time a call
   * may take from its grant to the provider, so that calls granted a window apart reach it a
   * window apart even when the earlier one was slower on its way (a busy event loop, the network).
   */
  marginMs?: number;
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

/** A try: the grant is recorded, or it must wait this long (a 429's hold, or the limit). */
type Step = { granted: true } | { waitMs: number; why: 'held' | 'limit' };

/**
 * The calls of the last window, per limit key: a sliding log of grants (when, how many tokens).
 * A grant is one request and its tokens; it counts until a window after it was recorded.
 */
interface Log {
  /** Records grant `id` of `tokens` when it fits beside the window's grants and no hold is on. */
  take(key: string, id: string, tokens: number): Promise<Step>;
  /** Corrects a grant still counted to `tokens`. */
  settle(key: string, id: string, tokens: number): Promise<void>;
  /** Removes a grant. */
  release(key: string, id: string): Promise<void>;
  /** Holds back every call to `key` for `ms`, unless it is held longer already. */
  hold(key: string, ms: number): Promise<void>;
}

// KEYS: the log (a sorted set: grant id → when it was granted, ms of Redis's clock), the grants'
// tokens (a hash: grant id → tokens; kept with a token limit only), the hold (a string whose TTL
// is what is left of a 429's Retry-After). ARGV: grant id, tokens, window (ms), requests and
// tokens a window (0: none). Answers {1, 0} once the grant is recorded, else {0, ms, why}: how
// long until the hold ends or the oldest grant that must leave for this one to fit has left.
// Redis's own clock (TIME), so that workers whose clocks differ count the same window. A grant
// already recorded (the command sent again after a lost reply) is answered as granted.
const TAKE_SCRIPT = `
local log, weights, hold = KEYS[1], KEYS[2], KEYS[3]
local id, want, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local maxRequests, maxTokens = tonumber(ARGV[4]), tonumber(ARGV[5])
if redis.call('ZSCORE', log, id) then return {1, 0} end
local held = redis.call('PTTL', hold)
if held > 0 then return {0, held, 'held'} end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', log, '-inf', now - window)) do
  redis.call('HDEL', weights, gone)
end
redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window)
local opens = 0
local count = redis.call('ZCARD', log)
if maxRequests > 0 and count >= maxRequests then
  local last = redis.call('ZRANGE', log, count - maxRequests, count - maxRequests, 'WITHSCORES')
  opens = tonumber(last[2]) + window
end
if maxTokens > 0 then
  local used = 0
  for _, n in ipairs(redis.call('HVALS', weights)) do used = used + tonumber(n) end
  if used + want > maxTokens then
    local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
    for i = 1, #entries, 2 do
      used = used - tonumber(redis.call('HGET', weights, entries[i]) or '0')
      if used + want <= maxTokens then
        opens = math.max(opens, tonumber(entries[i + 1]) + window)
        break
      end
    end
  end
end
if opens > now then return {0, opens - now, 'limit'} end
redis.call('ZADD', log, now, id)
redis.call('PEXPIRE', log, window)
if maxTokens > 0 then
  redis.call('HSET', weights, id, want)
  redis.call('PEXPIRE', weights, window)
end
return {1, 0}
`;

// KEYS: the log, the tokens. ARGV: grant id, tokens used. Only a grant still counted: one that
// has left the window no longer weighs on it.
const SETTLE_SCRIPT = `
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
return 0
`;

// KEYS: the hold. ARGV: ms.
const HOLD_SCRIPT = `
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 0
`;

type LimitRedis = (Redis | Cluster) & {
  providerLimitTake(...args: (string | number)[]): Promise<[number, number, string?]>;
  providerLimitSettle(...args: (string | number)[]): Promise<number>;
  providerLimitHold(key: string, ms: number): Promise<number>;
};

/**
 * The log in Redis, shared by every worker on it. A limit key's Redis keys carry it as their one
 * hash tag (`{<key>}`), so that a script touches one slot, as Redis Cluster requires.
 */
class RedisLog implements Log {
  private readonly redis: LimitRedis;

  constructor(
    redis: Redis | Cluster,
    private readonly prefix: string,
    private readonly limits: ProviderLimits,
    private readonly windowMs: number,
  ) {
    if (!('providerLimitTake' in redis)) {
      redis.defineCommand('providerLimitTake', { numberOfKeys: 3, lua: TAKE_SCRIPT });
      redis.defineCommand('providerLimitSettle', { numberOfKeys: 2, lua: SETTLE_SCRIPT });
      redis.defineCommand('providerLimitHold', { numberOfKeys: 1, lua: HOLD_SCRIPT });
    }
    this.redis = redis as LimitRedis;
  }

  private keys(key: string) {
    const tag = `${this.prefix}{${key}}`;
    return { log: `${tag}:log`, tokens: `${tag}:tokens`, hold: `${tag}:hold` };
  }

  /** Not ready (reconnecting, closed): fail at once rather than queue behind the reconnection. */
  private ready(): LimitRedis {
    if (this.redis.status !== 'ready') throw new Error(`Redis is not ready (${this.redis.status})`);
    return this.redis;
  }

  async take(key: string, id: string, tokens: number): Promise<Step> {
    const k = this.keys(key);
    const [granted, waitMs, why] = await this.ready().providerLimitTake(
      k.log,
      k.tokens,
      k.hold,
      id,
      tokens,
      this.windowMs,
      this.limits.requestsPerMinute,
      this.limits.tokensPerMinute,
    );
    return granted === 1 ? { granted: true } : { waitMs, why: why === 'held' ? 'held' : 'limit' };
  }

  async settle(key: string, id: string, tokens: number): Promise<void> {
    const k = this.keys(key);
    await this.ready().providerLimitSettle(k.log, k.tokens, id, tokens);
  }

  async release(key: string, id: string): Promise<void> {
    const k = this.keys(key);
    await this.ready().multi().zrem(k.log, id).hdel(k.tokens, id).exec();
  }

  async hold(key: string, ms: number): Promise<void> {
    await this.ready().providerLimitHold(this.keys(key).hold, ms);
  }
}

/** The same log in this process's memory, on its monotonic clock: while Redis is away. */
class MemoryLog implements Log {
  // Per key: grants in the order they were recorded, hence by time; and when a hold ends.
  private readonly logs = new Map<
    string,
    { grants: Map<string, { at: number; tokens: number }>; heldUntil: number }
  >();

  constructor(
    private readonly limits: ProviderLimits,
    private readonly windowMs: number,
  ) {}

  private of(key: string) {
    let log = this.logs.get(key);
    if (!log) {
      log = { grants: new Map(), heldUntil: 0 };
      this.logs.set(key, log);
    }
    return log;
  }

  take(key: string, id: string, tokens: number): Promise<Step> {
    const log = this.of(key);
    const now = performance.now();
    if (log.grants.has(id)) return Promise.resolve({ granted: true });
    if (log.heldUntil > now) {
      return Promise.resolve({ waitMs: Math.ceil(log.heldUntil - now), why: 'held' });
    }
    for (const [gone, grant] of log.grants) {
      if (grant.at > now - this.windowMs) break;
      log.grants.delete(gone);
    }
    const grants = [...log.grants.values()];
    const { requestsPerMinute: maxRequests, tokensPerMinute: maxTokens } = this.limits;
    let opens = 0;
    if (maxRequests > 0 && grants.length >= maxRequests) {
      opens = grants[grants.length - maxRequests]!.at + this.windowMs;
    }
    if (maxTokens > 0) {
      let used = grants.reduce((sum, g) => sum + g.tokens, 0);
      for (const grant of used + tokens > maxTokens ? grants : []) {
        used -= grant.tokens;
        if (used + tokens <= maxTokens) {
          opens = Math.max(opens, grant.at + this.windowMs);
          break;
        }
      }
    }
    if (opens > now) return Promise.resolve({ waitMs: Math.ceil(opens - now), why: 'limit' });
    log.grants.set(id, { at: now, tokens });
    return Promise.resolve({ granted: true });
  }

  settle(key: string, id: string, tokens: number): Promise<void> {
    const grant = this.logs.get(key)?.grants.get(id);
    if (grant) grant.tokens = tokens;
    return Promise.resolve();
  }

  release(key: string, id: string): Promise<void> {
    this.logs.get(key)?.grants.delete(id);
    return Promise.resolve();
  }

  hold(key: string, ms: number): Promise<void> {
    const log = this.of(key);
    log.heldUntil = Math.max(log.heldUntil, performance.now() + ms);
    return Promise.resolve();
  }
}

/**
 * A limit on the calls to one provider and model, in requests and tokens a window (a minute),
 * counted in Redis so that every worker on it shares it: a sliding log of the window's grants,
 * each call taking one request and its worst case in tokens, corrected to its real usage after.
 * No window's length of time, wherever it starts, holds more grants than the limit (fixed windows
 * would let up to twice the limit through across the turn of a window). A call over the limit
 * waits until the grants that must leave for it have left instead of being sent to meet a 429.
 * While Redis does not answer, each worker counts alone in memory against the same limits: calls
 * go on (the workers together may then pass the limit), never fail for want of the limiter.
 */
export class ProviderLimiter {
  private readonly shared: Log;
  private readonly local: Log;
  /** Per key, the last of this process's calls waiting for their turn to ask (see turn). */
  private readonly lines = new Map<string, Promise<void>>();

  constructor(
    redis: Redis | Cluster,
    prefix: string,
    readonly limits: ProviderLimits,
    private readonly options: ProviderLimiterOptions = {},
  ) {
    const windowMs = (options.windowSeconds ?? 60) * 1000;
    const counted = Math.ceil(windowMs + (options.marginMs ?? 2000));
    this.shared = new RedisLog(redis, prefix, limits, counted);
    this.local = new MemoryLog(limits, counted);
  }

  /** True when neither limit is set: calls need not ask. */
  get unlimited(): boolean {
    return this.limits.requestsPerMinute <= 0 && this.limits.tokensPerMinute <= 0;
  }

  /** Runs `step` on Redis, or in memory when Redis does not answer; says which. */
  private async either<T>(step: (log: Log) => Promise<T>): Promise<{ log: Log; value: T }> {
    try {
      return { log: this.shared, value: await step(this.shared) };
    } catch (err) {
      this.options.onStoreError?.(err);
      return { log: this.local, value: await step(this.local) };
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
    const want = Math.max(0, Math.ceil(perWindow > 0 ? Math.min(tokens, perWindow) : tokens));
    // One id for every try: a try Redis recorded but whose answer was lost is found again.
    const id = randomUUID();
    const leave = await this.turn(key, wait);
    try {
      for (;;) {
        wait.signal?.throwIfAborted();
        const { log, value: step } = await this.either((l) => l.take(key, id, want));
        if ('granted' in step) {
          this.options.onWaited?.(key, Date.now() - started);
          return this.grant(log, key, id);
        }
        // A ms more: Redis's clock counts whole ms.
        const ms = Math.max(step.waitMs, 0) + 1;
        if (wait.deadline !== undefined && Date.now() + ms > wait.deadline) {
          throw this.tooLong(
            step.why === 'held'
              ? `calls to ${key} are held back after the provider's 429`
              : `the provider limit for ${key} (${this.describe()}) is reached`,
            ms,
          );
        }
        await sleep(ms, undefined, { signal: wait.signal });
      }
    } finally {
      leave();
    }
  }

  /**
   * Waits for this call's turn to ask for `key`: this process's calls ask one at a time, in the
   * order they came, so that a grant leaving the window wakes one of them, not every one that
   * waits. Returns what gives the turn to the next; fails when `wait` ends first.
   */
  private async turn(
    key: string,
    wait: { signal?: AbortSignal; deadline?: number },
  ): Promise<() => void> {
    const ahead = this.lines.get(key);
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    const line = ahead ? ahead.then(() => mine) : mine;
    this.lines.set(key, line);
    const leave = () => {
      done();
      if (this.lines.get(key) === line) this.lines.delete(key);
    };
    if (!ahead) return leave;
    try {
      await new Promise<void>((resolve, reject) => {
        const signal = wait.signal;
        const end = (err?: Error) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', aborted);
          if (err === undefined) resolve();
          else reject(err);
        };
        // What throwIfAborted throws: the signal's reason.
        const aborted = () => end(signal?.reason as Error);
        const timer =
          wait.deadline === undefined
            ? undefined
            : setTimeout(
                () =>
                  end(
                    this.tooLong(
                      `calls ahead of it on this worker wait for the provider limit for ${key} (${this.describe()})`,
                      1000,
                    ),
                  ),
                Math.max(0, wait.deadline - Date.now()),
              );
        if (signal?.aborted) return aborted();
        signal?.addEventListener('abort', aborted, { once: true });
        void ahead.then(() => end());
      });
    } catch (err) {
      leave();
      throw err;
    }
    return leave;
  }

  /** A call not sent: waiting `ms` more would pass the end of its attempt. */
  private tooLong(why: string, ms: number): ApplicationFailure {
    return ApplicationFailure.create({
      type: PROVIDER_LIMIT_WAIT,
      message:
        `Not sent: ${why} for ${Math.ceil(ms / 1000)} s more, past the end of this ` +
        'attempt; the next attempt waits for it',
      nonRetryable: false,
      nextRetryDelay: ms,
    });
  }

  private describe(): string {
    const { requestsPerMinute: r, tokensPerMinute: t } = this.limits;
    const window = this.options.windowSeconds ?? 60;
    return [r > 0 ? `${r} requests` : '', t > 0 ? `${t} tokens` : '']
      .filter(Boolean)
      .join(' and ')
      .concat(window === 60 ? ' a minute' : ` in ${window} s`);
  }

  /** The grant `id` recorded in `log`: settled or released once. */
  private grant(log: Log, key: string, id: string): Grant {
    let settled = false;
    const once = async (step: () => Promise<void>) => {
      if (settled) return;
      settled = true;
      await step().catch((err: unknown) => this.options.onStoreError?.(err));
    };
    const tokens = this.limits.tokensPerMinute > 0;
    return {
      settle: (used) =>
        once(async () => {
          if (tokens) await log.settle(key, id, Math.max(0, Math.ceil(used)));
        }),
      release: () => once(() => log.release(key, id)),
    };
  }

  /**
   * Holds back every call to `key`, on every worker, for `ms` (a 429's Retry-After), unless it is
   * held longer already.
   */
  async hold(key: string, ms: number): Promise<void> {
    const held = Math.max(1, Math.ceil(ms));
    await this.either((log) => log.hold(key, held)).catch((err: unknown) =>
      this.options.onStoreError?.(err),
    );
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
