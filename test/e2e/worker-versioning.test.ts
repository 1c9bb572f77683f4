import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { msNumberToTs, optionalTsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DECISION_WORKFLOW_TYPE, progressQuery, reviewUpdate } from '../../src/domain/workflow-api';
import {
  buildIdFor,
  describeDeployment,
  livePollers,
  packageVersion,
  pollersByBuild,
  runningPinned,
  shouldPromote,
  type DeploymentState,
} from '../../src/temporal/versioning';
import type { decisionWorkflow } from '../../src/workflows';
import { services, testProjection, uniqueName, waitFor } from '../support/context';
import { root, startRole, stopRole } from '../support/processes';
import { startTestServer } from '../support/temporal-server';

const { VersioningBehavior, VersionDrainageStatus } = temporal.api.enums.v1;
type Role = ReturnType<typeof startRole>;

// How long the server waits after a version stops being current before it counts its running
// workflows (visibility lags), and how often it counts again. The defaults, 3 minutes each, are
// what production wants; the dev server takes shorter ones as dynamic config, which is why this
// test runs a dev server of its own: with the defaults a version reports `drained` only minutes
// after its last decision ends, longer than a test should wait. The dev server (CLI v1.5.1,
// server 1.29.1) lacks nothing else this test uses: versions, pinning, promotion, drainage.
const DRAINAGE_GRACE_MS = 4000;
const DRAINAGE_REFRESH_MS = 1000;

/** A worker process's environment: the offline model, no HTTP ports, this queue and prefix. */
function workerEnv(address: string, taskQueue: string, redisKeyPrefix: string) {
  return {
    TEMPORAL_ADDRESS: address,
    TEMPORAL_TASK_QUEUE: taskQueue,
    REDIS_URL: services.redisUrl,
    REDIS_KEY_PREFIX: redisKeyPrefix,
    LOG_LEVEL: 'info',
    LLM_PROVIDER: 'offline',
    WORKER_HTTP_PORT: 'off',
    WORKER_SDK_METRICS_ADDRESS: 'off',
  };
}

/** The `Worker polling` line a worker logs once its version is routed. */
function pollingLine(role: Role): { buildId: string; identity: string; promoted: boolean } {
  for (const line of role.output().split('\n')) {
    if (!line.includes('"msg":"Worker polling')) continue;
    return JSON.parse(line) as { buildId: string; identity: string; promoted: boolean };
  }
  throw new Error(`The worker has not logged "Worker polling":\n${role.output()}`);
}

/** The build ids that completed the workflow's tasks, and who ran its activities, from history. */
async function whereItRan(handle: WorkflowHandle) {
  const events = (await handle.fetchHistory()).events ?? [];
  const tasks = events.flatMap((e) =>
    e.workflowTaskCompletedEventAttributes ? [e.workflowTaskCompletedEventAttributes] : [],
  );
  return {
    builds: new Set(tasks.map((t) => t.deploymentVersion?.buildId ?? 'none')),
    behaviors: new Set(tasks.map((t) => t.versioningBehavior)),
    taskWorkers: new Set(tasks.map((t) => t.identity)),
    activityWorkers: new Set(
      events.flatMap((e) =>
        e.activityTaskCompletedEventAttributes
          ? [e.activityTaskCompletedEventAttributes.identity]
          : [],
      ),
    ),
  };
}

