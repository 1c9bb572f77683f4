import { CompileResultOutput } from '../domain/outputs';
import { bullets, earlier, question, type Agent } from './context';

export const compileResult: Agent<typeof CompileResultOutput> = {
  phase: 'compileResult',
  schema: CompileResultOutput,
  system:
    'You compile the final decision record from the analysis: a title, the decision in one ' +
    'sentence, a summary, the rationale, the alternatives considered with their scores, the ' +
    'risks, concrete next steps, and the questions that remain open.',
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
  check: (output, ctx) => {
    const names = earlier(ctx, 'generateAlternatives').alternatives.map((a) => a.name);
    const unknown = output.alternatives_considered.filter((a) => !names.includes(a.name));
    return unknown.length
      ? [
          `alternatives_considered names unknown alternatives: ${unknown.map((a) => a.name).join(', ')}`,
        ]
      : [];
  },
};
