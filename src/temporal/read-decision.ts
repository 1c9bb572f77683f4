import {
  WorkflowFailedError,
  WorkflowNotFoundError,
  type Client,
  type WorkflowExecutionDescription,
} from '@temporalio/client';
import {
  initialRecord,
  isDecisionStatus,
  type DecisionRecord,
  type DecisionStatus,
} from '../domain/decision';
import { isPhaseName } from '../domain/phases';
import {
  DECISION_WORKFLOW_TYPE,
  DecisionPhaseAttribute,
  DecisionStatusAttribute,
  progressQuery,
} from '../domain/workflow-api';
import type { decisionWorkflow } from '../workflows';

const STATUS_FROM_TEMPORAL: Record<string, DecisionStatus> = {
  RUNNING: 'running',
  CONTINUED_AS_NEW: 'running',
  COMPLETED: 'completed',
  FAILED: 'failed',
  TIMED_OUT: 'failed',
  TERMINATED: 'failed',
  CANCELLED: 'cancelled',
};

/**
 * A decision as Temporal alone knows it: the final record of a completed workflow, the progress
 * query when a worker answers within `queryTimeoutMs`, else what its description says (status,
 * phase, error; no timings). Null when Temporal has no decision with this id.
 */
export async function readDecisionFromTemporal(
  client: Client,
  id: string,
  queryTimeoutMs = 2000,
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
  try {
    const deadline = Date.now() + queryTimeoutMs;
    return await client.connection.withDeadline(deadline, () => handle.query(progressQuery));
  } catch {
    // No worker answered in time: what Temporal itself records is still the truth, only coarser.
  }
  return fromDescription(id, description, () => handle.result());
}

async function fromDescription(
  id: string,
  description: WorkflowExecutionDescription,
  result: () => Promise<unknown>,
): Promise<DecisionRecord> {
  const query = typeof description.memo?.query === 'string' ? description.memo.query : '';
  const owner = typeof description.memo?.owner === 'string' ? description.memo.owner : null;
  const record = initialRecord(id, { query, owner }, description.startTime.toISOString());
  // An open workflow's own search attribute is finer than Temporal's RUNNING (it says pending).
  const indexed = description.typedSearchAttributes.get(DecisionStatusAttribute);
  const open = description.status.name === 'RUNNING';
  record.status =
    open && indexed && isDecisionStatus(indexed)
      ? indexed
      : (STATUS_FROM_TEMPORAL[description.status.name] ?? 'running');
  record.completed_at = description.closeTime?.toISOString() ?? null;
  const phase = description.typedSearchAttributes.get(DecisionPhaseAttribute);
  const current = phase && isPhaseName(phase) ? phase : null;
  record.current_phase = current;
  if (record.status === 'failed') {
    const message = await result().then(
      () => 'The workflow failed',
      (err: unknown) =>
        err instanceof WorkflowFailedError && err.cause ? err.cause.message : String(err),
    );
    record.error = { phase: current, type: description.status.name, message };
  }
  if (current) {
    const at = record.phases.findIndex((p) => p.name === current);
    const status = record.status === 'awaiting_review' ? 'completed' : record.status;
    record.phases.forEach((p, i) => {
      if (i < at) p.status = 'completed';
      if (i === at) p.status = status;
    });
  }
  return record;
}
