import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import type { Cluster, Redis } from 'ioredis';
import type { PhaseInput } from '../domain/decision';
import { ModelErrorType } from './errors';
import { receivedUsage, withReceived, type LanguageModel, type ModelRequest } from './model';

export type BudgetLimits = NonNullable<PhaseInput['budget']>;

export interface Spent {
  model_calls: number;
  tokens: number;
}

/**
 * What a decision has spent, shared by every attempt and every parallel activity of a run. Each
 * call has an id of its own, so that a command sent again (ioredis re-sends what was unanswered
 * when its connection dropped) changes nothing the first one did.
 */
export interface BudgetLedger {
  /**
   * Counts call `call` and reserves `tokens` for it, or what is left of the budget when that is
   * less but at least `atLeast` (default: `tokens`); when the call or `atLeast` would pass the
   * budget, changes nothing. A ledger seen for the first time starts at `limits.spent`. Asked
   * again for a call it already counted, it answers what it answered then.
   */
  reserve(
    scope: string,
    call: string,
    limits: BudgetLimits,
    tokens: number,
    atLeast?: number,
  ): Promise<{ ok: boolean; spent: Spent; reserved: number }>;
  /**
   * Replaces call `call`'s reservation with the `used` tokens its real usage came to; once per
   * call (a second settle of the same call changes nothing).
   */
  settle(scope: string, call: string, used: number): Promise<void>;
}

// KEYS: the ledger hash. ARGV: max calls, max tokens, tokens to reserve, ttl s, calls and tokens
// spent before this run's first call (from the workflow's history), the fewest tokens to reserve,
// the call's id. Field `r:<id>` holds a counted call's reservation until it is settled, then
// `s<used>`: a reserve sent again finds it and answers as before.
const RESERVE_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'calls', ARGV[5], 'tokens', ARGV[6])
end
local calls = tonumber(redis.call('HGET', KEYS[1], 'calls') or '0')
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or '0')
redis.call('EXPIRE', KEYS[1], ARGV[4])
local field = 'r:' .. ARGV[8]
local before = redis.call('HGET', KEYS[1], field)
if before then
  return {1, calls, tokens, tonumber((string.gsub(before, '^s', '')))}
end
local left = tonumber(ARGV[2]) - tokens
if calls + 1 > tonumber(ARGV[1]) or left < tonumber(ARGV[7] or ARGV[3]) then
  return {0, calls, tokens, 0}
end
local take = math.min(tonumber(ARGV[3]), left)
redis.call('HINCRBY', KEYS[1], 'calls', 1)
redis.call('HINCRBY', KEYS[1], 'tokens', take)
redis.call('HSET', KEYS[1], field, take)
return {1, calls + 1, tokens + take, take}
`;

// Replaces a call's reservation with what it used, once, and only while the ledger exists: a
// correction must not recreate an expired ledger without its call count and its TTL.
const SETTLE_SCRIPT = `
local field = 'r:' .. ARGV[1]
local reserved = redis.call('HGET', KEYS[1], field)
if not reserved or string.sub(reserved, 1, 1) == 's' then return 0 end
redis.call('HINCRBY', KEYS[1], 'tokens', tonumber(ARGV[2]) - tonumber(reserved))
redis.call('HSET', KEYS[1], field, 's' .. ARGV[2])
return 1
`;

type LedgerRedis = (Redis | Cluster) & {
  reserveBudget(...args: (string | number)[]): Promise<[number, number, number, number]>;
  settleBudget(key: string, call: string, used: number): Promise<number>;
};

/** The ledger in Redis: one hash per decision run, updated by one script, hence atomically. */
export class RedisBudgetLedger implements BudgetLedger {
  private readonly redis: LedgerRedis;

  constructor(
    redis: Redis | Cluster,
    private readonly prefix: string,
    private readonly ttlSeconds: number,
  ) {
    if (!('reserveBudget' in redis)) {
      redis.defineCommand('reserveBudget', { numberOfKeys: 1, lua: RESERVE_SCRIPT });
      redis.defineCommand('settleBudget', { numberOfKeys: 1, lua: SETTLE_SCRIPT });
    }
    this.redis = redis as LedgerRedis;
  }

  async reserve(
    scope: string,
    call: string,
    limits: BudgetLimits,
    tokens: number,
    atLeast = tokens,
  ) {
    const [ok, calls, spentTokens, reserved] = await this.redis.reserveBudget(
      this.prefix + scope,
      limits.max_model_calls,
      limits.max_tokens,
      tokens,
      this.ttlSeconds,
      limits.spent.model_calls,
      limits.spent.tokens,
      atLeast,
      call,
    );
    return { ok: ok === 1, spent: { model_calls: calls, tokens: spentTokens }, reserved };
  }

  async settle(scope: string, call: string, used: number): Promise<void> {
    await this.redis.settleBudget(this.prefix + scope, call, used);
  }
}

/** A rough count of the tokens a request sends: about four characters a token. */
export function estimateInputTokens(request: ModelRequest): number {
  const chars =
    request.system.length +
    request.messages.reduce((n, m) => n + m.content.length, 0) +
    JSON.stringify(request.jsonSchema).length;
  return Math.ceil(chars / 4);
}

// Answers that providers do not bill: the request was refused or never reached the model.
const UNBILLED = new Set<string>([
  ModelErrorType.RateLimited,
  ModelErrorType.Unavailable,
  ModelErrorType.Connection,
  ModelErrorType.InvalidRequest,
  ModelErrorType.Authentication,
  ModelErrorType.NotFound,
]);

/** True for a failed call the provider did not bill: refused, or never reached it. */
export function unbilled(err: unknown): boolean {
  return err instanceof ApplicationFailure && UNBILLED.has(err.type ?? '');
}

function exceeded(task: string, limits: BudgetLimits, spent: Spent, reserved: number) {
  return ApplicationFailure.create({
    type: 'BudgetExceeded',
    message:
      `${task}: the next model call would pass the decision's budget ` +
      `(spent ${spent.model_calls} of ${limits.max_model_calls} model calls and ` +
      `${spent.tokens} of ${limits.max_tokens} tokens; this call may take up to ${reserved})`,
    nonRetryable: true,
  });
}

