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
import { freePort } from '../support/ports';
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
// The live-worker rule at test speed: the server answers an idle worker's long poll after 2 s
// instead of 60 s, so a running worker polls every 2 s, and a build whose workers have not polled
// for 6 s (instead of 90) has none (WORKER_GONE_AFTER_SECONDS: above the long poll, as 90 is
// above 60).
const LONG_POLL = '2s';
const GONE_AFTER_SECONDS = 6;

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
  // Versions created in the order listed, a day apart.
  const state = (current: string | null, versions: Record<string, string>): DeploymentState => ({
    deployment: 'd',
    current,
    ramping: null,
    versions: Object.entries(versions).map(([build_id, status], i) => ({
      build_id,
      status: status as DeploymentState['versions'][number]['status'],
      created_at: new Date(Date.UTC(2026, 0, 1 + i)).toISOString(),
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

  it('auto promotes a build that was current before when no worker of the current, older one polls', () => {
    // `npm start` made `dev` current again, then stopped: B's worker restarting takes over.
    const devAgain = state('dev', { dev: 'current', b: 'draining' });
    expect(shouldPromote('auto', devAgain, 'b', true)).toBe(false);
    expect(shouldPromote('auto', devAgain, 'b', false)).toBe(true);
    expect(shouldPromote('manual', devAgain, 'b', false)).toBe(false);
    expect(shouldPromote('auto', state('b', { b: 'current' }), 'b', false)).toBe(false);
    // Never back to an older build: A's worker restarting while B's workers are away stays off.
    expect(shouldPromote('auto', state('b', { a: 'draining', b: 'current' }), 'a', false)).toBe(
      false,
    );
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
    // WORKER_GONE_AFTER_SECONDS moves the window.
    expect(livePollers(pollers, now, 10_000)).toEqual(new Map([['a', ['1@a']]]));
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
    WORKER_GONE_AFTER_SECONDS: String(GONE_AFTER_SECONDS),
  });
  /** The builds with a worker polling now, by the rule the workers, the API and the CLI use. */
  const liveBuilds = async (taskQueue: string) =>
    pollersByBuild(client.workflowService, 'default', taskQueue, GONE_AFTER_SECONDS * 1000);
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
        '--dynamic-config-value',
        `matching.longPollExpirationInterval="${LONG_POLL}"`,
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
    // A stopped worker's poller counts until its last poll is WORKER_GONE_AFTER_SECONDS old.
    await waitFor(
      "A's workers to leave the task queue's live pollers",
      async () => ((await liveBuilds(taskQueue)).has(a.buildId) ? undefined : true),
      60_000,
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

  it('a worker of a build that was current before, started (auto) while no worker of the current build runs, makes its build current, and a decision that was waiting completes on it', async () => {
    // The finding, as a developer met it: `npm start` (build A, here the suite's bundle) and a
    // separate worker of build B, which promotes itself; `npm start` again (A current again);
    // then only the separate worker again.
    const taskQueue = uniqueName('stranded');
    const a = await startWorker(taskQueue, { WORKFLOW_BUNDLE_PATH: bundleA() });
    const b = await startWorker(taskQueue, { WORKFLOW_BUNDLE_PATH: bundleB() });
    expect(b.promoted, b.role.output()).toBe(true);
    const again = JSON.parse(
      await decisions(taskQueue, 'deploy', 'promote', '--build-id', a.buildId, '--json'),
    ) as { current: string; previous: string };
    expect(again).toMatchObject({ current: a.buildId, previous: b.buildId });
    await Promise.all([stopRole(b.role.child), stopRole(a.role.child)]);
    await waitFor(
      'no worker of A or B to be live',
      async () => ((await liveBuilds(taskQueue)).size === 0 ? true : undefined),
      60_000,
    );
    // A decision started now waits: A is current and none of its workers runs.
    const waiting = await client.workflow.start<typeof decisionWorkflow>(DECISION_WORKFLOW_TYPE, {
      taskQueue,
      workflowId: uniqueName('waiting'),
      args: [{ query: 'Should we wait for a worker that is gone?' }],
    });
    const before = (await describeDeployment(client.workflowService, 'default', taskQueue))!;
    expect(before.current).toBe(a.buildId);
    expect(before.versions.find((v) => v.build_id === b.buildId)?.status).not.toBe('inactive');

    // B's worker again, WORKER_PROMOTION=auto (the default): seen before, and still current now.
    const b2 = await startWorker(taskQueue, { WORKFLOW_BUNDLE_PATH: bundleB() });
    expect(b2.buildId).toBe(b.buildId);
    expect(b2.promoted, b2.role.output()).toBe(true);
    const after = (await describeDeployment(client.workflowService, 'default', taskQueue))!;
    expect(after.current).toBe(b.buildId);
    expect((await waiting.result()).status).toBe('completed');
    const ran = await whereItRan(waiting);
    expect(ran.builds).toEqual(new Set([b.buildId]));
    expect(ran.activityWorkers).toEqual(new Set([b2.identity]));
  }, 240_000);

  it("a running auto worker started while the current build's stopped worker still counted as live takes over once two checks a window apart find it gone, and a waiting decision completes on it", async () => {
    const taskQueue = uniqueName('take-over');
    const a = await startWorker(taskQueue, { WORKFLOW_BUNDLE_PATH: bundleA() });
    const b = await startWorker(taskQueue, { WORKFLOW_BUNDLE_PATH: bundleB() });
    await decisions(taskQueue, 'deploy', 'promote', '--build-id', a.buildId);
    await stopRole(b.role.child);
    // B's worker again at once after A's stops, with a window long enough that A's last poll is
    // still recent when B starts: B stays off at start, and takes over from its running checks.
    const window = 30;
    const stoppedAt = Date.now();
    await stopRole(a.role.child);
    const b2 = await startWorker(taskQueue, {
      WORKFLOW_BUNDLE_PATH: bundleB(),
      WORKER_GONE_AFTER_SECONDS: String(window),
    });
    expect(Date.now() - stoppedAt, 'B started within the window').toBeLessThan(window * 1000);
    expect(b2.promoted, b2.role.output()).toBe(false);
    const waiting = await client.workflow.start<typeof decisionWorkflow>(DECISION_WORKFLOW_TYPE, {
      taskQueue,
      workflowId: uniqueName('waiting'),
      args: [{ query: 'Should the running worker take over?' }],
    });
    await waitFor(
      'B to become current',
      async () =>
        (await describeDeployment(client.workflowService, 'default', taskQueue))?.current ===
        b.buildId
          ? true
          : undefined,
      // Two windows and a check's interval, with room for a loaded server: its describe of a
      // deployment has been seen to take 30 s.
      (3 * window + 60) * 1000,
    );
    // A counts as gone a window after its last poll; B takes over when a check a window later
    // still finds it gone.
    expect(Date.now() - stoppedAt, 'not before A was gone on two checks').toBeGreaterThan(
      2 * window * 1000,
    );
    expect(b2.role.output()).toContain(`No worker of the current build ${a.buildId} polled`);
    expect((await waiting.result()).status).toBe('completed');
    expect((await whereItRan(waiting)).builds).toEqual(new Set([b.buildId]));
  }, 240_000);

  it("an older build's running auto worker does not take over from the newer current build while that build's workers are gone, and the newer build's worker back finds it still current", async () => {
    const taskQueue = uniqueName('no-going-back');
    const a = await startWorker(taskQueue, { WORKFLOW_BUNDLE_PATH: bundleA() });
    const b = await startWorker(taskQueue, { WORKFLOW_BUNDLE_PATH: bundleB() });
    expect(b.promoted, b.role.output()).toBe(true);
    // B's only worker stops (a crashloop, a node drained) while A's keeps running.
    await stopRole(b.role.child);
    await waitFor(
      "B's worker to be gone by the rule",
      async () => ((await liveBuilds(taskQueue)).has(b.buildId) ? undefined : true),
      60_000,
    );
    // Long enough for A's checks (every 2 s) to find B gone twice, a window apart, and more.
    const goneAt = Date.now();
    await waitFor(
      'three windows with B gone',
      async () => {
        const live = await liveBuilds(taskQueue);
        expect(live.has(b.buildId)).toBe(false);
        expect(live.has(a.buildId)).toBe(true);
        return Date.now() - goneAt > 3 * GONE_AFTER_SECONDS * 1000 ? true : undefined;
      },
      60_000,
    );
    expect((await describeDeployment(client.workflowService, 'default', taskQueue))?.current).toBe(
      b.buildId,
    );
    expect(a.role.output()).not.toContain('No worker of the current build');
    // B's worker back: B is still current, and a new decision runs on it.
    const b2 = await startWorker(taskQueue, { WORKFLOW_BUNDLE_PATH: bundleB() });
    expect(b2.buildId).toBe(b.buildId);
    const fresh = await client.workflow.start<typeof decisionWorkflow>(DECISION_WORKFLOW_TYPE, {
      taskQueue,
      workflowId: uniqueName('fresh'),
      args: [{ query: 'Should we stay on the newer build?' }],
    });
    expect((await fresh.result()).status).toBe('completed');
    expect((await whereItRan(fresh)).builds).toEqual(new Set([b.buildId]));
  }, 240_000);

  it('with no live worker of the current build: /ready says so naming it, a create answers 503 with Retry-After naming the build and what to run, and a decision paused on it carries the warning in its status document; all clear once a worker is back', async () => {
    const taskQueue = uniqueName('no-worker');
    const a = await startWorker(taskQueue, { WORKFLOW_BUNDLE_PATH: bundleA() });
    const port = await freePort();
    const api = startRole('src/main/api.ts', {
      ...env(taskQueue),
      PORT: String(port),
      AUTH_DISABLED: 'true',
      RATE_LIMIT_PER_MINUTE: '0',
    });
    roles.push(api);
    const base = `http://127.0.0.1:${port}`;
    const ready = async () => {
      const res = await fetch(`${base}/ready`);
      return {
        code: res.status,
        body: (await res.json()) as {
          status: string;
          checks: { workers?: { ok: boolean; detail: string } };
        },
      };
    };
    await waitFor('the API to answer /ready', () => ready(), 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${api.output()}`);
    });
    const create = (body: object) =>
      fetch(`${base}/decisions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    type Doc = {
      status: string;
      attention?: { reason: string; build_id: string; message: string };
    };
    const status = async (id: string) =>
      (await (await fetch(`${base}/decisions/${id}`)).json()) as Doc;

    // All well: ready, and a decision created; it pauses for its review on A.
    expect(await ready()).toMatchObject({
      code: 200,
      body: { status: 'ok', checks: { workers: { ok: true } } },
    });
    const created = await create({ query: 'Should we keep a worker running?', review: true });
    expect(created.status).toBe(202);
    const { process_id: id } = (await created.json()) as { process_id: string };
    const paused = await waitFor('the decision to await its review', async () => {
      const doc = await status(id);
      return doc.status === 'awaiting_review' ? doc : undefined;
    });
    expect(paused.attention).toBeUndefined();
    const pinned = (await client.workflow.getHandle(id).describe()).raw.workflowExecutionInfo
      ?.versioningInfo?.deploymentVersion?.buildId;
    expect(pinned).toBe(a.buildId);

    // A's only worker stops: Temporal lists its poller, and A stays current.
    await stopRole(a.role.child);
    await waitFor(
      "A's worker to be gone by the rule",
      async () => ((await liveBuilds(taskQueue)).has(a.buildId) ? undefined : true),
      60_000,
    );
    expect((await describeDeployment(client.workflowService, 'default', taskQueue))?.current).toBe(
      a.buildId,
    );
    const degraded = await waitFor('/ready to say so', async () => {
      const r = await ready();
      return r.body.status === 'degraded' ? r : undefined;
    });
    expect(degraded.code).toBe(200);
    expect(degraded.body.checks.workers?.ok).toBe(false);
    expect(degraded.body.checks.workers?.detail).toContain(`No worker of build ${a.buildId}`);

    const refused = await create({ query: 'Should we start one anyway?' });
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get('Retry-After'))).toBeGreaterThan(0);
    const problem = (await refused.json()) as { status: number; detail: string };
    expect(problem.status).toBe(503);
    expect(problem.detail).toContain(`No worker of build ${a.buildId}`);
    expect(problem.detail).toContain(`WORKER_BUILD_ID=${a.buildId}`);
    expect(problem.detail).toContain('deploy promote');

    const stranded = await status(id);
    expect(stranded.status).toBe('awaiting_review');
    expect(stranded.attention).toMatchObject({ reason: 'no_live_worker', build_id: a.buildId });
    expect(stranded.attention?.message).toContain(`WORKER_BUILD_ID=${a.buildId}`);

    // A worker of A again: ready, no warning, and the paused decision, approved, completes on it.
    const a2 = await startWorker(taskQueue, { WORKFLOW_BUNDLE_PATH: bundleA() });
    expect(a2.buildId).toBe(a.buildId);
    await waitFor('/ready to be ok again', async () =>
      (await ready()).body.status === 'ok' ? true : undefined,
    );
    await waitFor('the warning to go', async () =>
      (await status(id)).attention === undefined ? true : undefined,
    );
    const review = await fetch(`${base}/decisions/${id}/review`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ approve: true }),
    });
    expect(review.status).toBe(200);
    const handle = client.workflow.getHandle<typeof decisionWorkflow>(id);
    expect((await handle.result()).status).toBe('completed');
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
