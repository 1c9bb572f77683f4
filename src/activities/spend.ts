import { ApplicationFailure } from '@temporalio/activity';
import type { PhaseRun } from '../domain/decision';
import { receivedUsage, type LanguageModel } from '../llm/model';

/**
 * What a phase's attempts have paid for so far. An attempt that fails (an invalid answer after
 * its repair round, a provider error) has paid for its calls too: each attempt records its spend
 * in its heartbeat details, which Temporal hands to the next attempt.
 */
export interface PhaseSpend {
  model_calls: number;
  repair_rounds: number;
  input_tokens: number;
  output_tokens: number;
  latency_ms: number;
}

const FIELDS = [
  'model_calls',
  'repair_rounds',
  'input_tokens',
  'output_tokens',
  'latency_ms',
] as const satisfies readonly (keyof PhaseSpend)[];

/** The spend the previous attempt recorded, or none (a first attempt, or details of another shape). */
export function spendFrom(details: unknown): PhaseSpend {
  const given = (details ?? {}) as Partial<Record<keyof PhaseSpend, unknown>>;
  const spend = {} as PhaseSpend;
  for (const field of FIELDS) {
    const value = given[field];
    spend[field] = typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : 0;
  }
  return spend;
}

/**
 * The model with every call that reaches it added to `spend`: a call is paid for whether or not
 * its answer is used; a second message means a repair round.
 */
export function metered(model: LanguageModel, spend: PhaseSpend): LanguageModel {
  return {
    name: model.name,
    streams: model.streams,
    async generate(request) {
      spend.model_calls += 1;
      if (request.messages.length > 1) spend.repair_rounds += 1;
      const started = performance.now();
      try {
        const response = await model.generate(request);
        spend.input_tokens += response.usage?.input_tokens ?? 0;
        spend.output_tokens += response.usage?.output_tokens ?? 0;
        return response;
      } catch (err) {
        // A call that ended early is paid for what it had received.
        const received = receivedUsage(err);
        spend.input_tokens += received?.input_tokens ?? 0;
        spend.output_tokens += received?.output_tokens ?? 0;
        throw err;
      } finally {
        spend.latency_ms += Math.round(performance.now() - started);
      }
    },
  };
}

/**
 * The error a failed attempt ends with, carrying what the phase paid for (in its details) when it
 * is one of the project's own failures: the last attempt's tells the workflow, which records it.
 */
export function withSpend(err: unknown, run: PhaseRun): unknown {
  if (!(err instanceof ApplicationFailure) || (err.details?.length ?? 0) > 0) return err;
  return new ApplicationFailure(
    err.message,
    err.type,
    err.nonRetryable,
    [{ phase_run: run }],
    err.cause,
    err.nextRetryDelay,
    err.category,
  );
}
