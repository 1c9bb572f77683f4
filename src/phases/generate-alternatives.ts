import { z } from 'zod';
import { item, list, MAX_ITEMS, name, paragraph, stored } from './bounds';
import { defineScope } from './define-scope';
import { establishGoals, type Criterion } from './establish-goals';
import { subjectOf } from './offline-rules';
import {
  bullets,
  earlier,
  maybe,
  phase,
  question,
  read,
  uniqueNames,
  type AgentContext,
} from './phase';
import { retrieveInformation } from './retrieve-information';

function answerSchema(ctx: AgentContext) {
  const criteria = earlier(ctx, establishGoals).criteria;
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
  criteria: readonly Criterion[],
): number {
  const totalWeight = criteria.reduce((sum, c) => sum + c.weight, 0);
  const sum = criteria.reduce((n, c) => n + (c.weight * ((scores[c.name] ?? 1) - 1)) / 4, 0);
  return Math.round((sum / totalWeight) * 1000) / 1000;
}

export const Alternative = z.object({
  name: stored.text,
  description: stored.text,
  scores: z.record(z.string(), z.number().int().min(1).max(5)),
  pros: stored.list(stored.text, 0),
  cons: stored.list(stored.text, 0),
  /** Computed from the scores and the criteria weights, not by the model. */
  weighted_score: z.number().min(0).max(1).optional(),
});

export const generateAlternatives = phase({
  name: 'generateAlternatives',
  title: 'Generate alternatives',
  description: 'Three or more options, each scored against the criteria.',
  reads: [
    read(defineScope, ['constraints']),
    read(establishGoals, ['criteria']),
    read(retrieveInformation, ['answers']),
  ],
  output: z.object({
    summary: stored.text,
    alternatives: stored.list(Alternative, 3),
  }),
  system:
    'You generate distinct options for a decision (including doing nothing or deferring where ' +
    'that is a real option) and score each from 1 (poor) to 5 (excellent) on every criterion, ' +
    'using the evidence gathered.',
  prompt: (ctx) => {
    const scope = earlier(ctx, defineScope);
    const goals = earlier(ctx, establishGoals);
    const info = earlier(ctx, retrieveInformation);
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
    const criteria = earlier(ctx, establishGoals).criteria;
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
  offline: (ctx) => {
    const subject = subjectOf(ctx.query);
    const criteria = maybe(ctx, establishGoals)?.criteria ?? [];
    const answers = maybe(ctx, retrieveInformation)?.answers ?? [];
    const evidence = answers.filter((a) => a.answered).length;
    const riskSignals = answers.filter((a) =>
      /risk|outage|incident|downtime|fail|lock-?in/i.test(a.answer),
    ).length;
    // Column per option: Proceed, Pilot, Defer. Evidence of risk makes proceeding at once riskier.
    const base = {
      risk: [riskSignals > 0 ? 2 : 3, 4, 3],
      cost: [2, 3, 5],
      time: [4, 3, 1],
      impact: [evidence > 0 ? 5 : 4, 3, 1],
    } satisfies Record<string, [number, number, number]>;
    const row = (name: string) =>
      /risk/i.test(name)
        ? base.risk
        : /cost/i.test(name)
          ? base.cost
          : /time/i.test(name)
            ? base.time
            : base.impact;
    const scores = (i: 0 | 1 | 2) =>
      Object.fromEntries(criteria.map((c) => [c.name, row(c.name)[i]]));
    return {
      summary: `Three ways forward on whether to ${subject}, scored on ${criteria.length} criteria with ${evidence} answered information needs.`,
      alternatives: [
        {
          name: 'Proceed now',
          description: `${subject[0]!.toUpperCase()}${subject.slice(1)} in one planned change.`,
          scores: scores(0),
          pros: ['Fastest route to the benefit'],
          cons: ['All risk taken at once'],
        },
        {
          name: 'Pilot first',
          description: `Try it on a limited part first, then decide on the rest.`,
          scores: scores(1),
          pros: ['Learns cheaply before committing', 'Limits the blast radius'],
          cons: ['Slower, and the pilot may not show every problem'],
        },
        {
          name: 'Defer',
          description: 'Keep the current approach and revisit next quarter with more data.',
          scores: scores(2),
          pros: ['No change cost now'],
          cons: ['The root cause stays unaddressed'],
        },
      ],
    };
  },
});
