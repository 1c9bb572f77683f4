import { DraftDecisionOutput } from '../domain/outputs';
import { bullets, earlier, question, type Agent } from './context';

export const draftDecision: Agent<typeof DraftDecisionOutput> = {
  phase: 'draftDecision',
  schema: DraftDecisionOutput,
  system:
    'You draft a decision: recommend exactly one of the alternatives by its name, explain why ' +
    'against the criteria and the evidence, and name the main risks with mitigations.',
  prompt: (ctx) => {
    const goals = earlier(ctx, 'establishGoals');
    const alts = earlier(ctx, 'generateAlternatives').alternatives;
    const info = earlier(ctx, 'retrieveInformation');
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
  check: (output, ctx) => {
    const names = earlier(ctx, 'generateAlternatives').alternatives.map((a) => a.name);
    return names.includes(output.recommended)
      ? []
      : [`recommended must be one of: ${names.map((n) => `"${n}"`).join(', ')}`];
  },
};