describe('shouldPromote: when a starting worker makes its own version current', () => {
  const state = (current: string | null, versions: Record<string, string>): DeploymentState => ({
    deployment: 'd',
    current,
    ramping: null,
    versions: Object.entries(versions).map(([build_id, status]) => ({
      build_id,
      status: status as DeploymentState['versions'][number]['status'],
      created_at: null,
    })),
  });

  it('promotes the first version of a deployment, whatever the policy', () => {
    for (const policy of ['auto', 'manual', 'always'] as const) {
      expect(shouldPromote(policy, null, 'a')).toBe(true);
      expect(shouldPromote(policy, state(null, { a: 'inactive' }), 'a')).toBe(true);
    }
  });

  it('auto promotes a new version, never one that was current or ramps, nor over it manually', () => {
    expect(shouldPromote('auto', state('a', { a: 'current', b: 'inactive' }), 'b')).toBe(true);
    // An old worker restarting while its version drains, or the new one after a rollback.
    expect(shouldPromote('auto', state('b', { a: 'draining', b: 'current' }), 'a')).toBe(false);
    expect(shouldPromote('auto', state('a', { a: 'current', b: 'draining' }), 'b')).toBe(false);
    expect(shouldPromote('auto', state('a', { a: 'current', b: 'ramping' }), 'b')).toBe(false);
    expect(shouldPromote('manual', state('a', { a: 'current', b: 'inactive' }), 'b')).toBe(false);
    // Nothing current: a manual build takes a new deployment only when it is its only build.
    expect(shouldPromote('manual', null, 'b')).toBe(true);
    expect(shouldPromote('manual', state(null, { b: 'inactive' }), 'b')).toBe(true);
    expect(shouldPromote('manual', state(null, { a: 'inactive', b: 'inactive' }), 'b')).toBe(false);
    expect(shouldPromote('auto', state(null, { a: 'inactive', b: 'inactive' }), 'b')).toBe(true);
    expect(shouldPromote('always', state('b', { a: 'drained', b: 'current' }), 'a')).toBe(true);
    expect(shouldPromote('always', state('a', { a: 'current' }), 'a')).toBe(false);
  });
});

describe('livePollers: the workers `deploy status` lists and `deploy promote` requires', () => {
  it('keeps the workers seen within 90 s, by build; the server lists stopped ones for 5 minutes', () => {
    const now = Date.parse('2025-05-09T14:00:00Z');
    const poller = (identity: string, buildId: string | null, agoMs: number) => ({
      identity,
      deploymentOptions: buildId ? { deploymentName: 'd', buildId } : null,
      lastAccessTime: msNumberToTs(now - agoMs),
    });
    const pollers = [
      poller('1@a', 'a', 1_000),
      poller('2@a', 'a', 61_000),
      poller('3@b', 'b', 95_000),
      poller('4@unversioned', null, 1_000),
    ];
    expect(livePollers(pollers, now)).toEqual(new Map([['a', ['1@a', '2@a']]]));
  });
});

