import { z } from 'zod';
import { analyzeRootCause } from './analyze-root-cause';
import {
  boundedText,
  item,
  list,
  long,
  MAX_ITEMS,
  paragraph,
  risk,
  stored,
  StoredRisk,
} from './bounds';
import { draftDecision } from './draft-decision';
import { generateAlternatives } from './generate-alternatives';
import { identifyTrigger } from './identify-trigger';
import { bullets, earlier, maybe, phase, question, read } from './phase';
import { retrieveInformation } from './retrieve-information';
import { updateDraft } from './update-draft';

const Answer = z.strictObject({
  title: boundedText(160),
  decision: paragraph.describe('The decision in one sentence'),
  summary: paragraph,
  rationale: long,
  risks: list(risk, 0, MAX_ITEMS.risks),
  next_steps: list(item, 1),
  open_questions: list(item, 0),
});

export const compileResult = phase({
  name: 'compileResult',
  title: 'Compile result',
  description: 'The final decision record.',
  reads: [
    read(identifyTrigger, ['trigger']),
    read(analyzeRootCause, ['root_cause']),
    read(generateAlternatives, ['alternatives']),
    read(draftDecision, ['risks']),
    read(updateDraft, ['summary', 'critique', 'revised_recommendation', 'revised_rationale']),
    read(retrieveInformation, ['answers']),
  ],
  output: z.object({
    title: stored.text,
    decision: stored.text,
    summary: stored.text,
    rationale: stored.text,
    /** Copied by code from the alternatives and their weighted scores. */
    alternatives_considered: stored.list(
      z.object({ name: stored.text, weighted_score: z.number() }),
      1,
    ),
    risks: stored.list(StoredRisk, 0),
    next_steps: stored.list(stored.text, 1),
    open_questions: stored.list(stored.text, 0),
  }),
  system:
    'You compile the final decision record from the analysis: a title, the decision in one ' +
    'sentence, a summary, the rationale, the risks, concrete next steps, and the questions that ' +
    'remain open.',
  prompt: (ctx) => {
    const trigger = earlier(ctx, identifyTrigger);
    const cause = earlier(ctx, analyzeRootCause);
    const alts = earlier(ctx, generateAlternatives).alternatives;
    const draft = earlier(ctx, draftDecision);
    const revised = earlier(ctx, updateDraft);
    const info = earlier(ctx, retrieveInformation);
    return [
      question(ctx),
      `Trigger: ${trigger.trigger}`,
      `Root cause: ${cause.root_cause}`,
      `Alternatives: ${alts.map((a) => `${a.name} (${a.weighted_score ?? '?'})`).join(', ')}`,
      `Recommendation: ${revised.revised_recommendation}`,
      `Rationale: ${revised.revised_rationale}`,
      `Risks:\n${bullets(draft.risks.map((r) => `${r.risk} — ${r.mitigation}`))}`,
      `Critique addressed:\n${bullets(revised.critique)}`,
      `Unanswered needs:\n${bullets(info.answers.filter((a) => !a.answered).map((a) => a.question))}`,
      'Compile the final decision record.',
    ].join('\n\n');
  },
  answer: () => Answer,
  // The alternatives and their scores are copied, not retold.
  finish: (answer, ctx) => ({
    title: answer.title,
    decision: answer.decision,
    summary: answer.summary,
    rationale: answer.rationale,
    alternatives_considered: earlier(ctx, generateAlternatives).alternatives.map((a) => ({
      name: a.name,
      weighted_score: a.weighted_score ?? 0,
    })),
    risks: answer.risks,
    next_steps: answer.next_steps,
    open_questions: answer.open_questions,
  }),
  offline: (ctx) => {
    const revised = earlier(ctx, updateDraft);
    const alts = maybe(ctx, generateAlternatives)?.alternatives ?? [];
    return {
      title: ctx.query,
      decision:
        `${revised.revised_recommendation}: ${alts.find((a) => a.name === revised.revised_recommendation)?.description ?? ''}`.trim(),
      summary: revised.summary,
      rationale: revised.revised_rationale,
      risks: maybe(ctx, draftDecision)?.risks ?? [],
      next_steps: [
        'Agree the success measure and review date',
        'Name an owner for the change',
        'Prepare the rollback plan',
      ],
      open_questions: (maybe(ctx, retrieveInformation)?.answers ?? [])
        .filter((a) => !a.answered)
        .map((a) => a.question),
    };
  },
});
