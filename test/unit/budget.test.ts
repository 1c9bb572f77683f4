import { describe, expect, it } from 'vitest';
import { withBudget, type BudgetLedger } from '../../src/llm/budget';
import { limits, request, RESERVED } from '../support/budget';
import { FakeModel } from '../support/fake-model';
import { MemoryBudgetLedger } from '../support/memory-deps';

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
      { onLedgerError: (err) => warnings.push(err) },
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

  it('shares what is left between parallel activities, so that together they stay in the budget', async () => {
    const model = new FakeModel();
    // 7 calls left, 3 retrievals at once: 2 calls each. Tokens: room for 2 worst cases each.
    const budget = {
      ...limits(10, 100 + 6 * RESERVED + 2),
      spent: { model_calls: 3, tokens: 100 },
    };
    const retrievals = [1, 2, 3].map(() =>
      withBudget(model, down, 'down', budget, { parallel: 3 }),
    );
    const outcomes = await Promise.allSettled(
      retrievals.flatMap((r) => [r.generate(request), r.generate(request), r.generate(request)]),
    );
    expect(model.requests).toHaveLength(6);
    expect(outcomes.filter((o) => o.status === 'rejected')).toHaveLength(3);
    for (const o of outcomes.filter((o) => o.status === 'rejected')) {
      expect(o.reason).toMatchObject({ type: 'BudgetExceeded' });
    }
  });

  it('counts what earlier attempts spent', async () => {
    const model = new FakeModel();
    const budgeted = withBudget(model, down, 'down', limits(3), {
      earlier: { model_calls: 2, tokens: 30 },
    });
    await budgeted.generate(request);
    await expect(budgeted.generate(request)).rejects.toMatchObject({ type: 'BudgetExceeded' });
    expect(model.requests).toHaveLength(1);
  });

  it('settles a call whose reserve reached the ledger though its answer was lost', async () => {
    const ledger = new MemoryBudgetLedger();
    // The reserve is counted, but its answer times out here (ioredis sent it again after a
    // reconnect, say): the call goes on by what the activity knows.
    const lost: BudgetLedger = {
      reserve: async (...args) => {
        await ledger.reserve(...args);
        throw new Error('Command timed out');
      },
      settle: (...args) => ledger.settle(...args),
    };
    await withBudget(new FakeModel(), lost, 'lost', limits(3)).generate(request);
    await new Promise((resolve) => setImmediate(resolve));
    // Counted once, at the 15 tokens the model reported, not at its worst case.
    expect(ledger.spent.get('lost')).toEqual({ model_calls: 1, tokens: 15 });
  });
});
