import type { Duration, RetryPolicy } from '@temporalio/common';

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

/** How one phase runs as an activity: its heartbeat timeout and its retry policy. */
export interface PhaseSpec {
  /** The activity type name, used everywhere a phase is named (API, history, search attributes). */
  readonly name: string;
  readonly title: string;
  readonly description: string;
  /** A worker that stops heartbeating for this long is taken as dead and the attempt retried. */
  readonly heartbeatTimeout: Duration;
  readonly retry: RetryPolicy;
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

const modelRetry: RetryPolicy = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '30 seconds',
  maximumAttempts: 5,
  nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES,
};

/** The ten phases of a decision, in the order the workflow runs them. */
export const PHASES = [
  {
    name: 'identifyTrigger',
    title: 'Identify trigger',
    description: 'What prompted the decision, its urgency and its stakeholders.',
    heartbeatTimeout: '30 seconds',
    retry: modelRetry,
  },
  {
    name: 'analyzeRootCause',
    title: 'Root cause analysis',
    description: 'The underlying problem behind the trigger.',
    heartbeatTimeout: '30 seconds',
    retry: modelRetry,
  },
  {
    name: 'defineScope',
    title: 'Scope definition',
    description: 'What is in and out of scope, and the constraints.',
    heartbeatTimeout: '30 seconds',
    retry: modelRetry,
  },
  {
    name: 'establishGoals',
    title: 'Establish goals',
    description: 'Measurable goals and weighted criteria.',
    heartbeatTimeout: '30 seconds',
    retry: modelRetry,
  },
  {
    name: 'identifyInformationNeeds',
    title: 'Information needs',
    description: 'The questions that must be answered before deciding.',
    heartbeatTimeout: '30 seconds',
    retry: modelRetry,
  },
  {
    name: 'retrieveInformation',
    title: 'Retrieve information',
    description: 'Answers to the information needs from the knowledge base.',
    heartbeatTimeout: '30 seconds',
    retry: modelRetry,
  },
  {
    name: 'generateAlternatives',
    title: 'Generate alternatives',
    description: 'Three or more options, each scored against the criteria.',
    heartbeatTimeout: '30 seconds',
    retry: modelRetry,
  },
  {
    name: 'draftDecision',
    title: 'Draft decision',
    description: 'The recommended option with its rationale and risks.',
    heartbeatTimeout: '30 seconds',
    retry: modelRetry,
  },
  {
    name: 'updateDraft',
    title: 'Update draft',
    description: 'The draft revised by critique.',
    heartbeatTimeout: '30 seconds',
    retry: modelRetry,
  },
  {
    name: 'compileResult',
    title: 'Compile result',
    description: 'The final decision record.',
    heartbeatTimeout: '30 seconds',
    retry: modelRetry,
  },
] as const satisfies readonly PhaseSpec[];

export type PhaseName = (typeof PHASES)[number]['name'];

export const PHASE_NAMES: readonly PhaseName[] = PHASES.map((p) => p.name);

export function isPhaseName(value: string): value is PhaseName {
  return (PHASE_NAMES as readonly string[]).includes(value);
}
