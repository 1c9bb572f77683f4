import { ApplicationFailure } from '@temporalio/common';
import { RetrievalAnswer } from '../domain/outputs';
import { question, type Agent, type AgentContext } from './context';

function needOf(ctx: AgentContext) {
  if (!ctx.need) {
    throw ApplicationFailure.create({
      type: 'InvalidPhaseInput',
      message: 'retrieveInformation needs an information need to answer',
      nonRetryable: true,
    });
  }
  return ctx.need;
}

/** Answers one information need from the passages the knowledge-base search found. */
export const retrieveInformation: Agent<typeof RetrievalAnswer> = {
  phase: 'retrieveInformation',
  schema: RetrievalAnswer,
  system:
    'You answer one question strictly from the passages given. Cite every passage you use by its ' +
    'ref (P1, P2, …) and source. If the passages do not answer the question, set answered to ' +
    'false, confidence to "none", and say so; never use outside knowledge or invent sources.',
  prompt: (ctx) => {
    const need = needOf(ctx);
    const passages = (ctx.passages ?? [])
      .map((p) => `[${p.ref}] source: ${p.source} — ${p.heading}\n${p.text}`)
      .join('\n\n');
    return [
      question(ctx),
      `Information need ${need.id}: ${need.question}\nWhy it matters: ${need.why}`,
      `Passages:\n\n${passages || '(none found)'}`,
      `Answer need ${need.id} from these passages only.`,
    ].join('\n\n');
  },
  check: (output, ctx) => {
    const need = needOf(ctx);
    const refs = new Map((ctx.passages ?? []).map((p) => [p.ref, p.source]));
    const problems: string[] = [];
    if (output.need_id !== need.id) problems.push(`need_id must be "${need.id}"`);
    for (const c of output.citations) {
      if (!refs.has(c.passage_id)) {
        problems.push(`citation ${c.passage_id} is not one of the passages given`);
      } else if (refs.get(c.passage_id) !== c.source) {
        problems.push(`citation ${c.passage_id} has source "${refs.get(c.passage_id)}"`);
      }
    }
    if (output.answered && output.citations.length === 0) {
      problems.push('an answered need must cite at least one passage');
    }
    return problems;
  },
  finish: (output, ctx) => ({ ...output, question: needOf(ctx).question }),
};

/** The answer when the search found nothing: said plainly, no model call, no sources. */
export function unansweredNeed(ctx: AgentContext): RetrievalAnswer {
  const need = needOf(ctx);
  return {
    need_id: need.id,
    question: need.question,
    answered: false,
    answer: 'No passage in the knowledge base addresses this question.',
    confidence: 'none',
    citations: [],
  };
}
