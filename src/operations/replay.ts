import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { HistoryAndWorkflowId } from '@temporalio/client';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import type { temporal } from '@temporalio/proto';
import { Worker, type ReplayWorkerOptions } from '@temporalio/worker';

export interface ReplayOutcome {
  workflowId: string;
  runId: string;
  ok: boolean;
  /** The determinism (or other replay) error, as the SDK words it. */
  error: string | null;
}

/**
 * The workflow id a saved history ran under, from its first event (`fallback` for histories
 * saved without it): commands that derive from the id, such as a webhook delivery's child
 * workflow id, replay only under it.
 */
export function workflowIdOf(history: temporal.api.history.v1.IHistory, fallback: string): string {
  return history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowId || fallback;
}

/** A history saved as JSON (`decisions export-history`), with the workflow id it ran under. */
export function readHistoryFile(path: string): HistoryAndWorkflowId {
  const history = historyFromJSON(JSON.parse(readFileSync(path, 'utf8')));
  return { workflowId: workflowIdOf(history, basename(path, '.json')), history };
}

/** Replays histories against the current workflow code; one outcome per history. */
export async function replayHistories(
  histories: AsyncIterable<HistoryAndWorkflowId> | Iterable<HistoryAndWorkflowId>,
  options: ReplayWorkerOptions,
): Promise<ReplayOutcome[]> {
  const outcomes: ReplayOutcome[] = [];
  for await (const result of Worker.runReplayHistories(options, histories)) {
    outcomes.push({
      workflowId: result.workflowId,
      runId: result.runId,
      ok: !result.error,
      error: result.error ? `${result.error.name}: ${result.error.message}` : null,
    });
  }
  return outcomes;
}