describe('worker versioning: decisions stay on the version they started on', () => {
  let server: TestWorkflowEnvironment;
  let address: string;
  let client: Client;
  let store: ReturnType<typeof testProjection>;
  let bundles: string;
  const roles: Role[] = [];

  /** Each test runs a deployment of its own: its own task queue, whose name it takes. */
  const env = (taskQueue: string) => ({
    ...workerEnv(address, taskQueue, store.prefix),
    // No sticky cache: every workflow task goes through the task queue, where only the version
    // pin can route it back to the workers of its build (a cached workflow's sticky queue would
    // take it to the same worker whatever the versioning).
    WORKER_MAX_CACHED_WORKFLOWS: '0',
  });
  const startWorker = async (taskQueue: string, extra: Record<string, string>) => {
    const role = startRole('src/main/worker.ts', { ...env(taskQueue), ...extra });
    roles.push(role);
    const polling = await waitFor(
      'the worker to poll',
      () =>
        role.output().includes('"msg":"Worker polling')
          ? true
          : role.child.exitCode !== null
            ? false
            : undefined,
      90_000,
    ).catch(() => false);
    if (!polling) throw new Error(`The worker did not start polling:\n${role.output()}`);
    return { role, ...pollingLine(role) };
  };
  /** Build A, the suite's bundle, and build B, the same workflows in another bundle. */
  const bundleA = () => services.workflowBundlePath;
  const bundleB = () => join(bundles, 'b.js');
  const decisions = async (taskQueue: string, ...args: string[]) => {
    const { stdout } = await promisify(execFile)(
      resolve(root, 'node_modules/.bin/tsx'),
      ['src/cli/decisions.ts', ...args],
      { cwd: root, env: { ...process.env, ...env(taskQueue) } },
    );
    return stdout;
  };
  const versionInfo = async (taskQueue: string, buildId: string) =>
    (
      await client.workflowService.describeWorkerDeploymentVersion({
        namespace: 'default',
        deploymentVersion: { deploymentName: taskQueue, buildId },
      })
    ).workerDeploymentVersionInfo;

  beforeAll(async () => {
    server = await startTestServer(services.temporalCliPath, {
      extraArgs: [
        '--dynamic-config-value',
        `matching.wv.VersionDrainageStatusVisibilityGracePeriod="${DRAINAGE_GRACE_MS}ms"`,
        '--dynamic-config-value',
        `matching.wv.VersionDrainageStatusRefreshInterval="${DRAINAGE_REFRESH_MS}ms"`,
      ],
    });
    address = server.address;
    client = server.client;
    store = testProjection();
    // Build B: the same workflows in another bundle, as a new release's image would hold. The
    // mark goes before the inline source map, which the worker reads from the bundle's end.
    bundles = mkdtempSync(join(tmpdir(), 'versioning-'));
    const a = readFileSync(bundleA(), 'utf8');
    const sourceMap = a.lastIndexOf('//# sourceMappingURL=');
    writeFileSync(bundleB(), `${a.slice(0, sourceMap)}// build B\n${a.slice(sourceMap)}`);
  });

  afterAll(async () => {
    await Promise.all(roles.map((r) => stopRole(r.child)));
    await store?.cleanup();
    await server?.teardown();
    if (bundles) rmSync(bundles, { recursive: true, force: true });
  });

  it('a decision paused in review on version A; worker B started and made current; a new decision runs on B while the paused one, approved, completes on A', async () => {
    const taskQueue = uniqueName('versioning');
    // Worker A, from the suite's bundle: the deployment is new, so A makes itself current.
    const a = await startWorker(taskQueue, { WORKFLOW_BUNDLE_PATH: bundleA() });
    expect(a.buildId).toBe(buildIdFor(readFileSync(bundleA(), 'utf8')));
    expect(a.buildId).toMatch(
      new RegExp(`^${packageVersion().replace(/\./g, '\\.')}\\+[0-9a-f]{12}$`),
    );
    expect(a.promoted).toBe(true);

    const paused = await client.workflow.start<typeof decisionWorkflow>(DECISION_WORKFLOW_TYPE, {
      taskQueue,
      workflowId: uniqueName('paused'),
      args: [{ query: 'Should we pause for a review?', review: { timeout_ms: 600_000 } }],
    });
    await waitFor('the decision to await its review', async () =>
      (await paused.query(progressQuery)).status === 'awaiting_review' ? true : undefined,
    );
    const pinnedTo = async (handle: WorkflowHandle) => {
      const info = (await handle.describe()).raw.workflowExecutionInfo?.versioningInfo;
      return { behavior: info?.behavior, buildId: info?.deploymentVersion?.buildId };
    };
    expect(await pinnedTo(paused)).toEqual({
      behavior: VersioningBehavior.VERSIONING_BEHAVIOR_PINNED,
      buildId: a.buildId,
    });

    // Worker B, another bundle, with the canary's policy: it polls but takes nothing yet.
    const b = await startWorker(taskQueue, {
      WORKFLOW_BUNDLE_PATH: bundleB(),
      WORKER_PROMOTION: 'manual',
    });
    expect(b.buildId).toBe(buildIdFor(readFileSync(bundleB(), 'utf8')));
    expect(b.buildId).not.toBe(a.buildId);
    expect(b.promoted, b.role.output()).toBe(false);
    const before = JSON.parse(await decisions(taskQueue, 'deploy', 'status', '--json')) as {
      current: string;
      versions: { build_id: string; status: string; pollers: string[] }[];
    };
    expect(before.current).toBe(a.buildId);
    expect(before.versions.map((v) => [v.build_id, v.status, v.pollers])).toEqual([
      [a.buildId, 'current', [a.identity]],
      [b.buildId, 'inactive', [b.identity]],
    ]);

    // The operator promotes the newest build: B.
    const promotedAt = Date.now();
    const promoted = JSON.parse(await decisions(taskQueue, 'deploy', 'promote', '--json')) as {
      current: string;
      previous: string;
    };
    expect(promoted).toMatchObject({ current: b.buildId, previous: a.buildId });
    const after = (await describeDeployment(client.workflowService, 'default', taskQueue))!;
    expect(after.current).toBe(b.buildId);
    expect(after.versions.find((v) => v.build_id === a.buildId)?.status).toBe('draining');

    // A new decision runs on B alone.
    const fresh = await client.workflow.start<typeof decisionWorkflow>(DECISION_WORKFLOW_TYPE, {
      taskQueue,
      workflowId: uniqueName('fresh'),
      args: [{ query: 'Should we start on the new build?' }],
    });
    expect((await fresh.result()).status).toBe('completed');
    expect(await pinnedTo(fresh)).toEqual({
      behavior: VersioningBehavior.VERSIONING_BEHAVIOR_PINNED,
      buildId: b.buildId,
    });
    const onB = await whereItRan(fresh);
    expect(onB.builds).toEqual(new Set([b.buildId]));
    expect(onB.taskWorkers).toEqual(new Set([b.identity]));
    expect(onB.activityWorkers).toEqual(new Set([b.identity]));

    // The server counts the paused decision as A's: A keeps draining, checked after B took over.
    await waitFor('a drainage check of A after the promotion', async () => {
      const info = await versionInfo(taskQueue, a.buildId);
      const checked = optionalTsToMs(info?.drainageInfo?.lastCheckedTime) ?? 0;
      return checked > promotedAt + DRAINAGE_GRACE_MS ? true : undefined;
    });
    expect((await versionInfo(taskQueue, a.buildId))?.drainageInfo?.status).toBe(
      VersionDrainageStatus.VERSION_DRAINAGE_STATUS_DRAINING,
    );
    expect(await runningPinned(client, { deploymentName: taskQueue, buildId: a.buildId })).toBe(1);

    // Approved, the paused decision completes, every task and activity of it on A.
    await paused.executeUpdate(reviewUpdate, { args: [{ approve: true }] });
    const record = await paused.result();
    expect(record.status).toBe('completed');
    expect(record.review.status).toBe('approved');
    expect(await pinnedTo(paused)).toEqual({
      behavior: VersioningBehavior.VERSIONING_BEHAVIOR_PINNED,
      buildId: a.buildId,
    });
    const onA = await whereItRan(paused);
    expect(onA.builds).toEqual(new Set([a.buildId]));
    expect(onA.behaviors).toEqual(new Set([VersioningBehavior.VERSIONING_BEHAVIOR_PINNED]));
    expect(onA.taskWorkers).toEqual(new Set([a.identity]));
    expect(onA.activityWorkers).toEqual(new Set([a.identity]));

    // With its last decision done, A is drained: its workers may stop.
    await waitFor(
      'A to be drained',
      async () =>
        (await versionInfo(taskQueue, a.buildId))?.drainageInfo?.status ===
        VersionDrainageStatus.VERSION_DRAINAGE_STATUS_DRAINED
          ? true
          : undefined,
      DRAINAGE_GRACE_MS + 30_000,
    );
  }, 240_000);

  it("retries a decision whose build's workers are gone: refused, saying how; run on the current build with --on-current-build", async () => {
    // A decision completed on build A; then B, promoted; then A's workers stopped.
    const taskQueue = uniqueName('retry');
    const a = await startWorker(taskQueue, { WORKFLOW_BUNDLE_PATH: bundleA() });
    const onA = await client.workflow.start<typeof decisionWorkflow>(DECISION_WORKFLOW_TYPE, {
      taskQueue,
      workflowId: uniqueName('on-a'),
      args: [{ query: 'Should we retry on the new build?' }],
    });
    expect((await onA.result()).status).toBe('completed');
    const b = await startWorker(taskQueue, {
      WORKFLOW_BUNDLE_PATH: bundleB(),
      WORKER_PROMOTION: 'manual',
    });
    const promoted = JSON.parse(await decisions(taskQueue, 'deploy', 'promote', '--json')) as {
      current: string;
    };
    expect(promoted.current).toBe(b.buildId);
    expect((await whereItRan(onA)).builds).toEqual(new Set([a.buildId]));
    await stopRole(a.role.child);
    // The server lists a stopped worker's poller until its last poll is 90 s old.
    await waitFor(
      "A's workers to leave the task queue's live pollers",
      async () =>
        (await pollersByBuild(client.workflowService, 'default', taskQueue)).has(a.buildId)
          ? undefined
          : true,
      150_000,
    );

    const refused = await decisions(
      taskQueue,
      'retry',
      onA.workflowId,
      '--from-phase',
      'compileResult',
    )
      .then(() => null)
      .catch((err: { code?: number; stderr?: string }) => err);
    expect(refused?.code).toBe(1);
    expect(refused?.stderr).toContain(`runs on build ${a.buildId}, which no worker polls any more`);
    expect(refused?.stderr).toContain(`the current build is ${b.buildId}`);
    expect(refused?.stderr).toContain('--on-current-build');
    // Refused before anything was reset: the decision's run is the one A completed.
    const before = await onA.describe();
    expect(before.status.name).toBe('COMPLETED');

    const retried = JSON.parse(
      await decisions(
        taskQueue,
        'retry',
        onA.workflowId,
        '--from-phase',
        'compileResult',
        '--on-current-build',
        '--json',
      ),
    ) as { new_run_id: string; old_run_id: string; build_id: string };
    expect(retried).toMatchObject({ old_run_id: before.runId, build_id: b.buildId });
    const run = client.workflow.getHandle<typeof decisionWorkflow>(
      onA.workflowId,
      retried.new_run_id,
    );
    expect((await run.result()).status).toBe('completed');
    // The new run is pinned to B by the override, and B's worker ran the phase again.
    const info = (await run.describe()).raw.workflowExecutionInfo?.versioningInfo;
    expect(info?.versioningOverride?.pinned?.version?.buildId).toBe(b.buildId);
    const events = (await run.fetchHistory()).events ?? [];
    const compiled = events.filter((e) => e.activityTaskCompletedEventAttributes).at(-1);
    expect(compiled?.activityTaskCompletedEventAttributes?.identity).toBe(b.identity);
    const lastTask = events.filter((e) => e.workflowTaskCompletedEventAttributes).at(-1);
    expect(lastTask?.workflowTaskCompletedEventAttributes?.deploymentVersion?.buildId).toBe(
      b.buildId,
    );
  }, 240_000);
});

