import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisBudgetLedger, withBudget } from '../../src/llm/budget';
import { limits, request, RESERVED } from '../support/budget';
import { testProjection } from '../support/context';
import { FakeModel } from '../support/fake-model';

describe('the budget ledger in Redis', () => {
  let store: ReturnType<typeof testProjection>;
  let ledger: RedisBudgetLedger;
  beforeAll(() => {
    store = testProjection();
    ledger = new RedisBudgetLedger(store.redis, `${store.prefix}budget:`, 60);
  });
  afterAll(() => store?.cleanup());
  const spent = async (scope: string) => {
    const [calls, tokens] = await store.redis.hmget(
      `${store.prefix}budget:${scope}`,
      'calls',
      'tokens',
    );
    return { calls, tokens };
  };

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
    await ledger.settle('expired', 'call-1', 100);
    expect(await store.redis.exists(`${store.prefix}budget:expired`)).toBe(0);
  });

  it('counts a call once when its reserve and its settle reach Redis twice (one id per call)', async () => {
    // What ioredis does after a reconnect: it sends again the commands that had no answer.
    const first = await ledger.reserve('resent', 'call-1', limits(10), RESERVED);
    const again = await ledger.reserve('resent', 'call-1', limits(10), RESERVED);
    expect(again).toEqual(first);
    await ledger.settle('resent', 'call-1', 15);
    await ledger.settle('resent', 'call-1', 15);
    expect(await spent('resent')).toEqual({ calls: '1', tokens: '15' });
    // Another call is counted on its own.
    await ledger.reserve('resent', 'call-2', limits(10), RESERVED);
    await ledger.settle('resent', 'call-2', 20);
    expect(await spent('resent')).toEqual({ calls: '2', tokens: '35' });
  });
});
