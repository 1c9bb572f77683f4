import {
  WorkflowFailedError,
  WorkflowNotFoundError,
  type Client,
  type WorkflowExecutionDescription,
} from '@temporalio/client';
import type { DecisionRecord } from '../domain/decision';
import { DECISION_WORKFLOW_TYPE } from '../domain/workflow-api';
import type { decisionWorkflow } from '../workflows';
import { recordFromHistory } from './history-record';

/** Ends no workflow code saw: Temporal records them, the decision's own record cannot. */
const ENDED_FROM_OUTSIDE: Record<string, { type: string; what: string; reason: boolean }> = {
  // A termination carries the operator's reason; a time-out's own words add nothing.
  TERMINATED: { type: 'Terminated', what: 'The workflow was terminated', reason: true },
  TIMED_OUT: { type: 'TimedOut', what: 'The workflow timed out', reason: false },
};

/**
 * A decision as Temporal alone knows it: the final record of a completed workflow, else its
 * history folded by the reducer the workflow keeps its record with (no worker needed), with an
 * end from outside the workflow (terminated, timed out) written in. Null when Temporal has no
 * decision with this id.
 */
export async function readDecisionFromTemporal(
  client: Client,
  id: string,
): Promise<DecisionRecord | null> {
  const handle = client.workflow.getHandle<typeof decisionWorkflow>(id);
  let description: WorkflowExecutionDescription;
  try {
    description = await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
  if (description.type !== DECISION_WORKFLOW_TYPE) return null;
  if (description.status.name === 'COMPLETED') return handle.result();
  const record = recordFromHistory(id, await handle.fetchHistory());
  const ended = ENDED_FROM_OUTSIDE[description.status.name];
  if (record && ended) await endedFromOutside(record, ended, description, () => handle.result());
  return record;
}

async function failureOf(result: () => Promise<unknown>): Promise<string> {
  return result().then(
    () => '',
    (err: unknown) =>
      err instanceof WorkflowFailedError && err.cause ? err.cause.message : String(err),
  );
}

/**
 * A decision terminated or timed out in Temporal: its workflow never saw the end, so its last
 * state (from the query or the description) still says it runs. It failed, at the phase it was in.
 */
async function endedFromOutside(
  record: DecisionRecord,
  ended: { type: string; what: string; reason: boolean },
  description: WorkflowExecutionDescription,
  result: () => Promise<unknown>,
): Promise<void> {
  const why = ended.reason ? await failureOf(result) : '';
  const completedAt = description.closeTime?.toISOString() ?? record.updated_at;
  applyOutsideEnd(record, {
    error: {
      phase: record.current_phase,
      type: ended.type,
      message: why ? `${ended.what}: ${why}` : ended.what,
    },
    completed_at: completedAt,
    // This record is the decision's end, and newer than any write the workflow made: each is
    // stamped with its time, and all came before the close.
    seq: Math.max(record.seq + 1, Date.parse(completedAt) * 1000 + 999),
  });
}

/** Types of the ends that came from outside the workflow (see ENDED_FROM_OUTSIDE). */
export const OUTSIDE_END_TYPES: ReadonlySet<string> = new Set(['Terminated', 'TimedOut']);

/**
 * Writes an end from outside into a record: failed, at its running phase. Applied to the
 * projection's own record too, which keeps what Temporal's description does not (timings, usage,
 * context) when no worker answered the query.
 */
export function applyOutsideEnd(
  record: DecisionRecord,
  end: Pick<DecisionRecord, 'completed_at' | 'seq'> & {
    error: NonNullable<DecisionRecord['error']>;
  },
): DecisionRecord {
  const phase = end.error.phase;
  record.status = 'failed';
  record.completed_at = end.completed_at;
  record.updated_at = end.completed_at ?? record.updated_at;
  record.error = end.error;
  record.seq = Math.max(record.seq + 1, end.seq);
  for (const p of record.phases) {
    if (p.status === 'running' || (p.name === phase && p.status === 'failed' && !p.error)) {
      p.status = 'failed';
      p.completed_at = end.completed_at;
      p.error = end.error;
    }
  }
  return record;
}

/**
 * The record to write for an end the projection missed: Temporal's, or for an end from outside
 * (which Temporal may know only coarsely), the projection's own record with that end applied.
 */
export function withEndOf(projected: DecisionRecord, truth: DecisionRecord): DecisionRecord {
  if (!truth.error || !OUTSIDE_END_TYPES.has(truth.error.type)) return truth;
  return applyOutsideEnd(structuredClone(projected), {
    error: truth.error,
    completed_at: truth.completed_at,
    seq: truth.seq,
  });
}
