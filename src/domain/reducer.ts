import type {
  DecisionError,
  DecisionEvent,
  DecisionRecord,
  DecisionResult,
  DecisionUsage,
  PhaseRecord,
  PhaseResult,
  PhaseRun,
  ReviewOutcome,
} from './decision';
import type { PhaseName } from './phases';
import { deliveryId, pendingDelivery } from './webhook';

// A decision's record changes here and nowhere else: the workflow emits events, and `apply`
// folds each into the record. The projection, the search attributes and the webhook starts read
// the events and the records they make; none of them changes a record.

/**
 * The record after `event`. Pure: the record given is not changed. Event times come from the
 * event (`at`); an event without one (an end read from Temporal) keeps the record's last time.
 */
export function apply(record: DecisionRecord, event: DecisionEvent): DecisionRecord {
  const at = event.at ?? record.updated_at;
  switch (event.type) {
    case 'decision.started':
      return { ...record, status: 'running' };
    case 'phase.started':
      return {
        ...withPhase(record, event.data.phase, { status: 'running', started_at: at }),
        current_phase: event.data.phase,
      };
    case 'phase.completed': {
      const { phase, duration_ms, reused_from } = event.data;
      return withPhase(record, phase, {
        status: 'completed',
        completed_at: at,
        duration_ms,
        reused_from,
        ...costOf(event.run),
      });
    }
    case 'phase.failed':
      return withPhase(record, event.data.phase, {
        status: 'failed',
        completed_at: at,
        error: event.data.error,
        ...costOf(event.run),
      });
    case 'review.requested':
      return {
        ...record,
        status: 'awaiting_review',
        review: { ...record.review, status: 'awaiting', requested_at: at },
      };
    case 'review.received':
      return {
        ...record,
        status: 'running',
        review: {
          ...record.review,
          status: event.data.approved ? 'approved' : 'feedback',
          feedback: event.data.feedback,
          answered_at: at,
        },
      };
    case 'review.timed_out':
      return {
        ...record,
        status: 'running',
        review: { ...record.review, status: 'timed_out', answered_at: at },
      };
    case 'decision.completed':
      return { ...record, status: 'completed', completed_at: at, result: event.data.result };
    case 'decision.failed':
      return { ...record, status: 'failed', completed_at: at, error: event.data.error };
    case 'decision.cancelled': {
      const phase = event.data.phase ?? record.current_phase;
      const error = event.data.error ?? {
        phase,
        type: 'Cancelled',
        message: 'The decision was cancelled',
      };
      // Cancelled while awaiting review, the draft stays what it is: completed.
      const cancelled = record.phases.find((p) => p.name === phase);
      const next =
        phase && cancelled && cancelled.status !== 'completed'
          ? withPhase(record, phase, { status: 'cancelled' })
          : record;
      return { ...next, status: 'cancelled', completed_at: at, error };
    }
  }
}

/**
 * Marks a batch of events as one write of the record: its `seq` (which orders writes to the
 * projection), its time, and a pending delivery for each event its webhook subscribes to.
 */
export function stamp(
  record: DecisionRecord,
  events: readonly DecisionEvent[],
  at: string,
  nowMs: number,
): DecisionRecord {
  // Workflow time only moves forward, also across resets, so seq stays monotonic for the
  // projection even when a reset run repeats a counter the old run already used.
  const seq = Math.max(record.seq + 1, nowMs * 1000);
  const webhook = record.webhook && {
    ...record.webhook,
    deliveries: [
      ...record.webhook.deliveries,
      ...events
        .filter((event) => record.webhook!.events.includes(event.type))
        .map((event) => pendingDelivery(deliveryId(record.process_id, event, seq), event.type)),
    ],
  };
  return { ...record, seq, updated_at: at, webhook };
}

/** What a phase's run cost, as its record keeps it. */
function costOf(run: PhaseRun | undefined): Partial<PhaseRecord> {
  return run
    ? {
        attempts: run.attempts,
        model: run.model,
        model_calls: run.model_calls,
        repair_rounds: run.repair_rounds,
        usage: run.usage,
        latency_ms: run.latency_ms,
      }
    : {};
}

