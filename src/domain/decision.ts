import { PHASES, type PhaseName } from './phases';

export const DECISION_STATUSES = [
  'pending',
  'running',
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
  error: DecisionError | null;
}

/** What one phase activity returns to the workflow. */
export interface PhaseResult {
  output: unknown;
  model: string;
  latency_ms: number;
  attempt: number;
}

/** What one phase activity receives: the question and every earlier phase's output. */
export interface PhaseInput {
  decision_id: string;
  query: string;
  outputs: PhaseOutputs;
}

export type PhaseOutputs = Partial<Record<PhaseName, unknown>>;

export interface DecisionUsage {
  model_calls: number;
  latency_ms: number;
}

export interface DecisionResult {
  query: string;
  /** The compiled decision record (the output of compileResult). */
  decision: unknown;
  /** Every phase's output, keyed by phase name. */
  phases: Record<PhaseName, unknown>;
  usage: DecisionUsage;
}

/**
 * The state of one decision: what the workflow holds, what its progress query returns and what
 * the Redis projection stores. Field names are snake_case because they are the API's.
 */
export interface DecisionRecord {
  process_id: string;
  query: string;
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
}

/** A decision before its first phase has run: every phase pending. */
export function initialRecord(processId: string, query: string, createdAt: string): DecisionRecord {
  return {
    process_id: processId,
    query,
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
