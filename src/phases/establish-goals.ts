import { z } from 'zod';
import { analyzeRootCause } from './analyze-root-cause';
import { item, list, MAX_ITEMS, name, paragraph, stored } from './bounds';
import { defineScope } from './define-scope';
import { topicsOf } from './offline-rules';
import { bullets, earlier, phase, question, read, uniqueNames } from './phase';

const Answer = z.strictObject({
  summary: paragraph,
  goals: list(z.strictObject({ goal: item, metric: item }), 1, MAX_ITEMS.goals),
  criteria: list(
    z.strictObject({
      name,
      importance: z
        .int()
        .min(1)
        .max(5)
        .describe('How much this criterion matters, from 1 (a little) to 5 (most)'),
      description: item,
    }),
    2,
    MAX_ITEMS.criteria,
  ),
});

export const Criterion = z.object({
  name: stored.text,
  /** Relative importance from 1 to 5, as the model judged it (absent in older decisions). */
  importance: z.number().int().min(1).max(5).optional(),
  /** The importance normalised by code: the weights of a decision add up to 1. */
  weight: z.number().gt(0).lte(1),
  description: stored.text,
});
export type Criterion = z.infer<typeof Criterion>;

/** Importances normalised to weights that add up to 1 (rounded to 3 places, the rest on the largest). */
export function normaliseWeights(importances: readonly number[]): number[] {
  const total = importances.reduce((sum, n) => sum + n, 0);
  const weights = importances.map((n) => Math.round((n / total) * 1000) / 1000);
  const largest = weights.indexOf(Math.max(...weights));
  const rest = weights.reduce((sum, w, i) => (i === largest ? sum : sum + w), 0);
  weights[largest] = Math.round((1 - rest) * 1000) / 1000;
  return weights;
}

export const establishGoals = phase({
  name: 'establishGoals',
  title: 'Establish goals',
  description: 'Measurable goals and weighted criteria.',
  reads: [read(analyzeRootCause, ['root_cause']), read(defineScope, ['in_scope', 'constraints'])],
  output: z.object({
    summary: stored.text,
    goals: stored.list(z.object({ goal: stored.text, metric: stored.text }), 1),
    criteria: stored.list(Criterion, 2),
  }),
  system:
    'You set measurable goals for a decision and the criteria its options will be scored on. ' +
    'Rate how much each criterion matters from 1 to 5; the weights are computed from those ratings.',
  prompt: (ctx) => {
    const cause = earlier(ctx, analyzeRootCause);
    const scope = earlier(ctx, defineScope);
    return [
      question(ctx),
      `Root cause: ${cause.root_cause}`,
      `In scope:\n${bullets(scope.in_scope)}`,
      `Constraints:\n${bullets(scope.constraints)}`,
      'State measurable goals (each with a metric) and 2 to 8 criteria, each rated for importance.',
    ].join('\n\n');
  },
  answer: () => Answer,
  finish: (answer) => {
    const names = uniqueNames(answer.criteria.map((c) => c.name));
    const weights = normaliseWeights(answer.criteria.map((c) => c.importance));
    return {
      ...answer,
      criteria: answer.criteria.map((c, i) => ({
        name: names[i]!,
        importance: c.importance,
        weight: weights[i]!,
        description: c.description,
      })),
    };
  },
  offline: ({ query }) => {
    const topic = topicsOf(query)[0] ?? 'the outcome';
    return {
      summary: `Choose the option that best balances risk, cost, time to value and impact on ${topic}.`,
      goals: [
        { goal: 'Reduce operational risk', metric: 'incidents per quarter' },
        { goal: 'Keep total cost within budget', metric: 'monthly cost against budget' },
        { goal: `Improve ${topic}`, metric: `a measured ${topic} indicator agreed up front` },
      ],
      criteria: [
        { name: 'Risk', importance: 5, description: 'How safe the option is; 5 is safest' },
        { name: 'Cost', importance: 4, description: 'Total cost; 5 is cheapest' },
        { name: 'Time to value', importance: 3, description: 'How soon it pays off; 5 is soonest' },
        {
          name: `Impact on ${topic}`,
          importance: 3,
          description: `How much it improves ${topic}`,
        },
      ],
    };
  },
});