/** The cost a phase's last failed attempt reported in its failure's details, if it did. */
export function failedRunOf(details: readonly unknown[] | null | undefined): PhaseRun | undefined {
  const run = (details?.[0] as { phase_run?: Partial<PhaseRun> } | undefined)?.phase_run;
  const count = (n: unknown) => (typeof n === 'number' && Number.isFinite(n) && n >= 0 ? n : null);
  if (!run || count(run.model_calls) === null || typeof run.model !== 'string') return undefined;
  return {
    attempts: count(run.attempts) ?? 1,
    model: run.model,
    model_calls: count(run.model_calls)!,
    repair_rounds: count(run.repair_rounds),
    usage: {
      input_tokens: count(run.usage?.input_tokens) ?? 0,
      output_tokens: count(run.usage?.output_tokens) ?? 0,
    },
    latency_ms: count(run.latency_ms) ?? 0,
  };
}

function withPhase(
  record: DecisionRecord,
  name: PhaseName,
  change: Partial<PhaseRecord>,
): DecisionRecord {
  return {
    ...record,
    phases: record.phases.map((p) => (p.name === name ? { ...p, ...change } : p)),
  };
}

// What happened, as events: each built from the record it follows, so the event says what
// `apply` needs and the stream shows.

function step(record: DecisionRecord, name: PhaseName) {
  const index = record.phases.findIndex((p) => p.name === name);
  return { phase: name, title: record.phases[index]!.title, index };
}

export function phaseStarted(record: DecisionRecord, name: PhaseName, at: string): DecisionEvent {
  return { type: 'phase.started', data: step(record, name), at };
}

/**
 * A phase's output: from its activity (with what the run cost), or taken from the decision a fork
 * reused it from.
 */
export function phaseCompleted(
  record: DecisionRecord,
  name: PhaseName,
  output: unknown,
  at: string,
  from: { result: PhaseResult } | { reusedFrom: string },
): DecisionEvent {
  const started = record.phases.find((p) => p.name === name)?.started_at ?? at;
  const data = {
    ...step(record, name),
    // Never below zero, should the worker's clock run behind the server's.
    duration_ms: Math.max(0, Date.parse(at) - Date.parse(started)),
    reused_from: 'reusedFrom' in from ? from.reusedFrom : null,
    output,
  };
  if ('reusedFrom' in from) return { type: 'phase.completed', data, at };
  const { result } = from;
  return {
    type: 'phase.completed',
    data,
    at,
    // Results recorded by older workers may lack the usage fields.
    run: {
      attempts: result.attempt,
      model: result.model,
      model_calls: result.model_calls ?? 1,
      repair_rounds: result.repair_rounds ?? null,
      usage: result.usage ?? { input_tokens: 0, output_tokens: 0 },
      latency_ms: result.latency_ms,
    },
  };
}

export function phaseFailed(
  record: DecisionRecord,
  name: PhaseName,
  error: DecisionError,
  at: string,
  run?: PhaseRun,
): DecisionEvent {
  return { type: 'phase.failed', data: { ...step(record, name), error }, at, ...(run && { run }) };
}

/** The review's outcome as the revision reads it; null until the reviewer (or the clock) answered. */
export function reviewOutcome(record: DecisionRecord): ReviewOutcome | null {
  switch (record.review.status) {
    case 'approved':
      return { kind: 'approved' };
    case 'feedback':
      return { kind: 'feedback', feedback: record.review.feedback ?? '' };
    case 'timed_out':
      return { kind: 'timed_out' };
    default:
      return null;
  }
}

/** What a decision spent, summed over its phases. */
export function usageOf(record: DecisionRecord): DecisionUsage {
  const sum = (pick: (p: PhaseRecord) => number | null | undefined) =>
    record.phases.reduce((n, p) => n + (pick(p) ?? 0), 0);
  return {
    model_calls: sum((p) => p.model_calls),
    repair_rounds: sum((p) => p.repair_rounds),
    input_tokens: sum((p) => p.usage?.input_tokens),
    output_tokens: sum((p) => p.usage?.output_tokens),
    latency_ms: sum((p) => p.latency_ms),
  };
}

/** The result of a decision whose last phase has completed. */
export function resultOf(
  record: DecisionRecord,
  outputs: DecisionResult['phases'],
): DecisionResult {
  return {
    query: record.query,
    decision: outputs.compileResult,
    phases: outputs,
    usage: usageOf(record),
  };
}
