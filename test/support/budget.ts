import type { BudgetLimits } from '../../src/llm/budget';
import type { ModelRequest } from '../../src/llm/model';

/** A request of a known size for the budget tests. */
export const request: ModelRequest = {
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
export const RESERVED = 1201;

export const limits = (max_model_calls: number, max_tokens = 1_000_000): BudgetLimits => ({
  max_model_calls,
  max_tokens,
  spent: { model_calls: 0, tokens: 0 },
});
