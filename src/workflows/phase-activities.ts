import {
  ActivityFailure,
  ApplicationFailure,
  patched,
  proxyActivities,
} from '@temporalio/workflow';
import type { Activities, PhaseActivity } from '../activities';
import type { DecisionError, PhaseInput, PhaseResult, PhaseRun } from '../domain/decision';
import { failedRunOf } from '../domain/reducer';
import { OWN_FAILURE_TYPES } from '../domain/failures';
import { checkPayload } from '../domain/payload';
import {
  activityOptions,
  attemptTimeoutMs,
  MODEL_CALLS_PER_ATTEMPT,
  phaseNamed,
  PHASES,
  type PhaseName,
} from '../domain/phases';
import { combineResults } from '../domain/retrieval';

// Retrieval answers each information need in its own activity, in parallel. Decisions started
// before this change replay the single-activity path (see docs/ARCHITECTURE.md, versioning).
const RETRIEVAL_FAN_OUT = 'retrieval-fan-out';

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

/**
 * Runs one phase: its activity, or for retrieval one activity per information need. With
 * `guardPayloads`, each input is measured before it is scheduled.
 */
export async function runPhase(
  name: PhaseName,
  input: PhaseInput,
  modelTimeoutMs: number,
  guardPayloads: boolean,
): Promise<PhaseResult> {
  if (name === 'retrieveInformation' && patched(RETRIEVAL_FAN_OUT)) {
    return retrieveInParallel(input, modelTimeoutMs, guardPayloads);
  }
  if (guardPayloads) checkPayload(name, 'input', input, input.payload_max_bytes);
  // Decisions started before the fan-out answer every need in one activity.
  const calls =
    name === 'retrieveInformation'
      ? MODEL_CALLS_PER_ATTEMPT *
        Math.max(1, input.outputs.identifyInformationNeeds?.needs?.length ?? 1)
      : MODEL_CALLS_PER_ATTEMPT;
  return phaseActivity(name, modelTimeoutMs, calls)(input);
}

async function retrieveInParallel(
  input: PhaseInput,
  modelTimeoutMs: number,
  guardPayloads: boolean,
): Promise<PhaseResult> {
  const needs = input.outputs.identifyInformationNeeds?.needs ?? [];
  const retrieve = phaseActivity('retrieveInformation', modelTimeoutMs);
  // Each activity gets its need only; it finds its passages itself.
  const inputs = needs.map((need): PhaseInput => ({
    ...input,
    outputs: {},
    need,
    parallel: needs.length,
  }));
  if (guardPayloads) {
    for (const one of inputs) {
      checkPayload('retrieveInformation', 'input', one, input.payload_max_bytes);
    }
  }
  return combineResults(await Promise.all(inputs.map((one) => retrieve(one))));
}

/** What the phase's attempts paid for, as its last one reported with its failure. */
export function failedRun(err: unknown): PhaseRun | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : undefined;
  return cause instanceof ApplicationFailure ? failedRunOf(cause.details) : undefined;
}

/** The innermost cause of an activity failure, as the projection and the Web UI show it. */
export function describeFailure(phase: PhaseName, err: unknown): DecisionError {
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
