import { describe, expect, it } from 'vitest';
import { withBudget, type BudgetLedger } from '../../src/llm/budget';
import { limits, request } from '../support/budget';
import { FakeModel } from '../support/fake-model';

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
