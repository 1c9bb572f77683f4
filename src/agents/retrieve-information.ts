import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import type { RetrievalAnswer } from '../domain/outputs';
import { long, oneOf } from './answers';
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

function answerSchema(ctx: AgentContext) {
  const refs = (ctx.passages ?? []).map((p) => p.ref);
  return z.strictObject({
    need_id: z.literal(needOf(ctx).id),
    answered: z.boolean().describe('True only when the passages answer the question'),
    answer: long,
    confidence: z.enum(['none', 'low', 'medium', 'high']),
    citations: z
      .array(oneOf(refs))
      .max(refs.length)
      .describe('The refs of the passages the answer uses'),
  });
}

/** Answers one information need from the passages the knowledge-base search found. */
export const retrieveInformation: Agent<ReturnType<typeof answerSchema>, RetrievalAnswer> = {
  phase: 'retrieveInformation',
  system:
    'You answer one question strictly from the passages given. Cite every passage you use by its ' +
    'ref (P1, P2, …). If the passages do not answer the question, set answered to false, ' +
    'confidence to "none", and say so; never use outside knowledge.',
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
  answer: answerSchema,
  // Sources come from the passages, never from the model; an answer that cites nothing is not
  // an answer from the knowledge base.
  finish: (answer, ctx) => {
    const need = needOf(ctx);
    const sources = new Map((ctx.passages ?? []).map((p) => [p.ref, p.source]));
    const cited = [...new Set(answer.citations)];
    const answered = answer.answered && cited.length > 0;
    return {
      need_id: need.id,
      question: need.question,
      answered,
      answer: answer.answer,
      confidence: answered ? answer.confidence : 'none',
      citations: cited.map((ref) => ({ passage_id: ref, source: sources.get(ref)! })),
    };
  },
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