describe('WORKER_VERSIONING=off, for a Temporal server without the Worker Deployment APIs', () => {
  it('polls without a version: a decision completes with no build in its history, and no deployment is registered', async () => {
    const store = testProjection();
    const taskQueue = uniqueName('unversioned');
    const role = startRole('src/main/worker.ts', {
      ...workerEnv(services.temporalAddress, taskQueue, store.prefix),
      WORKFLOW_BUNDLE_PATH: services.workflowBundlePath,
      WORKER_VERSIONING: 'off',
    });
    const connection = await Connection.connect({ address: services.temporalAddress });
    try {
      await waitFor(
        'the worker to poll',
        () => (role.output().includes('"msg":"Worker polling"') ? true : undefined),
        90_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n${role.output()}`);
      });
      expect(pollingLine(role)).toMatchObject({ versioning: 'off' });
      const client = new Client({ connection });
      const handle = await client.workflow.start<typeof decisionWorkflow>(DECISION_WORKFLOW_TYPE, {
        taskQueue,
        workflowId: uniqueName('unversioned'),
        args: [{ query: 'Should we run without versioning?' }],
      });
      expect((await handle.result()).status).toBe('completed');
      const info = (await handle.describe()).raw.workflowExecutionInfo?.versioningInfo;
      expect(info?.deploymentVersion ?? null).toBeNull();
      const ran = await whereItRan(handle);
      expect(ran.builds).toEqual(new Set(['none']));
      expect(await describeDeployment(client.workflowService, 'default', taskQueue)).toBeNull();
    } finally {
      await stopRole(role.child);
      await connection.close();
      await store.cleanup();
    }
  }, 120_000);
});
