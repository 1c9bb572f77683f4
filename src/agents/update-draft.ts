import { z } from 'zod';
import { item, list, long, oneOf, paragraph } from './answers';
import { bullets, earlier, question, type Agent, type AgentContext } from './context';

function answerSchema(ctx: AgentContext) {
  const names = earlier(ctx, 'generateAlternatives').alternatives.map((a) => a.name);
  return z.strictObject({
    summary: paragraph,
    critique: list(item, 1),
    revised_recommendation: oneOf(names).describe('The name of one of the alternatives'),
    revised_rationale: long,
    changes: list(item, 0),
  });
}

function reviewInstruction(ctx: AgentContext): string {
  switch (ctx.review?.kind) {
    case 'feedback':
      return `A human reviewer read the draft and wrote:\n"${ctx.review.feedback}"\nRevise the draft to address this feedback first, then add your own critique.`;
    case 'approved':
      return 'A human reviewer approved the draft. Keep the recommendation; critique only to sharpen the rationale and risks.';
    case 'timed_out':
      return 'A human review was requested but no reviewer answered in time. Critique the draft yourself, then revise it.';
    default:
      return 'Critique the draft, then give the revised recommendation and rationale.';
  }
}

export const updateDraft: Agent<ReturnType<typeof answerSchema>> = {
  phase: 'updateDraft',
  system:
    'You critique a draft decision as a sceptical reviewer: unsupported claims, unanswered ' +
    'information needs, risks without mitigation, goals the recommendation does not serve. Then ' +
    'revise the draft. Keep the recommendation unless the critique shows it is wrong; it must ' +
    'stay one of the alternatives, by name.',
  prompt: (ctx) => {
    const draft = earlier(ctx, 'draftDecision');
    const goals = earlier(ctx, 'establishGoals');
    const info = earlier(ctx, 'retrieveInformation');
    const alts = earlier(ctx, 'generateAlternatives').alternatives;
    return [
      question(ctx),
      `Draft recommendation: ${draft.recommended} (confidence ${draft.confidence})`,
      `Rationale: ${draft.rationale}`,
      `Risks:\n${bullets(draft.risks.map((r) => `${r.risk} — mitigation: ${r.mitigation}`))}`,
      `Goals:\n${bullets(goals.goals.map((g) => `${g.goal} (metric: ${g.metric})`))}`,
      `Unanswered needs:\n${bullets(info.answers.filter((a) => !a.answered).map((a) => `${a.need_id} ${a.question}`))}`,
      `Alternatives: ${alts.map((a) => a.name).join(', ')}`,
      reviewInstruction(ctx),
    ].join('\n\n');
  },
  answer: answerSchema,
  finish: (answer) => answer,
};
