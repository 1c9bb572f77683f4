import type { DecisionReads } from '../projection/decision-reads';
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { toCanonicalString } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import Long from 'long';
import { PHASES, type PhaseName } from '../domain/phases';
import { decisionVersion, describeDeployment, pollersByBuild } from '../temporal/versioning';
import { lastPhaseFailure, resetPointFor } from './history';

const { VersioningBehavior } = temporal.api.enums.v1;
const { PinnedOverrideBehavior } = temporal.api.workflow.v1.VersioningOverride;

export interface RetryResult {
  process_id: string;
  from_phase: PhaseName;
  /** The workflow task the run was reset to. */
  reset_event_id: number;
  old_run_id: string;
  new_run_id: string;
  /**
   * The build the new run is pinned to; null when it follows the current build (an auto-upgrade
   * override) or for a decision from before versioning.
   */
  build_id: string | null;
}

export interface RetryOptions {
  /** The phase to run again from; by default the one that failed. */
  fromPhase?: PhaseName;
  /**
   * Run the retried decision on the deployment's current build instead of the one its history
   * was written by (whose workers may be gone). That build replays the history up to the phase:
   * the case `patched()` guards, checked first with `decisions replay`.
   */
  onCurrentBuild?: boolean;
  /**
   * Told the run the retry started, so that reads show it at once rather than the failure it
   * retries (read your writes: the API's and the command's retries both pass theirs).
   */
  reads?: Pick<DecisionReads, 'expectRun'>;
  /** WORKER_GONE_AFTER_SECONDS in ms: a build whose last poll is older has no worker. */
  liveWindowMs?: number;
}

export class RetryError extends Error {
  override name = 'RetryError';
}

/**
 * Retries a decision from a phase: resets the workflow to the workflow task just before that
 * phase was scheduled. The phases before it are not run again (their results come from history);
 * the new run continues from there and writes the projection as it goes. Without `fromPhase`,
 * retries from the phase that failed.
 *
 * The new run stays on the build its decision is pinned to. When that build is no longer current
 * and none of its workers polls, the retry is refused (it would wait for them) unless
 * `onCurrentBuild` moves it to the current build.
 */
export async function retryDecision(
  client: Client,
  id: string,
  options: RetryOptions = {},
): Promise<RetryResult> {
  const { fromPhase, onCurrentBuild = false } = options;
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
  const info = description.raw.workflowExecutionInfo?.versioningInfo;
  // The build the decision needs, by the rule the API's status documents use: its override's, or
  // the one it is pinned to; null when it follows the current build or is not versioned.
  const pinned = decisionVersion(info);
  const buildId = pinned?.buildId ?? null;
  const deploymentName = pinned?.deploymentName ?? info?.deploymentVersion?.deploymentName;
  let moveTo: string | null = null;
  if (deploymentName) {
    const deployment = await describeDeployment(
      client.workflowService,
      client.options.namespace,
      deploymentName,
    );
    const current = deployment?.current ?? null;
    if (onCurrentBuild) {
      if (!current) {
        throw new RetryError(
          `Worker Deployment ${deploymentName} has no current build to move decision ${id} to`,
        );
      }
      if (current !== buildId) moveTo = current;
    } else if (buildId && current !== buildId) {
      const live = await pollersByBuild(
        client.workflowService,
        client.options.namespace,
        description.taskQueue,
        options.liveWindowMs,
      );
      if (!live.has(buildId)) {
        throw new RetryError(
          `Decision ${id} runs on build ${buildId}, which no worker polls any more` +
            (current ? ` (the current build is ${current})` : '') +
            '; a retry would wait for one. Retry it on the current build with --on-current-build ' +
            `(API: "on_current_build": true), after checking with \`decisions replay ${id}\` that ` +
            'the current code replays its history',
        );
      }
    }
  }
  const version = moveTo && deploymentName ? { deploymentName, buildId: moveTo } : null;
  const response = await client.workflowService.resetWorkflowExecution({
    namespace: client.options.namespace,
    workflowExecution: { workflowId: id, runId: description.runId },
    reason: version ? `Retry from ${phase} on build ${version.buildId}` : `Retry from ${phase}`,
    workflowTaskFinishEventId: Long.fromNumber(eventId),
    requestId: randomUUID(),
    // The new run pinned to the current build, as `temporal workflow update-options` would.
    postResetOperations: version
      ? [
          {
            updateWorkflowOptions: {
              workflowExecutionOptions: {
                versioningOverride: {
                  pinned: {
                    version,
                    behavior: PinnedOverrideBehavior.PINNED_OVERRIDE_BEHAVIOR_PINNED,
                  },
                  // The deprecated fields, for servers that read only them (the SDK sets both).
                  behavior: VersioningBehavior.VERSIONING_BEHAVIOR_PINNED,
                  pinnedVersion: toCanonicalString(version),
                },
              },
              updateMask: { paths: ['versioning_override'] },
            },
          },
        ]
      : [],
  });
  const newRunId = response.runId ?? '';
  await options.reads?.expectRun(id, newRunId);
  return {
    process_id: id,
    from_phase: phase,
    reset_event_id: eventId,
    old_run_id: description.runId,
    new_run_id: newRunId,
    build_id: version?.buildId ?? buildId,
  };
}
