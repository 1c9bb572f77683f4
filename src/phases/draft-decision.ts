import { z } from 'zod';
import { list, long, MAX_ITEMS, oneOf, paragraph, risk, stored, StoredRisk } from './bounds';
import { establishGoals } from './establish-goals';
import { generateAlternatives } from './generate-alternatives';
import { sentences } from './offline-rules';
import { bullets, earlier, maybe, phase, question, read, type AgentContext } from './phase';
import { retrieveInformation } from './retrieve-information';

function answerSchema(ctx: AgentContext) {
  const names = earlier(ctx, generateAlternatives).alternatives.map((a) => a.name);
  return z.strictObject({
    summary: paragraph,
    recommended: oneOf(names).describe('The name of one of the alternatives'),
    rationale: long,
    risks: list(risk, 1, MAX_ITEMS.risks),
    confidence: z.enum(['low', 'medium', 'high']),
  });
}

export const draftDecision = phase({
  name: 'draftDecision',
  title: 'Draft decision',
  description: 'The recommended option with its rationale and risks.',
  reads: [
    read(establishGoals, ['goals']),
    read(generateAlternatives, ['alternatives']),
    read(retrieveInformation, ['answers']),
  ],
  output: z.object({
    summary: stored.text,
    recommended: stored.text.describe('The name of one of the alternatives'),
    rationale: stored.text,
    risks: stored.list(StoredRisk, 1),
    confidence: z.enum(['low', 'medium', 'high']),
  }),
  system:
    'You draft a decision: recommend exactly one of the alternatives by its name, explain why ' +
    'against the criteria and the evidence, and name the main risks with mitigations.',
  prompt: (ctx) => {
    const goals = earlier(ctx, establishGoals);
    const alts = earlier(ctx, generateAlternatives).alternatives;
    const info = earlier(ctx, retrieveInformation);
    return [
      question(ctx),
      `Goals:\n${bullets(goals.goals.map((g) => g.goal))}`,
      `Alternatives (weighted score 0–1):\n${bullets(
        alts.map(
          (a) =>
            `${a.name} (${a.weighted_score ?? '?'}): ${a.description} Pros: ${a.pros.join('; ')}. Cons: ${a.cons.join('; ')}.`,
        ),
      )}`,
      `Evidence:\n${bullets(info.answers.filter((a) => a.answered).map((a) => a.answer))}`,
      'Recommend one alternative.',
    ].join('\n\n');
  },
  answer: answerSchema,
  finish: (answer) => answer,
  offline: (ctx) => {
    const alts = [...(maybe(ctx, generateAlternatives)?.alternatives ?? [])].sort(
      (a, b) => (b.weighted_score ?? 0) - (a.weighted_score ?? 0),
    );
    const best = alts[0]!;
    const answers = maybe(ctx, retrieveInformation)?.answers ?? [];
    const riskAnswer = answers.find((a) => a.answered && /risk/i.test(a.question));
    const riskSentence =
      riskAnswer &&
      sentences(riskAnswer.answer.replace(/\s*\[P\d+\]/g, '')).find((x) => /risk/i.test(x));
    const margin = (best.weighted_score ?? 0) - (alts[1]?.weighted_score ?? 0);
    return {
      summary: `Recommend "${best.name}" (weighted score ${best.weighted_score}).`,
      recommended: best.name,
      rationale: `"${best.name}" scores highest on the weighted criteria (${alts.map((a) => `${a.name} ${a.weighted_score}`).join(', ')}). ${best.pros.join('; ')}.`,
      risks: [
        {
          risk: riskSentence ?? best.cons[0] ?? 'Unforeseen problems',
          mitigation: 'Define a rollback plan and a success measure before starting.',
        },
      ],
      confidence:
        margin > 0.15 ? ('high' as const) : margin > 0.05 ? ('medium' as const) : ('low' as const),
    };
  },
});
