import { z } from 'zod';
import { item, list, long, oneOf, paragraph, stored } from './bounds';
import { draftDecision } from './draft-decision';
import { establishGoals } from './establish-goals';
import { generateAlternatives } from './generate-alternatives';
import { bullets, earlier, maybe, phase, question, read, type AgentContext } from './phase';
import { retrieveInformation } from './retrieve-information';

function answerSchema(ctx: AgentContext) {
  const names = earlier(ctx, generateAlternatives).alternatives.map((a) => a.name);
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

export const updateDraft = phase({
  name: 'updateDraft',
  title: 'Update draft',
  description: 'The draft revised by critique.',
  reads: [
    read(draftDecision, ['recommended', 'confidence', 'rationale', 'risks']),
    read(establishGoals, ['goals']),
    read(retrieveInformation, ['answers']),
    read(generateAlternatives, ['alternatives']),
  ],
  output: z.object({
    summary: stored.text,
    critique: stored.list(stored.text, 1),
    revised_recommendation: stored.text.describe('The name of one of the alternatives'),
    revised_rationale: stored.text,
    changes: stored.list(stored.text, 0),
  }),
  system:
    'You critique a draft decision as a sceptical reviewer: unsupported claims, unanswered ' +
    'information needs, risks without mitigation, goals the recommendation does not serve. Then ' +
    'revise the draft. Keep the recommendation unless the critique shows it is wrong; it must ' +
    'stay one of the alternatives, by name.',
  prompt: (ctx) => {
    const draft = earlier(ctx, draftDecision);
    const goals = earlier(ctx, establishGoals);
    const info = earlier(ctx, retrieveInformation);
    const alts = earlier(ctx, generateAlternatives).alternatives;
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
  offline: (ctx) => {
    const { review } = ctx;
    const draft = earlier(ctx, draftDecision);
    const unanswered = (maybe(ctx, retrieveInformation)?.answers ?? []).filter((a) => !a.answered);
    const critique = [
      ...(review?.kind === 'feedback' ? [`Reviewer feedback: ${review.feedback}`] : []),
      ...(review?.kind === 'approved' ? ['A reviewer approved the draft.'] : []),
      ...(review?.kind === 'timed_out'
        ? ['No reviewer answered in time; this is self-critique.']
        : []),
      'The draft names no success measure for the recommendation.',
      ...(unanswered.length
        ? [
            `Needs ${unanswered.map((a) => a.need_id).join(', ')} are unanswered; the rationale rests on less evidence.`,
          ]
        : []),
    ];
    return {
      summary: `${draft.recommended}, with a success measure and a review point added.`,
      critique,
      revised_recommendation: draft.recommended,
      revised_rationale: `${draft.rationale} Success is measured against the goals' metrics at a review point agreed before starting.`,
      changes: [
        ...(review?.kind === 'feedback' ? ['Revised to address the reviewer feedback'] : []),
        'Added a success measure and a review point',
        ...(unanswered.length ? ['Listed the unanswered needs as open questions'] : []),
      ],
    };
  },
});
