import type { Client } from '@temporalio/client';
import { msNumberToTs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { describe, expect, it } from 'vitest';
import { BuildWatch } from '../../src/temporal/build-watch';

const { VersioningBehavior, WorkerDeploymentVersionStatus: Status } = temporal.api.enums.v1;
type VersioningInfo = temporal.api.workflow.v1.IWorkflowExecutionVersioningInfo;

/**
 * A client that answers the calls a look makes, as a server with build `a` current and the given
 * builds' workers polling `ago` ms ago, counting the calls; `hang` never answers (the connection
 * ends a call at its deadline, as gRPC does). A decision's describe answers `versioning`.
 */
function fakeClient(
  options: { polling?: Record<string, number>; hang?: boolean; versioning?: VersioningInfo } = {},
) {
  const calls = { deployment: 0, taskQueue: 0 };
  const answer = <T>(value: T) =>
    options.hang ? new Promise<T>(() => undefined) : Promise.resolve(value);
  const client = {
    options: { namespace: 'default' },
    connection: {
      withDeadline: <T>(deadline: number, fn: () => Promise<T>) =>
        Promise.race([
          fn(),
          new Promise<never>((_, reject) =>
            setTimeout(() => reject(new Error('DEADLINE_EXCEEDED')), deadline - Date.now()),
          ),
        ]),
    },
    workflow: {
      getHandle: () => ({
        describe: () =>
          answer({ raw: { workflowExecutionInfo: { versioningInfo: options.versioning } } }),
      }),
    },
    workflowService: {
      describeWorkerDeployment: () => {
        calls.deployment++;
        return answer({
          workerDeploymentInfo: {
            routingConfig: { currentDeploymentVersion: { buildId: 'a' } },
            versionSummaries: [
              {
                deploymentVersion: { buildId: 'a' },
                status: Status.WORKER_DEPLOYMENT_VERSION_STATUS_CURRENT,
              },
              {
                deploymentVersion: { buildId: 'b' },
                status: Status.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINING,
              },
            ],
          },
        });
      },
      describeTaskQueue: () => {
        calls.taskQueue++;
        return answer({
          pollers: Object.entries(options.polling ?? {}).map(([buildId, ago]) => ({
            identity: `1@${buildId}`,
            deploymentOptions: { deploymentName: 'decisions', buildId },
            lastAccessTime: msNumberToTs(Date.now() - ago),
          })),
        });
      },
    },
  };
  return { client: client as unknown as Client, calls };
}

describe('BuildWatch: whether the build decisions need has a live worker, for the API', () => {
  const options = { taskQueue: 'decisions', deploymentName: 'decisions' };

  it('names the current build and the fix when none of its workers polled within the window', async () => {
    const { client } = fakeClient({ polling: { a: 95_000, b: 1_000 } });
    const stranded = await new BuildWatch(client, options).currentStranded();
    expect(stranded?.build_id).toBe('a');
    expect(stranded?.message).toContain('No worker of build a, the current build');
    expect(stranded?.message).toContain('WORKER_BUILD_ID=a');
    // A build that has workers is named as the one to promote.
    expect(stranded?.message).toContain('deploy promote --build-id b` (b has workers)');
    // The window is a setting: with a longer one, the same poll is recent enough.
    const longer = new BuildWatch(client, { ...options, liveWindowMs: 120_000 });
    expect(await longer.currentStranded()).toBeNull();
  });

  it('looks once per cache period, however many requests ask', async () => {
    const { client, calls } = fakeClient({ polling: { a: 1_000 } });
    const watch = new BuildWatch(client, { ...options, cacheMs: 60_000 });
    await Promise.all(Array.from({ length: 50 }, () => watch.currentStranded()));
    await watch.workersCheck();
    expect(calls).toEqual({ deployment: 1, taskQueue: 1 });
    const fresh = new BuildWatch(client, { ...options, cacheMs: 0 });
    await fresh.currentStranded();
    await fresh.currentStranded();
    expect(calls).toEqual({ deployment: 3, taskQueue: 3 });
  });

  it('answers "cannot tell" within its deadline when Temporal does not answer, refusing nothing', async () => {
    const { client } = fakeClient({ hang: true });
    const watch = new BuildWatch(client, { ...options, timeoutMs: 200 });
    const started = performance.now();
    expect(await watch.currentStranded()).toBeNull();
    expect(performance.now() - started).toBeLessThan(1000);
    expect(await watch.workersCheck()).toMatchObject({ ok: true });
    expect(await watch.attention('some-id')).toBeNull();
  });

  it("follows a decision's versioning override: an auto-upgrade one needs the current build, a pinned one the build it names", async () => {
    const onB: VersioningInfo = {
      behavior: VersioningBehavior.VERSIONING_BEHAVIOR_PINNED,
      deploymentVersion: { deploymentName: 'decisions', buildId: 'b' },
    };
    const attention = (versioning: VersioningInfo) =>
      new BuildWatch(fakeClient({ polling: { a: 1_000 }, versioning }).client, options).attention(
        'some-id',
      );
    // Pinned to b, whose workers are gone: it waits for b, and is told how to move.
    const waiting = await attention(onB);
    expect(waiting).toMatchObject({ reason: 'no_live_worker', build_id: 'b' });
    expect(waiting?.message).toContain('--versioning-override-behavior auto_upgrade');
    // Moved as told: its next step runs on the current build a, which has workers.
    expect(await attention({ ...onB, versioningOverride: { autoUpgrade: true } })).toBeNull();
    expect(
      await attention({
        ...onB,
        versioningOverride: {
          pinned: { version: { deploymentName: 'decisions', buildId: 'a' } },
        },
      }),
    ).toBeNull();
    // Pinned by an override to b while it last ran on a: it waits for b.
    expect(
      await attention({
        behavior: VersioningBehavior.VERSIONING_BEHAVIOR_PINNED,
        deploymentVersion: { deploymentName: 'decisions', buildId: 'a' },
        versioningOverride: {
          pinned: { version: { deploymentName: 'decisions', buildId: 'b' } },
        },
      }),
    ).toMatchObject({ build_id: 'b' });
  });
});
