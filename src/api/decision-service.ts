import { randomUUID } from 'node:crypto';
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
import type { DecisionProjection } from '../projection/redis-projection';
import type { decisionWorkflow } from '../workflows';

export interface DecisionServiceOptions {
  client: Client;
  projection: Pick<DecisionProjection, 'get'>;
  taskQueue: string;
  /** How long a status read waits for a worker to answer the progress query. */
  queryTimeoutMs?: number;
  onProjectionError?: (err: unknown) => void;
}

const STATUS_FROM_TEMPORAL: Record<string, DecisionStatus> = {
  RUNNING: 'running',
  CONTINUED_AS_NEW: 'running',
  COMPLETED: 'completed',
  FAILED: 'failed',
  TIMED_OUT: 'failed',
  TERMINATED: 'failed',
  CANCELLED: 'cancelled',
};

/** Starts decisions on Temporal and reads them from the projection, or from Temporal on a miss. */
export class DecisionService {
  constructor(private readonly options: DecisionServiceOptions) {}

  /** Starts a decision workflow; its id is the decision's process_id. */
  async start(query: string): Promise<DecisionRecord> {
    const id = randomUUID();
    const handle = await this.options.client.workflow.start<typeof decisionWorkflow>(
      DECISION_WORKFLOW_TYPE,
      {
        taskQueue: this.options.taskQueue,
        workflowId: id,
        args: [{ query }],
        memo: { query },
        typedSearchAttributes: [{ key: DecisionStatusAttribute, value: 'pending' }],
      },
    );
    return initialRecord(handle.workflowId, query, new Date().toISOString());
  }

  /** The decision's current state, or null when neither Redis nor Temporal knows the id. */
  async get(id: string): Promise<DecisionRecord | null> {
    try {
      const projected = await this.options.projection.get(id);
      if (projected) return projected;
    } catch (err) {
      this.options.onProjectionError?.(err);
    }
    return this.fromTemporal(id);
  }

  private async fromTemporal(id: string): Promise<DecisionRecord | null> {
    const { client } = this.options;
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
      const deadline = Date.now() + (this.options.queryTimeoutMs ?? 2000);
      return await client.connection.withDeadline(deadline, () => handle.query(progressQuery));
    } catch {
      // No worker answered in time: what Temporal itself records is still the truth, only coarser.
    }
    return this.fromDescription(id, description, () => handle.result());
  }

  private async fromDescription(
    id: string,
    description: WorkflowExecutionDescription,
    result: () => Promise<unknown>,
  ): Promise<DecisionRecord> {
    const query = typeof description.memo?.query === 'string' ? description.memo.query : '';
    const record = initialRecord(id, query, description.startTime.toISOString());
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
      record.phases.forEach((p, i) => {
        if (i < at) p.status = 'completed';
        if (i === at) p.status = record.status;
      });
    }
    return record;
  }
}
