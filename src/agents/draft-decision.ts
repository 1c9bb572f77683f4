import { z } from 'zod';
import { MAX_ITEMS } from '../domain/outputs';
import { list, long, oneOf, paragraph, risk } from './answers';
import { bullets, earlier, question, type Agent, type AgentContext } from './context';

function answerSchema(ctx: AgentContext) {
  const names = earlier(ctx, 'generateAlternatives').alternatives.map((a) => a.name);
  return z.strictObject({
    summary: paragraph,
    recommended: oneOf(names).describe('The name of one of the alternatives'),
    rationale: long,
    risks: list(risk, 1, MAX_ITEMS.risks),
    confidence: z.enum(['low', 'medium', 'high']),
  });
}

export const draftDecision: Agent<ReturnType<typeof answerSchema>> = {
  phase: 'draftDecision',
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
  answer: answerSchema,
  finish: (answer) => answer,
};
