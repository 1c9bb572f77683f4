import type { Duration, RetryPolicy } from '@temporalio/common';

/** How one phase runs as an activity: its timeouts and its retry policy. */
export interface PhaseSpec {
  /** The activity type name, used everywhere a phase is named (API, history, search attributes). */
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly startToCloseTimeout: Duration;
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
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '30 seconds',
    retry: modelRetry,
  },
  {
    name: 'analyzeRootCause',
    title: 'Root cause analysis',
    description: 'The underlying problem behind the trigger.',
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '30 seconds',
    retry: modelRetry,
  },
  {
    name: 'defineScope',
    title: 'Scope definition',
    description: 'What is in and out of scope, and the constraints.',
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '30 seconds',
    retry: modelRetry,
  },
  {
    name: 'establishGoals',
    title: 'Establish goals',
    description: 'Measurable goals and weighted criteria.',
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '30 seconds',
    retry: modelRetry,
  },
  {
    name: 'identifyInformationNeeds',
    title: 'Information needs',
    description: 'The questions that must be answered before deciding.',
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '30 seconds',
    retry: modelRetry,
  },
  {
    name: 'retrieveInformation',
    title: 'Retrieve information',
    description: 'Answers to the information needs from the knowledge base.',
    startToCloseTimeout: '3 minutes',
    heartbeatTimeout: '30 seconds',
    retry: modelRetry,
  },
  {
    name: 'generateAlternatives',
    title: 'Generate alternatives',
    description: 'Three or more options, each scored against the criteria.',
    startToCloseTimeout: '3 minutes',
    heartbeatTimeout: '30 seconds',
    retry: modelRetry,
  },
  {
    name: 'draftDecision',
    title: 'Draft decision',
    description: 'The recommended option with its rationale and risks.',
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '30 seconds',
    retry: modelRetry,
  },
  {
    name: 'updateDraft',
    title: 'Update draft',
    description: 'The draft revised by critique.',
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '30 seconds',
    retry: modelRetry,
  },
  {
    name: 'compileResult',
    title: 'Compile result',
    description: 'The final decision record.',
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '30 seconds',
    retry: modelRetry,
  },
] as const satisfies readonly PhaseSpec[];

export type PhaseName = (typeof PHASES)[number]['name'];

export const PHASE_NAMES: readonly PhaseName[] = PHASES.map((p) => p.name);

export function isPhaseName(value: string): value is PhaseName {
  return (PHASE_NAMES as readonly string[]).includes(value);
}
