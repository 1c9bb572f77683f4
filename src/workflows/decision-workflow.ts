import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  ParentClosePolicy,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities, PhaseActivity } from '../activities';
import {
  DEFAULT_LIMITS,
  initialRecord,
  isTerminal,
  type DecisionError,
  type DecisionEvent,
  type DecisionInput,
  type DecisionRecord,
  type PhaseInput,
  type PhaseOutputs,
  type PhaseResult,
  type ReviewInput,
  type ReviewOutcome,
} from '../domain/decision';
import type { PhaseOutputMap } from '../domain/outputs';
import { combineRetrievals } from '../domain/retrieval';
import { OWN_FAILURE_TYPES } from '../domain/failures';
import { checkPayload } from '../domain/payload';
import { selectInputs } from '../domain/phases';
import {
  activityOptions,
  attemptTimeoutMs,
  MODEL_CALLS_PER_ATTEMPT,
  phaseNamed,
  PHASES,
  type PhaseName,
} from '../domain/phases';
import {
  DecisionPhaseAttribute,
  DecisionStatusAttribute,
  outputsQuery,
  progressQuery,
  reviewUpdate,
} from '../domain/workflow-api';
import { deliveryId, pendingDelivery, type WebhookMessage } from '../domain/webhook';
import { webhookDeliveryWorkflow } from './webhook-delivery';

/**
 * A phase's activity, its attempt timeout derived from the decision's model timeout and the
 * calls an attempt may make.
 */
function phaseActivity(
  name: PhaseName,
  modelTimeoutMs: number,
  calls = MODEL_CALLS_PER_ATTEMPT,
): PhaseActivity {
  const index = PHASES.findIndex((p) => p.name === name);
  const phase = phaseNamed(name);
  return proxyActivities<Activities>({
    startToCloseTimeout: attemptTimeoutMs(modelTimeoutMs, calls),
    ...activityOptions(phase),
    // Shown next to the activity in the Web UI's event history.
    summary: `Phase ${index + 1}/${PHASES.length}: ${phase.title}`,
  })[name];
}

// The projection write is a local activity: it is short, needs no queue round trip, and shows in
// history as a marker rather than as ten more activities next to the phases. The next write
// carries the whole state and repairs a lost one, so a write tries twice only: a Redis that hangs
// must not hold up the phases.
const { projectDecision } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '500 milliseconds', maximumAttempts: 2 },
});

// No later write repairs the final one, so it keeps trying for longer before the decision ends.
const { projectDecision: projectFinalState } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  scheduleToCloseTimeout: '10 minutes',
  retry: { initialInterval: '500 milliseconds', maximumInterval: '30 seconds' },
});

