import type { PhaseResult, TokenUsage } from './decision';
import { summarizeAnswers, type RetrievalAnswer } from '../phases/retrieve-information';

interface NeedAnswer {
  output: unknown;
  model_calls: number;
  repair_rounds?: number;
  usage: TokenUsage;
  latency_ms: number;
}

/** The retrieval phase's output and usage, from the answers to its information needs, in order. */
export function combineRetrievals(parts: readonly NeedAnswer[]) {
  const answers = parts.map((p) => p.output as RetrievalAnswer);
  const sum = (pick: (p: NeedAnswer) => number) => parts.reduce((n, p) => n + pick(p), 0);
  return {
    output: { summary: summarizeAnswers(answers), answers },
    model_calls: sum((p) => p.model_calls),
    repair_rounds: sum((p) => p.repair_rounds ?? 0),
    usage: {
      input_tokens: sum((p) => p.usage.input_tokens),
      output_tokens: sum((p) => p.usage.output_tokens),
    },
    latency_ms: sum((p) => p.latency_ms),
  };
}

/** The retrieval phase's result from its activities' results, one per information need, in order. */
export function combineResults(results: readonly PhaseResult[]): PhaseResult {
  return {
    ...combineRetrievals(results),
    model: results[0]?.model ?? 'none',
    attempt: Math.max(1, ...results.map((r) => r.attempt)),
    ...(results.every((r) => r.finished_at)
      ? {
          finished_at: results
            .map((r) => r.finished_at!)
            .sort()
            .at(-1),
        }
      : {}),
  };
}
