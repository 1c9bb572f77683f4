import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import Long from 'long';
import { PHASES, type PhaseName } from '../domain/phases';
import { lastPhaseFailure, resetPointFor } from './history';

export interface RetryResult {
  process_id: string;
  from_phase: PhaseName;
  /** The workflow task the run was reset to. */
  reset_event_id: number;
  old_run_id: string;
  new_run_id: string;
}

export class RetryError extends Error {
  override name = 'RetryError';
}

/**
 * Retries a decision from a phase: resets the workflow to the workflow task just before that
 * phase was scheduled. The phases before it are not run again (their results come from history);
 * the new run continues from there and writes the projection as it goes. Without `fromPhase`,
 * retries from the phase that failed.
 */
export async function retryDecision(
  client: Client,
  id: string,
  fromPhase?: PhaseName,
): Promise<RetryResult> {
  const handle = client.workflow.getHandle(id);
  const description = await handle.describe();
  if (description.status.name === 'RUNNING') {
    throw new RetryError(`Decision ${id} is still running; cancel it or wait before retrying`);
  }
  const history = await handle.fetchHistory();
  const phase = fromPhase ?? lastPhaseFailure(history)?.phase;
  if (!phase) {
    throw new RetryError(
      `Decision ${id} has no failed phase to retry from (it ${description.status.name.toLowerCase()}); name one with --from-phase`,
    );
  }
  const eventId = resetPointFor(history, phase);
  if (eventId === null) {
    const ran = PHASES.map((p) => p.name).filter((p) => resetPointFor(history, p) !== null);
    throw new RetryError(
      `Decision ${id} never scheduled ${phase} in its latest run; it can be retried from: ${ran.join(', ') || 'none'}`,
    );
  }
  const response = await client.workflowService.resetWorkflowExecution({
    namespace: client.options.namespace,
    workflowExecution: { workflowId: id, runId: description.runId },
    reason: `Retry from ${phase}`,
    workflowTaskFinishEventId: Long.fromNumber(eventId),
    requestId: randomUUID(),
  });
  return {
    process_id: id,
    from_phase: phase,
    reset_event_id: eventId,
    old_run_id: description.runId,
    new_run_id: response.runId ?? '',
  };
}