/** Runs the ten phases of a decision in order, projecting every state change to Redis. */
export async function decisionWorkflow(input: DecisionInput): Promise<DecisionRecord> {
  const info = workflowInfo();
  const now = () => new Date().toISOString();
  const record = initialRecord(info.workflowId, input, info.startTime.toISOString());
  const outputs: PhaseOutputs = {};
  const limits = input.limits ?? DEFAULT_LIMITS;
  // Decisions started before the guard replay without it: over the limit, their history has the
  // activity scheduled, not the phase failed.
  const guardPayloads = patched(PAYLOAD_GUARD);
  const sparseIndex = patched(SPARSE_SEARCH_ATTRIBUTES);
  const usage = {
    model_calls: 0,
    repair_rounds: 0,
    input_tokens: 0,
    output_tokens: 0,
    latency_ms: 0,
  };
  let review: ReviewOutcome | null = null;

  setHandler(progressQuery, () => record);
  setHandler(outputsQuery, () => outputs);
  setHandler(
    reviewUpdate,
    async (answer: ReviewInput) => {
      // A worker that took the decision over from one that died replays it up to its pause in
      // the same task that brings the review: the review applies once the decision has paused.
      await condition(
        () => record.status === 'awaiting_review' || review !== null || isTerminal(record.status),
      );
      if (record.status !== 'awaiting_review' || review !== null) {
        throw ApplicationFailure.create({
          type: 'ReviewNotAwaited',
          message: `The decision is not awaiting review (review ${record.review.status})`,
          nonRetryable: true,
        });
      }
      const outcome: ReviewOutcome = answer.approve
        ? { kind: 'approved' }
        : { kind: 'feedback', feedback: answer.feedback!.trim() };
      review = outcome;
      record.review.status = outcome.kind;
      record.review.feedback = outcome.kind === 'feedback' ? outcome.feedback : null;
      record.review.answered_at = now();
      return record.review;
    },
    {
      validator: (answer: ReviewInput) => {
        if (!record.review.requested) {
          throw new Error('The decision was not created with review: true');
        }
        // A decision still before its pause passes (see above); the API refuses it first.
        if (review !== null || isTerminal(record.status)) {
          throw new Error(`The decision is not awaiting review (review ${record.review.status})`);
        }
        const feedback = typeof answer?.feedback === 'string' ? answer.feedback.trim() : '';
        if ((answer?.approve === true) === (feedback !== '')) {
          throw new Error('Send either {"approve": true} or {"feedback": "..."}');
        }
      },
    },
  );

  // Deliveries run as workflows of their own, which outlive the decision; it waits only until
  // each has started, so that none is lost when the decision ends.
  const deliveries: Promise<void>[] = [];
  const deliver = (event: DecisionEvent): void => {
    const webhook = input.webhook;
    if (!webhook || !record.webhook || !webhook.events.includes(event.type)) return;
    const id = deliveryId(record.process_id, event, record.seq);
    record.webhook.deliveries.push(pendingDelivery(id, event.type));
    const message: WebhookMessage = {
      id,
      decision_id: record.process_id,
      url: webhook.url,
      body: {
        type: event.type,
        timestamp: record.updated_at,
        decision_id: record.process_id,
        data: event.data,
      },
      timeout_ms: webhook.timeout_ms,
      retry_ms: webhook.retry_ms,
    };
    const started = CancellationScope.nonCancellable(() =>
      startChild(webhookDeliveryWorkflow, {
        workflowId: id,
        args: [message],
        parentClosePolicy: ParentClosePolicy.ABANDON,
        memo: { decision_id: record.process_id, event: event.type },
      }),
    );
    deliveries.push(
      started.then(
        () => undefined,
        // A delivery that cannot start never fails the decision.
        (err: unknown) => log.warn('Webhook delivery not started', { id, error: String(err) }),
      ),
    );
  };
  const deliveriesStarted = () => Promise.all(deliveries);

  let indexed = { status: '', phase: '' };
  let unsent: DecisionEvent[] = [];
  let numbered = 0;
  const publish = async (...events: DecisionEvent[]): Promise<void> => {
    for (const event of events) event.n = ++numbered;
    // Workflow time only moves forward, also across resets, so seq stays monotonic for the
    // projection even when a reset run repeats a counter the old run already used.
    record.seq = Math.max(record.seq + 1, Date.now() * 1000);
    record.updated_at = now();
    for (const event of events) deliver(event);
    // Decisions started before sparse indexing upsert at every phase; others only when their
    // status changes, with the phase a decision stopped in (none while it runs): each upsert is
    // a history event and a visibility write.
    const phase = sparseIndex && record.status === 'running' ? '' : (record.current_phase ?? '');
    if (indexed.status !== record.status || indexed.phase !== phase) {
      upsertSearchAttributes([
        { key: DecisionStatusAttribute, value: record.status },
        { key: DecisionPhaseAttribute, value: phase },
      ]);
      indexed = { status: record.status, phase };
    }
    // Events of a failed write ride along with the next one; a write that arrives twice is
    // ignored by its seq, so none is stored twice.
    unsent.push(...events);
    try {
      // The final write lands even when a cancellation arrives meanwhile: nothing after it
      // would repair it, and the decision has ended either way.
      await (isTerminal(record.status)
        ? CancellationScope.nonCancellable(() => projectFinalState(record, unsent))
        : projectDecision(record, unsent));
      unsent = [];
    } catch (err) {
      // Redis is a projection: the next write carries the whole state and repairs this one.
      log.warn('Projection write failed', { error: String(err), seq: record.seq });
    }
  };

  const started = (index: number): DecisionEvent => {
    const phase = record.phases[index]!;
    phase.status = 'running';
    phase.started_at = now();
    record.current_phase = phase.name;
    return { type: 'phase.started', data: { phase: phase.name, title: phase.title, index } };
  };
  // A phase ends when its activity returned (recorded in history, so a reset run that replays
  // this step keeps it), else now: a reused output.
  const completed = (index: number, output: unknown, finishedAt?: string): DecisionEvent => {
    const phase = record.phases[index]!;
    (outputs as Record<PhaseName, unknown>)[phase.name] = output;
    phase.status = 'completed';
    phase.completed_at = finishedAt ?? now();
    // Never below zero, should the worker's clock run behind the server's.
    phase.duration_ms = Math.max(0, Date.parse(phase.completed_at) - Date.parse(phase.started_at!));
    return {
      type: 'phase.completed',
      data: {
        phase: phase.name,
        title: phase.title,
        index,
        duration_ms: phase.duration_ms,
        reused_from: phase.reused_from,
        output,
      },
    };
  };

  record.status = 'running';
  const reuse = input.fork ? PHASES.findIndex((p) => p.name === input.fork!.from_phase) : 0;
  const opening: DecisionEvent[] = [
    { type: 'decision.started', data: { process_id: record.process_id, status: record.status } },
  ];
  // A fork takes the source's outputs for the phases before from_phase instead of running them.
  for (let i = 0; i < reuse; i++) {
    opening.push(started(i));
    record.phases[i]!.reused_from = input.fork!.source_id;
    opening.push(completed(i, input.fork!.outputs[record.phases[i]!.name]));
  }
  opening.push(started(reuse));
  await publish(...opening);

  for (let index = reuse; index < record.phases.length; index++) {
    const phase = record.phases[index]!;
    let events: DecisionEvent[];
    try {
      // Each activity gets only the earlier fields its prompt reads, measured before it is sent.
      const phaseInput: PhaseInput = {
        decision_id: record.process_id,
        query: record.query,
        outputs: selectInputs(phase.name, outputs),
        ...(record.context ? { context: record.context } : {}),
        ...(phase.name === 'updateDraft' && review ? { review } : {}),
        payload_max_bytes: limits.payload_max_bytes,
        budget: {
          ...limits.budget,
          spent: {
            model_calls: usage.model_calls,
            tokens: usage.input_tokens + usage.output_tokens,
          },
        },
      };
      let result: PhaseResult;
      if (phase.name === 'retrieveInformation' && patched(RETRIEVAL_FAN_OUT)) {
        result = await retrieveInParallel(phaseInput, limits.model_timeout_ms, guardPayloads);
      } else {
        if (guardPayloads) checkPayload(phase.name, 'input', phaseInput, limits.payload_max_bytes);
        // Decisions started before the fan-out answer every need in one activity.
        const calls =
          phase.name === 'retrieveInformation'
            ? MODEL_CALLS_PER_ATTEMPT *
              Math.max(1, outputs.identifyInformationNeeds?.needs?.length ?? 1)
            : MODEL_CALLS_PER_ATTEMPT;
        result = await phaseActivity(phase.name, limits.model_timeout_ms, calls)(phaseInput);
      }
      // Results recorded by older workers may lack the usage fields.
      const calls = result.model_calls ?? 1;
      const tokens = result.usage ?? { input_tokens: 0, output_tokens: 0 };
      usage.model_calls += calls;
      usage.repair_rounds += result.repair_rounds ?? 0;
      usage.input_tokens += tokens.input_tokens;
      usage.output_tokens += tokens.output_tokens;
      usage.latency_ms += result.latency_ms;
      phase.attempts = result.attempt;
      phase.model = result.model;
      phase.model_calls = calls;
      phase.repair_rounds = result.repair_rounds ?? null;
      phase.usage = tokens;
      phase.latency_ms = result.latency_ms;
      events = [completed(index, result.output, result.finished_at)];

      if (phase.name === 'draftDecision' && input.review) {
        await publish(...events);
        events = await awaitReview(input.review.timeout_ms);
      }
    } catch (err) {
      if (isCancellation(err)) {
        // Cancelled while awaiting review, the draft stays what it is: completed.
        if (phase.status !== 'completed') phase.status = 'cancelled';
        record.status = 'cancelled';
        record.completed_at = now();
        record.error = {
          phase: phase.name,
          type: 'Cancelled',
          message: 'The decision was cancelled',
        };
        await CancellationScope.nonCancellable(async () => {
          await publish({
            type: 'decision.cancelled',
            data: { status: 'cancelled', phase: phase.name },
          });
          await deliveriesStarted();
        });
        throw err;
      }
      const error = describeFailure(phase.name, err);
      phase.status = 'failed';
      phase.completed_at = now();
      phase.error = error;
      record.status = 'failed';
      record.error = error;
      record.completed_at = phase.completed_at;
      await publish(
        { type: 'phase.failed', data: { phase: phase.name, title: phase.title, index, error } },
        { type: 'decision.failed', data: { status: 'failed', error } },
      );
      await deliveriesStarted();
      throw ApplicationFailure.create({
        type: error.type,
        message: `Phase ${phase.name} failed: ${error.message}`,
        nonRetryable: true,
        cause: err instanceof Error ? err : undefined,
      });
    }

    if (index + 1 < record.phases.length) {
      await publish(...events, started(index + 1));
    } else {
      record.status = 'completed';
      record.completed_at = now();
      record.result = {
        query: record.query,
        decision: outputs.compileResult!,
        phases: outputs as PhaseOutputMap,
        usage,
      };
      await publish(...events, {
        type: 'decision.completed',
        data: { status: 'completed', result: record.result },
      });
    }
  }
  await deliveriesStarted();
  return record;

  /** Pauses for the reviewer's update, or until the review period passes. */
  async function awaitReview(timeoutMs: number): Promise<DecisionEvent[]> {
    record.status = 'awaiting_review';
    record.review.status = 'awaiting';
    record.review.requested_at = now();
    await publish({
      type: 'review.requested',
      data: { phase: 'draftDecision', draft: outputs.draftDecision, timeout_ms: timeoutMs },
    });
    const answered = await condition(() => review !== null, timeoutMs);
    record.status = 'running';
    if (!answered) {
      review = { kind: 'timed_out' };
      record.review.status = 'timed_out';
      record.review.answered_at = now();
      return [{ type: 'review.timed_out', data: { timeout_ms: timeoutMs } }];
    }
    return [
      {
        type: 'review.received',
        data: { approved: review?.kind === 'approved', feedback: record.review.feedback },
      },
    ];
  }
}

