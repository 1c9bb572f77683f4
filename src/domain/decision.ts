import type { InformationNeed, PhaseOutputMap } from './outputs';
import { PHASES, type PhaseName } from './phases';
import type { WebhookState, WebhookSubscription } from './webhook';

export const DECISION_STATUSES = [
  'pending',
  'running',
  'awaiting_review',
  'completed',
  'failed',
  'cancelled',
] as const;
export type DecisionStatus = (typeof DECISION_STATUSES)[number];

export function isDecisionStatus(value: string): value is DecisionStatus {
  return (DECISION_STATUSES as readonly string[]).includes(value);
}

export const PHASE_STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'] as const;
export type PhaseStatus = (typeof PHASE_STATUSES)[number];

export const TERMINAL_STATUSES: readonly DecisionStatus[] = ['completed', 'failed', 'cancelled'];

export function isTerminal(status: DecisionStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

/** Why a decision failed, in words an operator can act on. */
export interface DecisionError {
  phase: PhaseName | null;
  type: string;
  message: string;
}

export interface PhaseRecord {
  name: PhaseName;
  title: string;
  status: PhaseStatus;
  started_at: string | null;
  completed_at: string | null;
  duration_ms: number | null;
  /** How many attempts the phase's activity took (1 when it succeeded first time). */
  attempts: number | null;
  model: string | null;
  model_calls: number | null;
  /** Second calls made because an answer did not validate (null in older decisions). */
  repair_rounds: number | null;
  /** Tokens the provider reported, summed over the phase's model calls. */
  usage: TokenUsage | null;
  /** Time spent waiting for the model. */
  latency_ms: number | null;
  /** Set when the output was taken from the decision this one was forked from, not computed. */
  reused_from: string | null;
  error: DecisionError | null;
}

export interface TokenUsage {
  input_tokens: number;
  output_tokens: number;
}

/** What one phase activity returns to the workflow. */
export interface PhaseResult<O = unknown> {
  output: O;
  model: string;
  /**
   * Model calls the phase made, over all its attempts (a repair round makes two); answers reused
   * from the store count 0. Results of older workers count their last attempt only.
   */
  model_calls: number;
  /** Second calls made because an answer did not validate (absent from older workers' results). */
  repair_rounds?: number;
  usage: TokenUsage;
  latency_ms: number;
  attempt: number;
  /** When the activity returned (absent from older workers' results). */
  finished_at?: string;
}

/** The most a whole decision may spend, across retries, repair rounds and the fan-out. */
export interface DecisionBudget {
  max_model_calls: number;
  max_tokens: number;
}

/** What bounds a decision, fixed when it is created. */
export interface DecisionLimits {
  budget: DecisionBudget;
  /** How long one model call may take: a phase attempt gets this per call it may make. */
  model_timeout_ms: number;
  /** The most bytes a phase's input or output may take in the decision's history. */
  payload_max_bytes: number;
}

/**
 * The smallest token budget a decision may be given: the largest reservation one call can make
 * (generateAlternatives at its token cap with its longest input) fits in it.
 */
export const MIN_TOKEN_BUDGET = 50_000;

/** Limits of decisions started before they were set at creation. */
export const DEFAULT_LIMITS: DecisionLimits = {
  budget: { max_model_calls: 60, max_tokens: 400_000 },
  model_timeout_ms: 60_000,
  payload_max_bytes: 256 * 1024,
};

/** What one phase activity receives: the question and the earlier fields its prompt reads. */
export interface PhaseInput {
  decision_id: string;
  query: string;
  outputs: PhaseOutputs;
  /** The most bytes the phase's output may take (absent in older decisions: the default). */
  payload_max_bytes?: number;
  /** The decision's budget and what its completed phases spent (absent in older decisions). */
  budget?: DecisionBudget & { spent: { model_calls: number; tokens: number } };
  /** For retrieveInformation: the one information need this activity answers. */
  need?: InformationNeed;
  /**
   * For retrieveInformation: how many retrievals run at once, this one included; each may spend
   * its share of what is left of the budget while the ledger cannot be reached.
   */
  parallel?: number;
  /** Extra context the asker gave with the question. */
  context?: string | null;
  /** For updateDraft: what the human reviewer said, when the decision asked for review. */
  review?: ReviewOutcome | null;
}

/** The review step of a decision created with `review: true`. */
export type ReviewOutcome =
  { kind: 'approved' } | { kind: 'feedback'; feedback: string } | { kind: 'timed_out' };

export interface ReviewState {
  requested: boolean;
  status: 'not_requested' | 'pending' | 'awaiting' | 'approved' | 'feedback' | 'timed_out';
  feedback: string | null;
  requested_at: string | null;
  answered_at: string | null;
}

/** What a reviewer sends: approve the draft, or give feedback for the revision. */
export interface ReviewInput {
  approve?: boolean;
  feedback?: string;
}

/** Every event a decision's stream carries (and a webhook may subscribe to). */
export const DECISION_EVENT_TYPES = [
  'decision.started',
  'phase.started',
  'phase.completed',
  'phase.failed',
  'review.requested',
  'review.received',
  'review.timed_out',
  'decision.completed',
  'decision.failed',
  'decision.cancelled',
] as const;
export type DecisionEventType = (typeof DECISION_EVENT_TYPES)[number];

interface EventOf<T extends DecisionEventType, D> {
  type: T;
  /** What the stream and webhooks carry. */
  data: D;
  /**
   * The event's number in its decision, counted by the workflow: the projection appends each
   * number once, however often a write that carries it is retried.
   */
  n?: number;
  /** When it happened (workflow time); the record's times come from here. */
  at?: string;
}

/** What a phase's run cost, as its record shows it (not streamed). */
export interface PhaseRun {
  attempts: number;
  model: string;
  model_calls: number;
  repair_rounds: number | null;
  usage: TokenUsage;
  latency_ms: number;
}

interface PhaseStep {
  phase: PhaseName;
  title: string;
  index: number;
}

/** One entry of a decision's event stream (type as in the API, data as JSON). */
export type DecisionEvent =
  | EventOf<'decision.started', { process_id: string; status: 'running' }>
  | EventOf<'phase.started', PhaseStep>
  | (EventOf<
      'phase.completed',
      PhaseStep & { duration_ms: number; reused_from: string | null; output: unknown }
    > & { run?: PhaseRun })
  | (EventOf<'phase.failed', PhaseStep & { error: DecisionError }> & { run?: PhaseRun })
  | EventOf<'review.requested', { phase: 'draftDecision'; draft: unknown; timeout_ms: number }>
  | EventOf<'review.received', { approved: boolean; feedback: string | null }>
  | EventOf<'review.timed_out', { timeout_ms: number }>
  | EventOf<'decision.completed', { status: 'completed'; result: DecisionResult | null }>
  | EventOf<'decision.failed', { status: 'failed'; error: DecisionError | null }>
  | EventOf<
      'decision.cancelled',
      { status: 'cancelled'; phase?: PhaseName | null; error?: DecisionError | null }
    >;

export type PhaseOutputs = Partial<PhaseOutputMap>;

export interface DecisionUsage extends TokenUsage {
  model_calls: number;
  /** Absent in older decisions. */
  repair_rounds?: number;
  latency_ms: number;
}

export interface DecisionResult {
  query: string;
  /** The compiled decision record (the output of compileResult). */
  decision: PhaseOutputMap['compileResult'];
  /** Every phase's output, keyed by phase name. */
  phases: PhaseOutputMap;
  usage: DecisionUsage;
}

/**
 * The state of one decision: what the workflow holds, what its progress query returns and what
 * the Redis projection stores. Field names are snake_case because they are the API's.
 */
export interface DecisionRecord {
  process_id: string;
  /** The principal (API key id) that created it; null for decisions before owners, admin-only. */
  owner: string | null;
  query: string;
  context: string | null;
  metadata: Record<string, string>;
  review: ReviewState;
  forked_from: { process_id: string; from_phase: PhaseName } | null;
  /** The most the decision may spend (null in decisions started before budgets). */
  budget: DecisionBudget | null;
  /** Where its events are delivered, and how each delivery went (null without a webhook). */
  webhook: WebhookState | null;
  status: DecisionStatus;
  current_phase: PhaseName | null;
  phases: PhaseRecord[];
  result: DecisionResult | null;
  error: DecisionError | null;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
  /** Orders writes to the projection: a write with a lower or equal seq never replaces a newer one. */
  seq: number;
}

export interface DecisionInput {
  query: string;
  /** Who created it: only this principal and admins see it. */
  owner?: string | null;
  context?: string | null;
  metadata?: Record<string, string> | null;
  /** Pause after the draft for a human review, for at most this long. */
  review?: { timeout_ms: number } | null;
  /** Reuse another decision's outputs for the phases before `from_phase`. */
  fork?: { source_id: string; from_phase: PhaseName; outputs: PhaseOutputs } | null;
  /** Budget and bounds; decisions started before they existed use DEFAULT_LIMITS. */
  limits?: DecisionLimits | null;
  /** Deliver these events to this URL, each by a workflow of its own. */
  webhook?: WebhookSubscription | null;
}

/** A decision before its first phase has run: every phase pending. */
export function initialRecord(
  processId: string,
  input: DecisionInput,
  createdAt: string,
): DecisionRecord {
  return {
    process_id: processId,
    owner: input.owner ?? null,
    query: input.query,
    context: input.context ?? null,
    metadata: input.metadata ?? {},
    review: {
      requested: Boolean(input.review),
      status: input.review ? 'pending' : 'not_requested',
      feedback: null,
      requested_at: null,
      answered_at: null,
    },
    forked_from: input.fork
      ? { process_id: input.fork.source_id, from_phase: input.fork.from_phase }
      : null,
    budget: input.limits?.budget ?? null,
    webhook: input.webhook
      ? { url: input.webhook.url, events: input.webhook.events, deliveries: [] }
      : null,
    status: 'pending',
    current_phase: null,
    phases: PHASES.map((phase) => ({
      name: phase.name,
      title: phase.title,
      status: 'pending',
      started_at: null,
      completed_at: null,
      duration_ms: null,
      attempts: null,
      model: null,
      model_calls: null,
      repair_rounds: null,
      usage: null,
      latency_ms: null,
      reused_from: null,
      error: null,
    })),
    result: null,
    error: null,
    created_at: createdAt,
    updated_at: createdAt,
    completed_at: null,
    seq: 0,
  };
}

/** The event that ends a decision's stream, from its final record. */
export function terminalEvent(record: DecisionRecord): DecisionEvent {
  if (record.status === 'completed') {
    return { type: 'decision.completed', data: { status: 'completed', result: record.result } };
  }
  return record.status === 'cancelled'
    ? { type: 'decision.cancelled', data: { status: 'cancelled', error: record.error } }
    : { type: 'decision.failed', data: { status: 'failed', error: record.error } };
}