function cutAtBudget(task: string, limits: BudgetLimits, received: number) {
  return ApplicationFailure.create({
    type: 'BudgetExceeded',
    message:
      `${task}: the answer was cut after ${received} output tokens, where it reached the ` +
      `decision's budget of ${limits.max_tokens} tokens`,
    nonRetryable: true,
  });
}

export interface BudgetOptions {
  /** Told each time the ledger cannot be reached; the call goes on as described below. */
  onLedgerError?: (err: unknown) => void;
  /** What earlier attempts of this activity spent: without the ledger, it counts against it too. */
  earlier?: Spent;
  /**
   * How many activities of the run spend the budget at once (a retrieval per information need):
   * without the ledger, each may spend its share of what is left, so that together they stay in
   * the budget wherever they run.
   */
  parallel?: number;
}

/**
 * Wraps a model so that no call passes the decision's budget: each call first reserves one call
 * and its worst case in tokens (the input estimate plus the output cap), and the reservation is
 * corrected to the reported usage afterwards. A call that would pass the budget is not made: the
 * phase fails with `BudgetExceeded`, for good. A model that streams may start with less than its
 * worst case, what is left of the budget: its answer is cut where it reaches the reservation (the
 * request aborted), and the phase fails the same way, having paid for what it received. While the
 * ledger cannot be reached, the call is checked against what the workflow knows was spent plus
 * this activity's own calls, in its share of what is left, with a warning: a Redis outage must
 * not fail decisions.
 */
export function withBudget(
  model: LanguageModel,
  ledger: BudgetLedger,
  scope: string,
  limits: BudgetLimits,
  options: BudgetOptions = {},
): LanguageModel {
  const { onLedgerError = () => {}, parallel = 1 } = options;
  // This activity's own spending, for the check without the ledger.
  const own: Spent = { ...(options.earlier ?? { model_calls: 0, tokens: 0 }) };
  // Its share of what the workflow knows is left.
  const share = {
    model_calls: Math.floor((limits.max_model_calls - limits.spent.model_calls) / parallel),
    tokens: Math.floor((limits.max_tokens - limits.spent.tokens) / parallel),
  };
  const count = (tokens: number) => {
    own.model_calls += 1;
    own.tokens += tokens;
  };
  return {
    name: model.name,
    streams: model.streams,
    async generate(request) {
      const input = estimateInputTokens(request);
      const worst = input + request.maxOutputTokens;
      // A streamed answer can be cut: it needs room for its input and a first token.
      const atLeast = model.streams ? input + 1 : worst;
      const call = randomUUID();
      let ledgered = true;
      const { ok, spent, reserved } = await ledger
        .reserve(scope, call, limits, worst, atLeast)
        .catch((err: unknown) => {
          onLedgerError(err);
          ledgered = false;
          const known = {
            model_calls: limits.spent.model_calls + own.model_calls,
            tokens: limits.spent.tokens + own.tokens,
          };
          const left = share.tokens - own.tokens;
          const fits = own.model_calls + 1 <= share.model_calls && left >= atLeast;
          const taken = fits ? Math.min(worst, left) : 0;
          // Counted at once, before another call of this activity is checked.
          if (fits) count(taken);
          return { ok: fits, spent: known, reserved: taken };
        });
      if (!ok) throw exceeded(request.task, limits, spent, worst);
      if (ledgered) count(reserved);
      const settle = async (used: number) => {
        own.tokens += used - reserved;
        if (ledgered) await ledger.settle(scope, call, used).catch(onLedgerError);
        // A reserve that failed here may still reach Redis (ioredis sends again what had no
        // answer once it reconnects): settled by its id, it counts what was used, not its worst
        // case; a ledger that never saw it ignores the settle. Not waited for: Redis is away.
        else void ledger.settle(scope, call, used).catch(onLedgerError);
      };
      // Less than the worst case: the answer is cut where its output reaches the reservation.
      const cut = reserved < worst ? new AbortController() : null;
      let cutAt: number | null = null;
      const sent: ModelRequest = cut
        ? {
            ...request,
            signal: request.signal ? AbortSignal.any([request.signal, cut.signal]) : cut.signal,
            onOutput: (piece, outputTokens) => {
              if (cutAt !== null) return;
              if (input + outputTokens > reserved) {
                cutAt = outputTokens;
                cut.abort();
                return;
              }
              request.onOutput?.(piece, outputTokens);
            },
          }
        : request;
      let response;
      try {
        response = await model.generate(sent);
      } catch (err) {
        const received = receivedUsage(err);
        if (cutAt !== null) {
          const usage = received ?? { input_tokens: input, output_tokens: cutAt };
          await settle(usage.input_tokens + usage.output_tokens);
          throw withReceived(cutAtBudget(request.task, limits, usage.output_tokens), usage);
        }
        // A call that ended early is paid for what it had received. One that failed otherwise
        // keeps its reservation (what it cost is unknown) unless the provider refused it
        // outright; it still counts as a call.
        if (received) await settle(received.input_tokens + received.output_tokens);
        else if (unbilled(err)) await settle(0);
        throw err;
      }
      if (response.usage) await settle(response.usage.input_tokens + response.usage.output_tokens);
      return response;
    },
  };
}
