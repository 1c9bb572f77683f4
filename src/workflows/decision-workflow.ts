import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  patched,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import {
  DEFAULT_LIMITS,
  initialRecord,
  isTerminal,
  type DecisionInput,
  type DecisionRecord,
  type PhaseInput,
  type ReviewInput,
} from '../domain/decision';
import type { PhaseOutputMap } from '../domain/outputs';
import { PHASES, selectInputs } from '../domain/phases';
import {
  phaseCompleted,
  phaseFailed,
  phaseStarted,
  resultOf,
  reviewOutcome,
  usageOf,
} from '../domain/reducer';
import { outputsQuery, progressQuery, reviewUpdate } from '../domain/workflow-api';
import { decisionLog, type DecisionLog } from './decision-log';
import { describeFailure, failedRun, runPhase } from './phase-activities';

// Each phase's input is measured before it is scheduled (see src/domain/payload.ts).
const PAYLOAD_GUARD = 'payload-guard';

// Search attributes change with the decision's status only, not at every phase.
const SPARSE_SEARCH_ATTRIBUTES = 'sparse-search-attributes';

/** Runs the ten phases of a decision in order, projecting every state change to Redis. */
export async function decisionWorkflow(input: DecisionInput): Promise<DecisionRecord> {
  const info = workflowInfo();
  const now = () => new Date().toISOString();
  const limits = input.limits ?? DEFAULT_LIMITS;
  // Decisions started before the guard replay without it: over the limit, their history has the
  // activity scheduled, not the phase failed.
  const guardPayloads = patched(PAYLOAD_GUARD);
  const sparseIndex = patched(SPARSE_SEARCH_ATTRIBUTES);
  const decision = decisionLog(
    initialRecord(info.workflowId, input, info.startTime.toISOString()),
    input.webhook,
    { sparseIndex },
  );
  const answered = () => reviewOutcome(decision.record) !== null;
  setHandler(progressQuery, () => decision.record);
  setHandler(outputsQuery, () => decision.outputs);
  acceptReviews(decision, now);

  decision.queue({
    type: 'decision.started',
    data: { process_id: info.workflowId, status: 'running' },
    at: now(),
  });
  // A fork takes the source's outputs for the phases before from_phase instead of running them.
  const fork = input.fork;
  const first = fork ? PHASES.findIndex((p) => p.name === fork.from_phase) : 0;
  for (const { name } of PHASES.slice(0, first)) {
    decision.queue(phaseStarted(decision.record, name, now()));
    const output = fork!.outputs[name];
    decision.queue(
      phaseCompleted(decision.record, name, output, now(), { reusedFrom: fork!.source_id }),
    );
  }
  decision.queue(phaseStarted(decision.record, PHASES[first]!.name, now()));
  await decision.flush();

  for (let index = first; index < PHASES.length; index++) {
    const { name } = PHASES[index]!;
    try {
      const result = await runPhase(name, phaseInput(name), limits.model_timeout_ms, guardPayloads);
      // A phase ends when its activity returned (recorded in history, so a reset run that
      // replays this step keeps it).
      const at = result.finished_at ?? now();
      decision.queue(phaseCompleted(decision.record, name, result.output, at, { result }));
      if (name === 'draftDecision' && input.review) {
        await decision.flush();
        await awaitReview(input.review.timeout_ms);
      }
    } catch (err) {
      if (isCancellation(err)) {
        await CancellationScope.nonCancellable(async () => {
          await decision.emit({
            type: 'decision.cancelled',
            data: { status: 'cancelled', phase: name },
            at: now(),
          });
          await decision.deliveriesStarted();
        });
        throw err;
      }
      const error = describeFailure(name, err);
      const at = now();
      await decision.emit(phaseFailed(decision.record, name, error, at, failedRun(err)), {
        type: 'decision.failed',
        data: { status: 'failed', error },
        at,
      });
      await decision.deliveriesStarted();
      throw ApplicationFailure.create({
        type: error.type,
        message: `Phase ${name} failed: ${error.message}`,
        nonRetryable: true,
        cause: err instanceof Error ? err : undefined,
      });
    }

    const next = PHASES[index + 1];
    if (next) {
      await decision.emit(phaseStarted(decision.record, next.name, now()));
    } else {
      const result = resultOf(decision.record, decision.outputs as PhaseOutputMap);
      await decision.emit({
        type: 'decision.completed',
        data: { status: 'completed', result },
        at: now(),
      });
    }
  }
  await decision.deliveriesStarted();
  return decision.record;

  /** What a phase's activity is sent: the question and the earlier fields its prompt reads. */
  function phaseInput(name: (typeof PHASES)[number]['name']): PhaseInput {
    const { record } = decision;
    const spent = usageOf(record);
    const review = reviewOutcome(record);
    return {
      decision_id: record.process_id,
      query: record.query,
      outputs: selectInputs(name, decision.outputs),
      ...(record.context ? { context: record.context } : {}),
      ...(name === 'updateDraft' && review ? { review } : {}),
      payload_max_bytes: limits.payload_max_bytes,
      budget: {
        ...limits.budget,
        spent: {
          model_calls: spent.model_calls,
          tokens: spent.input_tokens + spent.output_tokens,
        },
      },
    };
  }

  /** Pauses for the reviewer's update, or until the review period passes. */
  async function awaitReview(timeoutMs: number): Promise<void> {
    await decision.emit({
      type: 'review.requested',
      data: {
        phase: 'draftDecision',
        draft: decision.outputs.draftDecision,
        timeout_ms: timeoutMs,
      },
      at: now(),
    });
    if (!(await condition(answered, timeoutMs))) {
      decision.queue({ type: 'review.timed_out', data: { timeout_ms: timeoutMs }, at: now() });
    }
  }
}

/** Takes the reviewer's answer to the draft through the `review` update, validated. */
function acceptReviews(decision: DecisionLog, now: () => string): void {
  const answered = () => reviewOutcome(decision.record) !== null;
  setHandler(
    reviewUpdate,
    async (answer: ReviewInput) => {
      // A worker that took the decision over from one that died replays it up to its pause in
      // the same task that brings the review: the review applies once the decision has paused.
      const status = () => decision.record.status;
      await condition(() => status() === 'awaiting_review' || answered() || isTerminal(status()));
      if (status() !== 'awaiting_review' || answered()) {
        throw ApplicationFailure.create({
          type: 'ReviewNotAwaited',
          message: `The decision is not awaiting review (review ${decision.record.review.status})`,
          nonRetryable: true,
        });
      }
      const approved = answer.approve === true;
      // Published with the next phase's start, once the decision resumes.
      decision.queue({
        type: 'review.received',
        data: { approved, feedback: approved ? null : answer.feedback!.trim() },
        at: now(),
      });
      return decision.record.review;
    },
    {
      validator: (answer: ReviewInput) => {
        if (!decision.record.review.requested) {
          throw new Error('The decision was not created with review: true');
        }
        // A decision still before its pause passes (see above); the API refuses it first.
        if (answered() || isTerminal(decision.record.status)) {
          throw new Error(
            `The decision is not awaiting review (review ${decision.record.review.status})`,
          );
        }
        const feedback = typeof answer?.feedback === 'string' ? answer.feedback.trim() : '';
        if ((answer?.approve === true) === (feedback !== '')) {
          throw new Error('Send either {"approve": true} or {"feedback": "..."}');
        }
      },
    },
  );
}
