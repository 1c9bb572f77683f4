import type { HistoryAndWorkflowId } from '@temporalio/client';
import { Worker, type ReplayWorkerOptions } from '@temporalio/worker';

export interface ReplayOutcome {
  workflowId: string;
  runId: string;
  ok: boolean;
  /** The determinism (or other replay) error, as the SDK words it. */
  error: string | null;
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
