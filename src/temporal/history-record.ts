import { defaultPayloadConverter } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import {
  DECISION_EVENT_TYPES,
  initialRecord,
  type DecisionEvent,
  type DecisionEventType,
  type DecisionInput,
  type DecisionRecord,
  type PhaseResult,
  type ReviewInput,
} from '../domain/decision';
import type { PhaseOutputMap } from '../domain/outputs';
import { isPhaseName, PHASES, type PhaseName } from '../domain/phases';
import {
  apply,
  failedRunOf,
  phaseCompleted,
  phaseFailed,
  phaseStarted,
  resultOf,
  stamp,
} from '../domain/reducer';
import { combineResults } from '../domain/retrieval';
import { pendingDelivery } from '../domain/webhook';

type History = temporal.api.history.v1.IHistory;
type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
type Payloads = temporal.api.common.v1.IPayloads | null | undefined;

const decode = <T>(payloads: Payloads): T | undefined => {
  const first = payloads?.payloads?.[0];
  return first ? defaultPayloadConverter.fromPayload<T>(first) : undefined;
};

/** An event's time (its seconds arrive as a Long from the server, a number from a saved file). */
function timeOf(event: HistoryEvent): string {
  const seconds = Number(String(event.eventTime?.seconds ?? 0));
  const nanos = event.eventTime?.nanos ?? 0;
  return new Date(seconds * 1000 + Math.floor(nanos / 1e6)).toISOString();
}

/** The workflow's own wording of a phase failure: `Phase <name> failed: <message>`. */
const PHASE_FAILED = /^Phase (\w+) failed: ([\s\S]*)$/;

/**
 * A decision's record rebuilt from its history alone, with the reducer the workflow keeps its
 * record with: the events the workflow emitted, at the workflow times it emitted them, folded
 * into its first record. No worker is needed. A completed decision's record is its result. Ends
 * from outside the workflow (terminated, timed out) leave the record as it was then: the caller
 * knows how to write those. Null for a history that is not a decision's.
 */
