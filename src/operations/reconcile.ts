import type { Client } from '@temporalio/client';
import { DECISION_WORKFLOW_TYPE } from '../domain/workflow-api';
import type { DecisionReads } from '../projection/decision-reads';

export interface ReconcileReport {
  checked: number;
  /** Decisions the projection did not have. */
  restored: string[];
  /** Decisions whose projected record was older than Temporal's. */
  updated: string[];
  unchanged: number;
  failed: { process_id: string; error: string }[];
}

/** Visibility query for decision workflows started since `since` (all when null). */
export function decisionsQuery(since: Date | null, extra?: string): string {
  const parts = [`WorkflowType = "${DECISION_WORKFLOW_TYPE}"`];
  if (since) parts.push(`StartTime > "${since.toISOString()}"`);
  if (extra) parts.push(extra);
  return parts.join(' AND ');
}

/**
 * Rebuilds the Redis projection from Temporal for every decision started since `since`, each
 * with the read rule's `refresh`: through the same seq guard as the workflow's own writes, so a
 * running decision's newer write always wins and running this twice changes nothing.
 */
export async function reconcile(deps: {
  client: Client;
  reads: Pick<DecisionReads, 'refresh'>;
  since: Date | null;
  /** A further visibility filter, e.g. `TaskQueue = "decisions"`. */
  filter?: string;
}): Promise<ReconcileReport> {
  const report: ReconcileReport = {
    checked: 0,
    restored: [],
    updated: [],
    unchanged: 0,
    failed: [],
  };
  for await (const execution of deps.client.workflow.list({
    query: decisionsQuery(deps.since, deps.filter),
  })) {
    const id = execution.workflowId;
    report.checked += 1;
    try {
      const { outcome } = await deps.reads.refresh(id);
      if (outcome === 'unchanged') report.unchanged += 1;
      else if (outcome === 'updated') report.updated.push(id);
      else if (outcome === 'restored') report.restored.push(id);
    } catch (err) {
      report.failed.push({
        process_id: id,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }
  return report;
}
