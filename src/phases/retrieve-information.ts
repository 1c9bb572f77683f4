import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { searchTerms } from '../domain/text';
import { long, oneOf, stored } from './bounds';
import { identifyInformationNeeds, InformationNeed } from './identify-information-needs';
import { overlap, sentences } from './offline-rules';
import { phase, question, read, type AgentContext, type PromptPassage } from './phase';

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

export const Citation = z.object({
  passage_id: z
    .string()
    .min(1)
    .max(8)
    .describe('The ref of a passage given in the prompt: P1, P2, …'),
  /** Filled in by code from the passage, never asked of the model. */
  source: z.string().min(1).max(300),
});

export const RetrievalAnswer = z.object({
  need_id: InformationNeed.shape.id,
  question: stored.text,
  answered: z.boolean(),
  answer: stored.text,
  confidence: z.enum(['none', 'low', 'medium', 'high']),
  citations: stored.list(Citation, 0),
});
export type RetrievalAnswer = z.infer<typeof RetrievalAnswer>;

/** One line on how many information needs the knowledge base answered. */
export function summarizeAnswers(answers: readonly RetrievalAnswer[]): string {
  const answered = answers.filter((a) => a.answered).length;
  return `${answered} of ${answers.length} information needs answered from the knowledge base.`;
}

/**
 * Answers the information needs from the knowledge base. Each need is a call (and, in decisions
 * started since retrieval fanned out, an activity) of its own; the output combines them in order.
 */
export const retrieveInformation = phase({
  name: 'retrieveInformation',
  title: 'Retrieve information',
  description: 'Answers to the information needs from the knowledge base.',
  // The fan-out sends each activity one need instead; `needs` is for the single-activity form
  // (decisions started before the fan-out).
  reads: [read(identifyInformationNeeds, ['needs'])],
  output: z.object({
    summary: stored.text,
    answers: stored.list(RetrievalAnswer, 0),
  }),
  callOutput: RetrievalAnswer,
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
  finish: (answer, ctx): RetrievalAnswer => {
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
  offline: (ctx) => {
    const need = needOf(ctx);
    const terms = new Set(searchTerms(need.question));
    const scored = (ctx.passages ?? [])
      .map((p) => ({ p, best: bestSentences(p, terms) }))
      .filter((x) => x.best.score > 0)
      .sort((a, b) => b.best.score - a.best.score);
    if (scored.length === 0) {
      return {
        need_id: need.id,
        answered: false,
        answer: 'The passages found do not address this question.',
        confidence: 'none' as const,
        citations: [],
      };
    }
    const used = scored.slice(0, 2);
    return {
      need_id: need.id,
      answered: true,
      answer: used.map((u) => `${u.best.text} [${u.p.ref}]`).join(' '),
      confidence:
        used.length > 1 && used[0]!.best.score >= 2 ? ('high' as const) : ('medium' as const),
      citations: used.map((u) => u.p.ref),
    };
  },
});

function bestSentences(p: PromptPassage, terms: Set<string>): { text: string; score: number } {
  const ranked = sentences(p.text)
    .map((s) => ({ s, score: overlap(s, terms) }))
    .sort((a, b) => b.score - a.score);
  const top = ranked.slice(0, 2).filter((r) => r.score > 0);
  return { text: top.map((r) => r.s).join(' '), score: top.reduce((n, r) => n + r.score, 0) };
}

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
