import type { Client } from '@temporalio/client';
import { msNumberToTs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { describe, expect, it } from 'vitest';
import { BuildWatch } from '../../src/temporal/build-watch';

const { WorkerDeploymentVersionStatus: Status } = temporal.api.enums.v1;

/**
 * A client that answers the two calls a look makes, as a server with build `a` current and the
 * given builds' workers polling `ago` ms ago, counting the calls; `hang` never answers.
 */
function fakeClient(options: { polling?: Record<string, number>; hang?: boolean } = {}) {
  const calls = { deployment: 0, taskQueue: 0 };
  const answer = <T>(value: T) =>
    options.hang ? new Promise<T>(() => undefined) : Promise.resolve(value);
  const client = {
    options: { namespace: 'default' },
    connection: { withDeadline: <T>(_deadline: number, fn: () => Promise<T>) => fn() },
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
});
