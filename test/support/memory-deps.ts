import type { ActivityDeps } from '../../src/activities';
import type { DecisionEvent, DecisionRecord } from '../../src/domain/decision';
import type { WebhookDelivery } from '../../src/domain/webhook';
import type { BudgetLedger, BudgetLimits, Spent } from '../../src/llm/budget';
import type { ModelResponse } from '../../src/llm/model';
import type { ResponseStore } from '../../src/llm/response-store';

/** The response store in memory, as RedisResponseStore keeps it. */
export class MemoryResponseStore implements ResponseStore {
  readonly data = new Map<string, ModelResponse>();
  get(key: string) {
    return Promise.resolve(this.data.get(key) ?? null);
  }
  put(key: string, response: ModelResponse) {
    this.data.set(key, response);
    return Promise.resolve();
  }
  delete(keys: string[]) {
    for (const key of keys) this.data.delete(key);
    return Promise.resolve();
  }
}

/** The budget ledger in memory: what RedisBudgetLedger's scripts do, one scope at a time. */
export class MemoryBudgetLedger implements BudgetLedger {
  readonly spent = new Map<string, Spent>();
  /** Each counted call's reservation, until it is settled (then null). */
  private readonly calls = new Map<string, number | null>();
  reserve(scope: string, call: string, limits: BudgetLimits, tokens: number, atLeast = tokens) {
    const now = this.spent.get(scope) ?? { ...limits.spent };
    const before = this.calls.get(`${scope}:${call}`);
    if (before !== undefined) {
      return Promise.resolve({ ok: true, spent: { ...now }, reserved: before ?? 0 });
    }
    const left = limits.max_tokens - now.tokens;
    const ok = now.model_calls + 1 <= limits.max_model_calls && left >= atLeast;
    const reserved = ok ? Math.min(tokens, left) : 0;
    const next = ok ? { model_calls: now.model_calls + 1, tokens: now.tokens + reserved } : now;
    this.spent.set(scope, next);
    if (ok) this.calls.set(`${scope}:${call}`, reserved);
    return Promise.resolve({ ok, spent: { ...next }, reserved });
  }
  settle(scope: string, call: string, used: number) {
    const now = this.spent.get(scope);
    const reserved = this.calls.get(`${scope}:${call}`);
    if (now && reserved !== undefined && reserved !== null) {
      now.tokens = Math.max(0, now.tokens + used - reserved);
      this.calls.set(`${scope}:${call}`, null);
    }
    return Promise.resolve();
  }
}

/** The projection writes the activities make, kept in order. */
export class MemoryProjection implements Pick<
  ActivityDeps['projection'],
  'write' | 'writeDelivery' | 'readDelivery'
> {
  readonly writes: { record: DecisionRecord; events: readonly DecisionEvent[]; runId: string }[] =
    [];
  readonly deliveries = new Map<string, { delivery: WebhookDelivery; rank: number }>();
  write(
    record: DecisionRecord,
    events: readonly DecisionEvent[] = [],
    _origin: 'workflow' | 'reconcile' = 'workflow',
    runId = '',
  ) {
    this.writes.push({ record: structuredClone(record), events: structuredClone(events), runId });
    return Promise.resolve(true);
  }
  writeDelivery(decisionId: string, delivery: WebhookDelivery, rank: number) {
    const key = `${decisionId}/${delivery.id}`;
    const stored = this.deliveries.get(key);
    if (stored && stored.rank >= rank) return Promise.resolve(false);
    this.deliveries.set(key, { delivery: structuredClone(delivery), rank });
    return Promise.resolve(true);
  }
  readDelivery(decisionId: string, deliveryId: string) {
    return Promise.resolve(this.deliveries.get(`${decisionId}/${deliveryId}`) ?? null);
  }
}
