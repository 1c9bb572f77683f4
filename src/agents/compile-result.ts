import { z } from 'zod';
import { MAX_ITEMS, type PhaseOutputMap } from '../domain/outputs';
import { boundedText, item, list, long, paragraph, risk } from './answers';
import { bullets, earlier, question, type Agent } from './context';

const Answer = z.strictObject({
  title: boundedText(160),
  decision: paragraph.describe('The decision in one sentence'),
  summary: paragraph,
  rationale: long,
  risks: list(risk, 0, MAX_ITEMS.risks),
  next_steps: list(item, 1),
  open_questions: list(item, 0),
});

export const compileResult: Agent<typeof Answer, PhaseOutputMap['compileResult']> = {
  phase: 'compileResult',
  system:
    'You compile the final decision record from the analysis: a title, the decision in one ' +
    'sentence, a summary, the rationale, the risks, concrete next steps, and the questions that ' +
    'remain open.',
  prompt: (ctx) => {
    const trigger = earlier(ctx, 'identifyTrigger');
    const cause = earlier(ctx, 'analyzeRootCause');
    const alts = earlier(ctx, 'generateAlternatives').alternatives;
    const draft = earlier(ctx, 'draftDecision');
    const revised = earlier(ctx, 'updateDraft');
    const info = earlier(ctx, 'retrieveInformation');
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
    alternatives_considered: earlier(ctx, 'generateAlternatives').alternatives.map((a) => ({
      name: a.name,
      weighted_score: a.weighted_score ?? 0,
    })),
    risks: answer.risks,
    next_steps: answer.next_steps,
    open_questions: answer.open_questions,
  }),
};