export function recordFromHistory(workflowId: string, history: History): DecisionRecord | null {
  const events = history.events ?? [];
  const started = events[0]?.workflowExecutionStartedEventAttributes;
  const input = decode<DecisionInput>(started?.input);
  if (!started || !input) return null;
  let record = initialRecord(workflowId, input, timeOf(events[0]!));
  const outputs: Partial<PhaseOutputMap> = {};
  let batch: DecisionEvent[] = [];
  // Workflow time: a workflow task's start, then the completion of each local activity it awaits.
  let workflowTime = record.created_at;
  let taskStarted = workflowTime;
  let taskTime = workflowTime;
  let opened = false;
  // Activities by their scheduled event; a phase's results in schedule order (retrieval: one per need).
  const scheduled = new Map<number, PhaseName>();
  const results = new Map<PhaseName, Map<number, PhaseResult | undefined>>();
  // What the next completed workflow task took in, as the workflow's activation did.
  let jobs: ({ kind: 'phase'; name: PhaseName } | { kind: 'timer' })[] = [];
  let heldReview: ReviewInput | null = null;
  // What the workflow did once the projection write it awaited had landed.
  let afterWrite: (() => void) | null = null;

  const emit = (...next: DecisionEvent[]) => {
    for (const event of next) {
      record = apply(record, event);
      if (event.type === 'phase.completed') {
        (outputs as Record<string, unknown>)[event.data.phase] = event.data.output;
      }
    }
    batch.push(...next);
  };
  const flush = () => {
    if (batch.length) record = stamp(record, batch, workflowTime, Date.parse(workflowTime));
    batch = [];
  };
  const after = (name: PhaseName) => {
    const next = PHASES[PHASES.findIndex((p) => p.name === name) + 1];
    if (next) emit(phaseStarted(record, next.name, workflowTime));
    else {
      emit({
        type: 'decision.completed',
        data: { status: 'completed', result: resultOf(record, outputs as PhaseOutputMap) },
        at: workflowTime,
      });
    }
  };
  const review = (answer: ReviewInput) => {
    const approved = answer.approve === true;
    emit({
      type: 'review.received',
      data: { approved, feedback: approved ? null : (answer.feedback ?? '').trim() },
      at: workflowTime,
    });
    after('draftDecision');
  };
  const open = () => {
    emit({
      type: 'decision.started',
      data: { process_id: workflowId, status: 'running' },
      at: workflowTime,
    });
    const fork = input.fork;
    const first = fork ? PHASES.findIndex((p) => p.name === fork.from_phase) : 0;
    for (const { name } of PHASES.slice(0, first)) {
      emit(phaseStarted(record, name, workflowTime));
      emit(
        phaseCompleted(record, name, fork!.outputs[name], workflowTime, {
          reusedFrom: fork!.source_id,
        }),
      );
    }
    emit(phaseStarted(record, PHASES[first]!.name, workflowTime));
  };
  const phaseDone = (name: PhaseName) => {
    const result = combined(name, [...results.get(name)!.values()] as PhaseResult[]);
    emit(
      phaseCompleted(record, name, result.output, result.finished_at ?? workflowTime, { result }),
    );
    if (name !== 'draftDecision' || !input.review) return after(name);
    // The draft is written first; the pause is published once that write has landed.
    flush();
    const timeoutMs = input.review.timeout_ms;
    afterWrite = () => {
      emit({
        type: 'review.requested',
        data: { phase: 'draftDecision', draft: outputs.draftDecision, timeout_ms: timeoutMs },
        at: workflowTime,
      });
      // A review that reached the workflow before its pause is applied once the pause is out.
      const held = heldReview;
      if (held) afterWrite = () => review(held);
    };
  };
  // The end the workflow wrote in its last task, before the local activity that projected it.
  const end = (event: DecisionEvent, failed?: DecisionEvent) => {
    workflowTime = taskTime;
    if (failed) emit(failed);
    emit(event);
    flush();
  };

  for (const event of events) {
    if (event.workflowTaskStartedEventAttributes) taskStarted = timeOf(event);
    if (event.workflowTaskCompletedEventAttributes) {
      flush();
      workflowTime = taskTime = taskStarted;
      if (!opened) {
        opened = true;
        open();
      }
      for (const job of jobs) {
        if (job.kind === 'phase') phaseDone(job.name);
        else if (record.status === 'awaiting_review') {
          emit({
            type: 'review.timed_out',
            data: { timeout_ms: input.review?.timeout_ms ?? 0 },
            at: workflowTime,
          });
          after('draftDecision');
        }
      }
      jobs = [];
    }
    const marker = event.markerRecordedEventAttributes;
    if (marker?.markerName === 'core_local_activity') {
      // The write this marker records was stamped before it ran.
      flush();
      const data = decode<{ complete_time?: HistoryEvent['eventTime'] }>(marker.details?.data);
      if (data?.complete_time) workflowTime = timeOf({ eventTime: data.complete_time });
      const next = afterWrite as (() => void) | null;
      afterWrite = null;
      next?.();
    }
    const scheduledAttrs = event.activityTaskScheduledEventAttributes;
    const type = scheduledAttrs?.activityType?.name;
    if (scheduledAttrs && type && isPhaseName(type)) {
      scheduled.set(Number(event.eventId), type);
      if (!results.has(type)) results.set(type, new Map());
      results.get(type)!.set(Number(event.eventId), undefined);
    }
    const completed = event.activityTaskCompletedEventAttributes;
    const name = completed && scheduled.get(Number(completed.scheduledEventId));
    if (completed && name) {
      const phaseResults = results.get(name)!;
      phaseResults.set(Number(completed.scheduledEventId), decode<PhaseResult>(completed.result));
      if ([...phaseResults.values()].every((r) => r !== undefined))
        jobs.push({ kind: 'phase', name });
    }
    if (event.timerFiredEventAttributes) jobs.push({ kind: 'timer' });
    const accepted = event.workflowExecutionUpdateAcceptedEventAttributes;
    if (accepted) {
      const answer = decode<ReviewInput>(accepted.acceptedRequest?.input?.args) ?? {};
      if (record.status === 'awaiting_review') review(answer);
      else heldReview = answer;
    }
    const failure = event.workflowExecutionFailedEventAttributes?.failure;
    if (failure) {
      const [, phase, message] = PHASE_FAILED.exec(failure.message ?? '') ?? [];
      const failedIn = phase && isPhaseName(phase) ? phase : record.current_phase;
      const error = {
        phase: failedIn,
        type: failure.applicationFailureInfo?.type || 'Error',
        message: message ?? failure.message ?? '',
      };
      // What the phase paid for, as its activity's last failure reported it.
      const reported = failure.cause?.cause?.applicationFailureInfo?.details?.payloads ?? [];
      const run = failedRunOf(reported.map((p) => defaultPayloadConverter.fromPayload(p)));
      end(
        { type: 'decision.failed', data: { status: 'failed', error }, at: taskTime },
        failedIn ? phaseFailed(record, failedIn, error, taskTime, run) : undefined,
      );
    }
    if (event.workflowExecutionCanceledEventAttributes) {
      end({
        type: 'decision.cancelled',
        data: { status: 'cancelled', phase: record.current_phase },
        at: taskTime,
      });
    }
    const done = event.workflowExecutionCompletedEventAttributes;
    if (done) return decode<DecisionRecord>(done.result) ?? record;
  }
  flush();
  return withDeliveries(record, events);
}

/**
 * One result for the phase: retrieval's, in its fanned-out form, combined from each need's (the
 * single activity of decisions started before the fan-out returned them combined).
 */
function combined(name: PhaseName, results: PhaseResult[]): PhaseResult {
  const fannedOut =
    (results[0]?.output as { need_id?: unknown } | undefined)?.need_id !== undefined;
  return name === 'retrieveInformation' && fannedOut ? combineResults(results) : results[0]!;
}

/** The deliveries the decision started, as its history names them (ids, events). */
function withDeliveries(record: DecisionRecord, events: HistoryEvent[]): DecisionRecord {
  if (!record.webhook) return record;
  const deliveries = events.flatMap((event) => {
    const attrs = event.startChildWorkflowExecutionInitiatedEventAttributes;
    const kind = attrs?.memo?.fields?.event;
    const type = kind ? defaultPayloadConverter.fromPayload<string>(kind) : undefined;
    return attrs?.workflowId && type && isEventType(type)
      ? [pendingDelivery(attrs.workflowId, type)]
      : [];
  });
  return { ...record, webhook: { ...record.webhook, deliveries } };
}

function isEventType(value: string): value is DecisionEventType {
  return (DECISION_EVENT_TYPES as readonly string[]).includes(value);
}
