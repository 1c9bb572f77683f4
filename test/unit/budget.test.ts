import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RedisBudgetLedger,
  withBudget,
  type BudgetLedger,
  type BudgetLimits,
} from '../../src/llm/budget';
import type { ModelRequest } from '../../src/llm/model';
import { testProjection } from '../support/context';
import { FakeModel } from '../support/fake-model';

const request: ModelRequest = {
  task: 'identifyTrigger',
  system: 's'.repeat(400),
  messages: [{ role: 'user', content: 'u'.repeat(400) }],
  schemaName: 'identifyTrigger',
  jsonSchema: {},
  maxOutputTokens: 1000,
  maxAnswerChars: 10_000,
  hints: { query: 'q', outputs: {} },
};
// 400 + 400 + 2 characters of prompt and schema: 201 tokens, plus the cap of 1000.
const RESERVED = 1201;

const limits = (max_model_calls: number, max_tokens = 1_000_000): BudgetLimits => ({
  max_model_calls,
  max_tokens,
  spent: { model_calls: 0, tokens: 0 },
});

describe('the budget ledger in Redis', () => {
  let store: ReturnType<typeof testProjection>;
  let ledger: RedisBudgetLedger;
  beforeAll(() => {
    store = testProjection();
    ledger = new RedisBudgetLedger(store.redis, `${store.prefix}budget:`, 60);
  });
  afterAll(() => store?.cleanup());
  const spent = (scope: string) => store.redis.hgetall(`${store.prefix}budget:${scope}`);

  it('lets no more calls through than the budget, across parallel callers', async () => {
    const model = new FakeModel();
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () =>
        withBudget(model, ledger, 'parallel', limits(3)).generate(request),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    expect(
      results
        .filter((r) => r.status === 'rejected')
        .map((r) => (r.reason as ApplicationFailure).type),
    ).toEqual(['BudgetExceeded', 'BudgetExceeded']);
    expect(model.requests).toHaveLength(3);
    // Each call's reservation was corrected to the usage the model reported (10 + 5 tokens).
    expect(await spent('parallel')).toEqual({ calls: '3', tokens: '45' });
  });

  it('starts a new run from what the workflow says its completed phases spent', async () => {
    const model = new FakeModel();
    const seeded = { ...limits(10), spent: { model_calls: 9, tokens: 500 } };
    await withBudget(model, ledger, 'seeded', seeded).generate(request);
    await expect(
      withBudget(model, ledger, 'seeded', seeded).generate(request),
    ).rejects.toMatchObject({
      type: 'BudgetExceeded',
      nonRetryable: true,
      message: expect.stringContaining('spent 10 of 10 model calls and 515 of 1000000 tokens'),
    });
  });

  it('refuses a call whose worst case in tokens would pass the budget, before making it', async () => {
    const model = new FakeModel();
    await expect(
      withBudget(model, ledger, 'tokens', limits(10, RESERVED - 1)).generate(request),
    ).rejects.toMatchObject({ type: 'BudgetExceeded' });
    expect(model.requests).toHaveLength(0);
  });

  it('gives back the tokens of a call the provider refused, and keeps those of a timeout', async () => {
    const failing = (type: string) => ({
      name: 'm',
      generate: () => Promise.reject(ApplicationFailure.create({ type, message: type })),
    });
    await expect(
      withBudget(failing('ModelRateLimited'), ledger, 'refused', limits(10)).generate(request),
    ).rejects.toMatchObject({ type: 'ModelRateLimited' });
    expect(await spent('refused')).toEqual({ calls: '1', tokens: '0' });
    await expect(
      withBudget(failing('ModelTimeout'), ledger, 'timeout', limits(10)).generate(request),
    ).rejects.toMatchObject({ type: 'ModelTimeout' });
    expect(await spent('timeout')).toEqual({ calls: '1', tokens: String(RESERVED) });
  });

  it('does not recreate an expired ledger when correcting a reservation', async () => {
    await ledger.settle('expired', -100);
    expect(await store.redis.exists(`${store.prefix}budget:expired`)).toBe(0);
  });
});

describe('the budget without its ledger', () => {
  const down: BudgetLedger = {
    reserve: () => Promise.reject(new Error('Redis is down')),
    settle: () => Promise.reject(new Error('Redis is down')),
  };

  it('goes on with a warning while what the attempt knows fits, and stops when it does not', async () => {
    const model = new FakeModel();
    const warnings: unknown[] = [];
    const budgeted = withBudget(
      model,
      down,
      'down',
      { ...limits(3), spent: { model_calls: 1, tokens: 0 } },
      (err) => warnings.push(err),
    );
    await budgeted.generate(request);
    await budgeted.generate(request);
    await expect(budgeted.generate(request)).rejects.toMatchObject({
      type: 'BudgetExceeded',
      message: expect.stringContaining('spent 3 of 3 model calls'),
    });
    expect(model.requests).toHaveLength(2);
    expect(warnings.length).toBeGreaterThanOrEqual(3);
  });
});
