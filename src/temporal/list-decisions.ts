import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { DECISION_STATUSES, isTerminal, type DecisionStatus } from '../domain/decision';
import { isPhaseName } from '../domain/phases';
import {
  DECISION_WORKFLOW_TYPE,
  DecisionOwnerAttribute,
  DecisionPhaseAttribute,
  DecisionStatusAttribute,
} from '../domain/workflow-api';
import type { DecisionSummary, ListQuery } from '../projection/redis-projection';
import { OUTSIDE_END_TYPES } from './read-decision';

type RawExecution = temporal.api.workflow.v1.IWorkflowExecutionInfo;

/** A page of decisions from Temporal's visibility, and the page token of the next (base64). */
export interface VisibilityPage {
  items: DecisionSummary[];
  next: string | null;
}

const quote = (value: string) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

// Ends that no workflow code saw: the decision's own status attribute still says it runs.
// Their error types are visibility's names of those execution statuses.
const ENDED_FROM_OUTSIDE = `ExecutionStatus IN (${[...OUTSIDE_END_TYPES].map(quote).join(', ')})`;

/** Which decisions a listing covers: this deployment's, on its task queue, and the filters. */
export type VisibilityQuery = Omit<ListQuery, 'limit' | 'cursor'> & { taskQueue: string };

// Other deployments may share the namespace: their decisions run on other task queues.
const ours = (taskQueue: string) => [
  `WorkflowType = ${quote(DECISION_WORKFLOW_TYPE)}`,
  `TaskQueue = ${quote(taskQueue)}`,
];

/** The visibility query for a listing: the same filters as the projection's, where it can. */
export function visibilityQuery(query: VisibilityQuery): string {
  const where = ours(query.taskQueue);
  if (query.owner !== undefined)
    where.push(`${DecisionOwnerAttribute.name} = ${quote(query.owner)}`);
  if (query.status !== undefined) {
    const status = `${DecisionStatusAttribute.name} = ${quote(query.status)}`;
    if (query.status === 'failed') where.push(`(${status} OR ${ENDED_FROM_OUTSIDE})`);
    else if (isTerminal(query.status)) where.push(status);
    else where.push(`${status} AND ExecutionStatus = 'Running'`);
  }
  if (query.phase !== undefined)
    where.push(`${DecisionPhaseAttribute.name} = ${quote(query.phase)}`);
  if (query.createdAfter !== undefined) {
    where.push(`StartTime > ${quote(new Date(query.createdAfter).toISOString())}`);
  }
  if (query.createdBefore !== undefined) {
    where.push(`StartTime < ${quote(new Date(query.createdBefore).toISOString())}`);
  }
  return where.join(' AND ');
}

/**
 * Decisions as Temporal's visibility lists them, a page at a time (for when the projection's
 * index cannot be read). In visibility's own order: open decisions first, then by close time.
 * Visibility keeps a row per run: a decision retried (reset) is listed as its current run only,
 * whatever its earlier runs said (one more query per page, for the closed runs on it).
 */
export async function listFromVisibility(
  client: Client,
  query: VisibilityQuery & { limit: number; pageToken?: string },
): Promise<VisibilityPage> {
  const response = await client.workflowService.listWorkflowExecutions({
    namespace: client.options.namespace,
    query: visibilityQuery(query),
    pageSize: query.limit,
    nextPageToken: query.pageToken ? Buffer.from(query.pageToken, 'base64') : undefined,
  });
  const closed = response.executions.filter((raw) => iso(raw.closeTime));
  const current = await currentRuns(
    client,
    query.taskQueue,
    closed.map((raw) => raw.execution?.workflowId ?? ''),
  );
  const seen = new Set<string>();
  const items: DecisionSummary[] = [];
  for (const raw of response.executions) {
    const item = summaryOf(raw);
    if (!item || seen.has(item.process_id)) continue;
    if (iso(raw.closeTime) && current.get(item.process_id) !== raw.execution?.runId) continue;
    seen.add(item.process_id);
    items.push(item);
  }
  const token = response.nextPageToken;
  return { items, next: token && token.length > 0 ? Buffer.from(token).toString('base64') : null };
}

/**
 * The current run of each workflow id: its open run, else the run that closed last (a workflow
 * id has one run open at a time, and a reset closes the run it replaces before the new one ends).
 */
async function currentRuns(
  client: Client,
  taskQueue: string,
  ids: string[],
): Promise<Map<string, string>> {
  const current = new Map<string, { runId: string; closed: number }>();
  const unique = [...new Set(ids.filter(Boolean))];
  if (unique.length === 0) return new Map();
  const query = [...ours(taskQueue), `WorkflowId IN (${unique.map(quote).join(', ')})`].join(
    ' AND ',
  );
  let nextPageToken: Uint8Array | undefined;
  do {
    const response = await client.workflowService.listWorkflowExecutions({
      namespace: client.options.namespace,
      query,
      pageSize: 1000,
      nextPageToken,
    });
    for (const raw of response.executions) {
      const id = raw.execution?.workflowId;
      const runId = raw.execution?.runId;
      if (!id || !runId) continue;
      const closed = optionalTsToMs(raw.closeTime) || Infinity;
      const known = current.get(id);
      if (!known || closed > known.closed) current.set(id, { runId, closed });
    }
    nextPageToken = response.nextPageToken?.length ? response.nextPageToken : undefined;
  } while (nextPageToken);
  return new Map([...current].map(([id, run]) => [id, run.runId]));
}

const STATUSES: ReadonlySet<string> = new Set(DECISION_STATUSES);
const CANCELED = temporal.api.enums.v1.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED;

function decode(payload: temporal.api.common.v1.IPayload | null | undefined): unknown {
  if (!payload) return undefined;
  try {
    return defaultPayloadConverter.fromPayload(payload);
  } catch {
    return undefined;
  }
}

function iso(ts: RawExecution['startTime']): string | null {
  const ms = optionalTsToMs(ts);
  // An unset time may come as a zero timestamp.
  return ms ? new Date(ms).toISOString() : null;
}

function summaryOf(raw: RawExecution): DecisionSummary | null {
  const id = raw.execution?.workflowId;
  const created = iso(raw.startTime);
  if (!id || !created) return null;
  const fields = raw.searchAttributes?.indexedFields ?? {};
  const stated = decode(fields[DecisionStatusAttribute.name]);
  const phase = decode(fields[DecisionPhaseAttribute.name]);
  const query = decode(raw.memo?.fields?.query);
  const closed = iso(raw.closeTime);
  let status: DecisionStatus =
    typeof stated === 'string' && STATUSES.has(stated) ? (stated as DecisionStatus) : 'pending';
  // A workflow that closed without writing its end (terminated, timed out) failed; one that
  // failed or was cancelled outside the decision's own code likewise says so here.
  if (closed && !isTerminal(status)) {
    status = raw.status === CANCELED ? 'cancelled' : 'failed';
  }
  return {
    process_id: id,
    query: typeof query === 'string' ? query : '',
    status,
    current_phase: typeof phase === 'string' && isPhaseName(phase) ? phase : null,
    created_at: created,
    updated_at: closed ?? created,
    completed_at: isTerminal(status) ? closed : null,
  };
}
