import { z } from 'zod';
import { MAX_ITEMS, type CriterionOutput, type PhaseOutputMap } from '../domain/outputs';
import { item, list, name, paragraph } from './answers';
import { bullets, earlier, question, uniqueNames, type Agent, type AgentContext } from './context';

function answerSchema(ctx: AgentContext) {
  const criteria = earlier(ctx, 'establishGoals').criteria;
  // One required key per criterion, exactly as named: a score cannot be missing or misnamed.
  const scores = z.strictObject(
    Object.fromEntries(
      criteria.map((c) => [c.name, z.int().min(1).max(5).describe(c.description)]),
    ),
  );
  return z.strictObject({
    summary: paragraph,
    alternatives: list(
      z.strictObject({
        name,
        description: paragraph,
        scores: scores.describe('A score from 1 (poor) to 5 (excellent) on every criterion'),
        pros: list(item, 0, MAX_ITEMS.prosCons),
        cons: list(item, 0, MAX_ITEMS.prosCons),
      }),
      3,
      MAX_ITEMS.alternatives,
    ),
  });
}

/** The weighted score from 0 to 1: each 1–5 score mapped to 0–1, weighted by its criterion. */
export function weightedScore(
  scores: Record<string, number>,
  criteria: readonly CriterionOutput[],
): number {
  const totalWeight = criteria.reduce((sum, c) => sum + c.weight, 0);
  const sum = criteria.reduce((n, c) => n + (c.weight * ((scores[c.name] ?? 1) - 1)) / 4, 0);
  return Math.round((sum / totalWeight) * 1000) / 1000;
}

export const generateAlternatives: Agent<
  ReturnType<typeof answerSchema>,
  PhaseOutputMap['generateAlternatives']
> = {
  phase: 'generateAlternatives',
  system:
    'You generate distinct options for a decision (including doing nothing or deferring where ' +
    'that is a real option) and score each from 1 (poor) to 5 (excellent) on every criterion, ' +
    'using the evidence gathered.',
  prompt: (ctx) => {
    const scope = earlier(ctx, 'defineScope');
    const goals = earlier(ctx, 'establishGoals');
    const info = earlier(ctx, 'retrieveInformation');
    const evidence = info.answers.map(
      (a) => `${a.need_id} ${a.question}\n  ${a.answered ? a.answer : 'Unanswered.'}`,
    );
    return [
      question(ctx),
      `Constraints:\n${bullets(scope.constraints)}`,
      `Criteria (score every one):\n${bullets(goals.criteria.map((c) => `${c.name} (weight ${c.weight}): ${c.description}`))}`,
      `Evidence:\n${bullets(evidence)}`,
      'Propose 3 to 6 alternatives with pros, cons and a score per criterion.',
    ].join('\n\n');
  },
  answer: answerSchema,
  finish: (answer, ctx) => {
    const criteria = earlier(ctx, 'establishGoals').criteria;
    const names = uniqueNames(answer.alternatives.map((a) => a.name));
    return {
      ...answer,
      alternatives: answer.alternatives.map((alt, i) => ({
        ...alt,
        name: names[i]!,
        weighted_score: weightedScore(alt.scores, criteria),
      })),
    };
  },
};
