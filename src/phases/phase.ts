import { ApplicationFailure } from '@temporalio/common';
import type { z } from 'zod';
import type { ReviewOutcome } from '../domain/decision';
import { MAX_CHARS } from './bounds';

/** A knowledge-base passage as an agent sees it: `ref` (P1, P2, …) is what it cites. */
export interface PromptPassage {
  ref: string;
  id: string;
  source: string;
  heading: string;
  text: string;
}

/** An information need as identifyInformationNeeds stores it. */
export interface Need {
  id: string;
  question: string;
  why: string;
}

/** What a phase's agent works from: the question, earlier outputs, for retrieval a need and passages. */
export interface AgentContext {
  query: string;
  /** The earlier outputs this phase reads, by phase name; read them with `earlier`. */
  outputs: { readonly [phase: string]: unknown };
  /** Extra context the asker gave with the question. */
  context?: string | null;
  /** For updateDraft: what the human reviewer said, if the decision asked for review. */
  review?: ReviewOutcome | null;
  need?: Need;
  passages?: PromptPassage[];
}

/** An earlier phase's fields that a phase's prompt reads: the only ones its activity is sent. */
export interface PhaseRead {
  phase: string;
  fields: readonly string[];
}

/** Declares that a phase reads `fields` of an earlier phase's output (checked against its schema). */
export function read<O extends z.ZodObject>(
  phase: { name: string; output: O },
  fields: readonly (keyof z.infer<O> & string)[],
): PhaseRead {
  return { phase: phase.name, fields };
}

/** Model calls one phase attempt may make: the answer, and one repair round. */
export const MODEL_CALLS_PER_ATTEMPT = 2;

/** Time for the store, the budget and the knowledge base around the model calls. */
const ATTEMPT_OVERHEAD_MS = 10_000;

/**
 * How long one attempt may run: each model call it may make gets the model timeout
 * (LLM_TIMEOUT_MS), so an attempt is never cut short while a call is still within its own.
 */
export function attemptTimeoutMs(modelTimeoutMs: number, calls = MODEL_CALLS_PER_ATTEMPT): number {
  return modelTimeoutMs * calls + ATTEMPT_OVERHEAD_MS;
}

/** A duration as Temporal reads it: milliseconds, or words such as '30 seconds'. */
export type Duration =
  number | `${number} ${'millisecond' | 'second' | 'minute' | 'hour'}${'' | 's'}`;

/** How Temporal retries a failed attempt of a phase. */
export interface PhaseRetry {
  initialInterval: Duration;
  backoffCoefficient: number;
  maximumInterval: Duration;
  maximumAttempts: number;
  nonRetryableErrorTypes: string[];
}

/** Errors an activity raises that no retry can fix; everything else is retried with backoff. */
export const NON_RETRYABLE_ERROR_TYPES = [
  'InvalidPhaseInput',
  'ModelAuthenticationError',
  'ModelInvalidRequest',
  'ModelNotFound',
  'ModelContentRefused',
  'OutputTooLarge',
  'PayloadTooLarge',
  'BudgetExceeded',
  'InvalidPhaseOutput',
];

/** How a phase runs as an activity unless its declaration says otherwise. */
export const PHASE_DEFAULTS: { heartbeatTimeout: Duration; retry: PhaseRetry } = {
  /** A worker that stops heartbeating for this long is taken as dead and the attempt retried. */
  heartbeatTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    maximumAttempts: 5,
    nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES,
  },
};

/**
 * Everything about one phase. The model answers `answer(ctx)`, a schema built for this very call
 * from the earlier outputs (names, ids and refs as enums, constants and required keys), so a
 * model that follows it cannot contradict them; `finish` turns the answer into the stored output,
 * computing what code can (weights, ids, sources, copied scores).
 */
export interface Phase<
  N extends string = string,
  O extends z.ZodObject = z.ZodObject,
  A extends z.ZodType = z.ZodType,
  R = z.infer<O>,
> {
  /** The activity type name, used everywhere a phase is named (API, history, search attributes). */
  readonly name: N;
  readonly title: string;
  readonly description: string;
  /** The earlier fields its prompt reads, and so the only ones its activity is sent. */
  readonly reads: readonly PhaseRead[];
  /** The stored output: the contract later phases and clients read. */
  readonly output: O;
  /**
   * What one call's `finish` returns, when the phase's output combines several calls
   * (retrieval answers each information need in a call of its own); else the output itself.
   */
  readonly callOutput?: z.ZodType<R>;
  /** The agent's role and rules. */
  readonly system: string;
  /** The user message, built from the question and earlier phases' structured fields. */
  prompt(ctx: AgentContext): string;
  /** The schema of this call's answer: bounded, every property required, no extra keys. */
  answer(ctx: AgentContext): A;
  /** The stored output (or this call's part of it): the answer plus what code computes. */
  finish(answer: z.infer<A>, ctx: AgentContext): R;
  /** The offline model's answer: fixed rules over the question and the earlier outputs. */
  offline(ctx: AgentContext): z.input<A>;
  readonly heartbeatTimeout?: Duration;
  readonly retry?: PhaseRetry;
}

/** A phase declaration, its types inferred from its schemas. */
export function phase<N extends string, O extends z.ZodObject, A extends z.ZodType, R = z.infer<O>>(
  declaration: Phase<N, O, A, R>,
): Phase<N, O, A, R> {
  return declaration;
}

/** An earlier phase's output, or a permanent failure: the workflow passes each one forward. */
export function earlier<O extends z.ZodObject>(
  ctx: AgentContext,
  phase: { name: string; output: O },
): z.infer<O> {
  const output = ctx.outputs[phase.name];
  if (output === undefined) {
    throw ApplicationFailure.create({
      type: 'InvalidPhaseInput',
      message: `the ${phase.name} output is missing from the decision state`,
      nonRetryable: true,
    });
  }
  return output as z.infer<O>;
}

/** An earlier phase's output when it is there (the offline rules tolerate a missing one). */
export function maybe<O extends z.ZodObject>(
  ctx: AgentContext,
  phase: { name: string; output: O },
): z.infer<O> | undefined {
  return ctx.outputs[phase.name] as z.infer<O> | undefined;
}

/**
 * Names made unique, case-insensitively, by numbering repeats ("Cost", "Cost (2)"): later phases
 * use them as keys, and which one the model meant twice is not for code to guess.
 */
export function uniqueNames(names: readonly string[]): string[] {
  const seen = new Set<string>();
  return names.map((name) => {
    let candidate = name;
    for (let n = 2; seen.has(candidate.toLowerCase()); n++) {
      const suffix = ` (${n})`;
      candidate = `${name.slice(0, MAX_CHARS.name - suffix.length)}${suffix}`;
    }
    seen.add(candidate.toLowerCase());
    return candidate;
  });
}

export const bullets = (items: readonly string[]) =>
  items.length ? items.map((i) => `- ${i}`).join('\n') : '- (none)';

export const question = (ctx: AgentContext) =>
  ctx.context
    ? `Decision question: ${ctx.query}\n\nContext from the asker: ${ctx.context}`
    : `Decision question: ${ctx.query}`;