// Retrieval answers each information need in its own activity, in parallel. Decisions started
// before this change replay the single-activity path (see docs/ARCHITECTURE.md, versioning).
const RETRIEVAL_FAN_OUT = 'retrieval-fan-out';

// Each phase's input is measured before it is scheduled (see src/domain/payload.ts).
const PAYLOAD_GUARD = 'payload-guard';

// Search attributes change with the decision's status only, not at every phase.
const SPARSE_SEARCH_ATTRIBUTES = 'sparse-search-attributes';

async function retrieveInParallel(
  input: PhaseInput,
  modelTimeoutMs: number,
  guardPayloads: boolean,
): Promise<PhaseResult> {
  const needs = input.outputs.identifyInformationNeeds?.needs ?? [];
  const retrieve = phaseActivity('retrieveInformation', modelTimeoutMs);
  // Each activity gets its need only; it finds its passages itself.
  const inputs = needs.map((need): PhaseInput => ({ ...input, outputs: {}, need }));
  if (guardPayloads) {
    for (const one of inputs) {
      checkPayload('retrieveInformation', 'input', one, input.payload_max_bytes);
    }
  }
  const results = await Promise.all(inputs.map((one) => retrieve(one)));
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

/** The innermost cause of an activity failure, as the projection and the Web UI show it. */
function describeFailure(phase: PhaseName, err: unknown): DecisionError {
  let cause: unknown = err;
  if (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
  if (cause instanceof ApplicationFailure) {
    const type = cause.type ?? 'ApplicationFailure';
    // Only messages this project wrote reach readers: another library's may carry addresses,
    // request text or key fragments, and stays in the worker's log.
    return OWN_FAILURE_TYPES.has(type)
      ? { phase, type, message: cause.message }
      : {
          phase,
          type,
          message: `${phase} failed unexpectedly (${type}); the worker's log has the details`,
        };
  }
  if (cause instanceof Error) return { phase, type: cause.name, message: cause.message };
  return { phase, type: 'Error', message: String(cause) };
}
