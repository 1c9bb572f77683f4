import { z } from 'zod';
import { MAX_ITEMS, type PhaseOutputMap } from '../domain/outputs';
import { item, list, name, paragraph } from './answers';
import { bullets, earlier, question, uniqueNames, type Agent } from './context';

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

/** Importances normalised to weights that add up to 1 (rounded to 3 places, the rest on the largest). */
export function normaliseWeights(importances: readonly number[]): number[] {
  const total = importances.reduce((sum, n) => sum + n, 0);
  const weights = importances.map((n) => Math.round((n / total) * 1000) / 1000);
  const largest = weights.indexOf(Math.max(...weights));
  const rest = weights.reduce((sum, w, i) => (i === largest ? sum : sum + w), 0);
  weights[largest] = Math.round((1 - rest) * 1000) / 1000;
  return weights;
}

export const establishGoals: Agent<typeof Answer, PhaseOutputMap['establishGoals']> = {
  phase: 'establishGoals',
  system:
    'You set measurable goals for a decision and the criteria its options will be scored on. ' +
    'Rate how much each criterion matters from 1 to 5; the weights are computed from those ratings.',
  prompt: (ctx) => {
    const cause = earlier(ctx, 'analyzeRootCause');
    const scope = earlier(ctx, 'defineScope');
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
};
