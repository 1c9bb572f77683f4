import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities, PhaseActivity } from '../activities';
import {
  initialRecord,
  type DecisionError,
  type DecisionInput,
  type DecisionRecord,
  type PhaseInput,
  type PhaseOutputs,
  type PhaseRecord,
  type PhaseResult,
} from '../domain/decision';
import type { PhaseOutputMap, RetrievalAnswer } from '../domain/outputs';
import { summarizeAnswers } from '../domain/retrieval';
import { PHASES, type PhaseName } from '../domain/phases';
import {
  DecisionPhaseAttribute,
  DecisionStatusAttribute,
  progressQuery,
} from '../domain/workflow-api';

const phaseActivities = {} as Record<PhaseName, PhaseActivity>;
for (const phase of PHASES) {
  phaseActivities[phase.name] = proxyActivities<Activities>({
    startToCloseTimeout: phase.startToCloseTimeout,
    heartbeatTimeout: phase.heartbeatTimeout,
    retry: phase.retry,
  })[phase.name];
}

// The projection write is a local activity: it is short, needs no queue round trip, and shows in
// history as a marker rather than as ten more activities next to the phases.
const { projectDecision } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '500 milliseconds', maximumAttempts: 5 },
});

/** Runs the ten phases of a decision in order, projecting every state change to Redis. */
export async function decisionWorkflow(input: DecisionInput): Promise<DecisionRecord> {
  const info = workflowInfo();
  const now = () => new Date().toISOString();
  const record = initialRecord(info.workflowId, input.query, info.startTime.toISOString());
  setHandler(progressQuery, () => record);

  let indexed = { status: '', phase: '' };
  const publish = async (): Promise<void> => {
    // Workflow time only moves forward, also across resets, so seq stays monotonic for the
    // projection even when a reset run repeats a counter the old run already used.
    record.seq = Math.max(record.seq + 1, Date.now() * 1000);
    record.updated_at = now();
    const phase = record.current_phase ?? '';
    if (indexed.status !== record.status || indexed.phase !== phase) {
      upsertSearchAttributes([
        { key: DecisionStatusAttribute, value: record.status },
        { key: DecisionPhaseAttribute, value: phase },
      ]);
      indexed = { status: record.status, phase };
    }
    try {
      await projectDecision(record);
    } catch (err) {
      // Redis is a projection: the next write carries the whole state and repairs this one.
      log.warn('Projection write failed', { error: String(err), seq: record.seq });
    }
  };

  const outputs: PhaseOutputs = {};
  const usage = { model_calls: 0, input_tokens: 0, output_tokens: 0, latency_ms: 0 };
  const begin = (phase: PhaseRecord) => {
    phase.status = 'running';
    phase.started_at = now();
    record.current_phase = phase.name;
  };

  record.status = 'running';
  begin(record.phases[0]!);
  await publish();

  for (const [index, phase] of record.phases.entries()) {
    try {
      const input: PhaseInput = { decision_id: record.process_id, query: record.query, outputs };
      const result =
        phase.name === 'retrieveInformation' && patched(RETRIEVAL_FAN_OUT)
          ? await retrieveInParallel(input)
          : await phaseActivities[phase.name](input);
      // Results recorded by older workers may lack the usage fields.
      const calls = result.model_calls ?? 1;
      const tokens = result.usage ?? { input_tokens: 0, output_tokens: 0 };
      (outputs as Record<PhaseName, unknown>)[phase.name] = result.output;
      usage.model_calls += calls;
      usage.input_tokens += tokens.input_tokens;
      usage.output_tokens += tokens.output_tokens;
      usage.latency_ms += result.latency_ms;
      phase.status = 'completed';
      phase.completed_at = now();
      phase.duration_ms = Date.parse(phase.completed_at) - Date.parse(phase.started_at!);
      phase.attempts = result.attempt;
      phase.model = result.model;
      phase.model_calls = calls;
      phase.usage = tokens;
      phase.latency_ms = result.latency_ms;
    } catch (err) {
      if (isCancellation(err)) {
        phase.status = 'cancelled';
        record.status = 'cancelled';
        record.completed_at = now();
        record.error = {
          phase: phase.name,
          type: 'Cancelled',
          message: 'The decision was cancelled',
        };
        await CancellationScope.nonCancellable(publish);
        throw err;
      }
      const error = describeFailure(phase.name, err);
      phase.status = 'failed';
      phase.completed_at = now();
      phase.error = error;
      record.status = 'failed';
      record.error = error;
      record.completed_at = phase.completed_at;
      await publish();
      throw ApplicationFailure.create({
        type: error.type,
        message: `Phase ${phase.name} failed: ${error.message}`,
        nonRetryable: true,
        cause: err instanceof Error ? err : undefined,
      });
    }

    const next = record.phases[index + 1];
    if (next) {
      begin(next);
      await publish();
    }
  }

  record.status = 'completed';
  record.completed_at = now();
  record.result = {
    query: record.query,
    decision: outputs.compileResult!,
    phases: outputs as PhaseOutputMap,
    usage,
  };
  await publish();
  return record;
}

// Retrieval answers each information need in its own activity, in parallel. Decisions started
// before this change replay the single-activity path (see docs/ARCHITECTURE.md, versioning).
const RETRIEVAL_FAN_OUT = 'retrieval-fan-out';

async function retrieveInParallel(input: PhaseInput): Promise<PhaseResult> {
  const needs = input.outputs.identifyInformationNeeds?.needs ?? [];
  const results = await Promise.all(
    needs.map((need) => phaseActivities.retrieveInformation({ ...input, need })),
  );
  const answers = results.map((r) => r.output as RetrievalAnswer);
  return {
    output: { summary: summarizeAnswers(answers), answers },
    model: results[0]?.model ?? 'none',
    model_calls: results.reduce((n, r) => n + r.model_calls, 0),
    usage: {
      input_tokens: results.reduce((n, r) => n + r.usage.input_tokens, 0),
      output_tokens: results.reduce((n, r) => n + r.usage.output_tokens, 0),
    },
    latency_ms: results.reduce((n, r) => n + r.latency_ms, 0),
    attempt: Math.max(1, ...results.map((r) => r.attempt)),
  };
}

/** The innermost cause of an activity failure, as the projection and the Web UI show it. */
function describeFailure(phase: PhaseName, err: unknown): DecisionError {
  let cause: unknown = err;
  if (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
  if (cause instanceof ApplicationFailure) {
    return { phase, type: cause.type ?? 'ApplicationFailure', message: cause.message };
  }
  if (cause instanceof Error) return { phase, type: cause.name, message: cause.message };
  return { phase, type: 'Error', message: String(cause) };
}
