import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { isGrpcServiceError, type Client, type Connection } from '@temporalio/client';
import { optionalTsToDate, optionalTsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, Runtime } from '@temporalio/worker';
import type { WorkerConfig } from '../config';
import { waitFor } from '../process/wait';
import type { Tracing } from '../observability/tracing';
import {
  TRACING_WORKFLOW_MODULE,
  tracedBundlePath,
  workflowBundleOptions,
} from './workflow-bundle';

// Worker Deployment Versioning: every worker polls as one version (a deployment name and a build
// id) and pins the decisions it starts to that version, so a new build takes new decisions while
// the workers of the old one finish theirs. docs/OPERATIONS.md has the rollout steps.

const {
  TaskQueueType,
  VersioningBehavior,
  WorkerDeploymentVersionStatus: Status,
} = temporal.api.enums.v1;
type WorkflowService = Connection['workflowService'];

/** gRPC status codes the deployment calls answer with while a version is still registering. */
const RETRYABLE = new Set([
  4, // DEADLINE_EXCEEDED
  5, // NOT_FOUND: the version's first poll has not reached the server yet
  8, // RESOURCE_EXHAUSTED
  9, // FAILED_PRECONDITION: not every task queue type of the version has been polled yet
  10, // ABORTED
  14, // UNAVAILABLE
]);
const NOT_FOUND = 5;

/** The build `npm start` runs its worker as, whatever its code (tools/dev.ts). */
export const DEV_BUILD_ID = 'dev';

/** What makes a worker's version current when it starts (WORKER_PROMOTION). */
export type PromotionPolicy = WorkerConfig['WORKER_PROMOTION'];

export interface WorkerVersion {
  deploymentName: string;
  buildId: string;
}

export type VersionStatus = 'inactive' | 'current' | 'ramping' | 'draining' | 'drained' | 'unknown';

interface VersionState {
  build_id: string;
  status: VersionStatus;
  created_at: string | null;
}

/** A deployment as the server describes it: which build takes new decisions, and every version. */
export interface DeploymentState {
  deployment: string;
  /** The build new decisions start on; null when none is (new decisions wait, or go unversioned). */
  current: string | null;
  ramping: { build_id: string; percentage: number } | null;
  /** Oldest first. */
  versions: VersionState[];
}

const STATUS: Partial<Record<number, VersionStatus>> = {
  [Status.WORKER_DEPLOYMENT_VERSION_STATUS_INACTIVE]: 'inactive',
  [Status.WORKER_DEPLOYMENT_VERSION_STATUS_CURRENT]: 'current',
  [Status.WORKER_DEPLOYMENT_VERSION_STATUS_RAMPING]: 'ramping',
  [Status.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINING]: 'draining',
  [Status.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINED]: 'drained',
};

/** The workflow code a worker loads, and the code that names its build. */
export interface WorkflowCode {
  /** What the worker runs: the traced bundle when it traces. */
  run: string;
  /**
   * The bundle without tracing. The build id hashes this one: the traced bundle is the same code
   * with Temporal's tracing interceptors, and turning tracing on is configuration, not a new build.
   */
  plain: string;
}

/**
 * The workflow code: read from WORKFLOW_BUNDLE_PATH (the traced sibling to run when tracing), or
 * bundled now. Bundling here rather than in Worker.create lets the build id hash what runs.
 */
export async function loadWorkflowCode(
  bundlePath: string | undefined,
  tracing: Tracing | null,
): Promise<WorkflowCode> {
  if (bundlePath) {
    const plain = readBundle(bundlePath, 'WORKFLOW_BUNDLE_PATH');
    if (!tracing) return { run: plain, plain };
    const traced = tracedBundlePath(bundlePath);
    if (!existsSync(traced)) {
      throw new Error(
        `OTEL_EXPORTER_OTLP_ENDPOINT is set but ${traced} does not exist: make the bundles with \`npm run bundle:workflows -- ${bundlePath}\`, which writes both`,
      );
    }
    return { run: readBundle(traced, 'the traced bundle'), plain };
  }
  const options = { ...workflowBundleOptions(), logger: Runtime.instance().logger };
  const [plain, traced] = await Promise.all([
    bundleWorkflowCode(options),
    tracing
      ? bundleWorkflowCode({ ...options, workflowInterceptorModules: [TRACING_WORKFLOW_MODULE] })
      : null,
  ]);
  return { run: (traced ?? plain).code, plain: plain.code };
}

function readBundle(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`Cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** The version in package.json, read at run time: package.json is outside the compiled tree. */
export function packageVersion(): string {
  const file = resolve(__dirname, '../../package.json');
  const { version } = JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown };
  if (typeof version !== 'string' || !version) throw new Error(`${file} has no version`);
  return version;
}

/** A build id from the package version and the workflow code: `0.1.0+3f2a9c1b7d4e`. */
export function buildIdFor(code: string, version = packageVersion()): string {
  // The inline source map at the end names the files by absolute path: the same code bundled in
  // another checkout is the same build.
  const map = code.lastIndexOf('\n//# sourceMappingURL=');
  const hashed = map === -1 ? code : code.slice(0, map);
  return `${version}+${createHash('sha256').update(hashed).digest('hex').slice(0, 12)}`;
}

/**
 * WORKER_DEPLOYMENT_NAME, else the task queue's name (without the `.` and `:` a deployment name
 * may not hold): workers of different task queues, test workers among them, never share one.
 */
export function deploymentNameFor(
  config: Pick<WorkerConfig, 'WORKER_DEPLOYMENT_NAME' | 'TEMPORAL_TASK_QUEUE'>,
): string {
  return config.WORKER_DEPLOYMENT_NAME ?? config.TEMPORAL_TASK_QUEUE.replace(/[.:]/g, '-');
}

/** The build id in a version string `<deployment>.<build id>`; null for another or none. */
function buildOf(deploymentName: string, version: string | null | undefined): string | null {
  const prefix = `${deploymentName}.`;
  return version?.startsWith(prefix) ? version.slice(prefix.length) : null;
}

/** The deployment's routing and versions; null when no worker of it has polled yet. */
export async function describeDeployment(
  service: WorkflowService,
  namespace: string,
  deploymentName: string,
): Promise<DeploymentState | null> {
  let info;
  try {
    ({ workerDeploymentInfo: info } = await service.describeWorkerDeployment({
      namespace,
      deploymentName,
    }));
  } catch (err) {
    if (grpcCode(err) === NOT_FOUND) return null;
    throw deploymentError(`Cannot describe Worker Deployment ${deploymentName}`, err);
  }
  const routing = info?.routingConfig;
  const ramping = routing?.rampingDeploymentVersion?.buildId;
  return {
    deployment: deploymentName,
    // Servers that fill only the deprecated field name the version `<deployment>.<build id>`.
    current:
      routing?.currentDeploymentVersion?.buildId ||
      buildOf(deploymentName, routing?.currentVersion) ||
      null,
    ramping: ramping
      ? { build_id: ramping, percentage: routing?.rampingVersionPercentage ?? 0 }
      : null,
    versions: (info?.versionSummaries ?? [])
      .map((v) => ({
        build_id: v.deploymentVersion?.buildId ?? '',
        status: STATUS[v.status ?? 0] ?? 'unknown',
        created_at: optionalTsToDate(v.createTime)?.toISOString() ?? null,
      }))
      .sort((a, b) => (a.created_at ?? '').localeCompare(b.created_at ?? '')),
  };
}

export interface VersionReport extends VersionState {
  /** Identities of its workers polling the task queue now (seen within the live window). */
  pollers: string[];
  /** Decisions pinned to it that are still running: what its drainage waits for. */
  running: number | null;
}

export interface DeploymentReport extends Omit<DeploymentState, 'versions'> {
  task_queue: string;
  versions: VersionReport[];
}

/** `decisions deploy status`: the deployment, and per version its workers and running decisions. */
export async function deploymentReport(
  client: Client,
  taskQueue: string,
  deploymentName: string,
  liveWindowMs = LIVE_WINDOW_MS,
): Promise<DeploymentReport> {
  const namespace = client.options.namespace;
  const state = await describeDeployment(client.workflowService, namespace, deploymentName);
  if (!state) throw noDeployment(deploymentName, taskQueue);
  const pollers = await pollersByBuild(client.workflowService, namespace, taskQueue, liveWindowMs);
  const versions = await Promise.all(
    state.versions.map(async (v) => ({
      ...v,
      pollers: pollers.get(v.build_id) ?? [],
      running: await runningPinned(client, { deploymentName, buildId: v.build_id }),
    })),
  );
  return { ...state, task_queue: taskQueue, versions };
}

/**
 * The one rule for whether a build has workers: one of them polled within the last 90 s
 * (WORKER_GONE_AFTER_SECONDS). A running worker is back polling at least once a minute (a long
 * poll the server answers empty after 60 s); the server remembers a poller for five minutes,
 * stopped or not. `deploy promote`, `retry`, auto promotion, the API's /ready, its creates and the
 * status document's `attention` all decide by it.
 */
export const LIVE_WINDOW_MS = 90_000;

/**
 * The shortest WORKER_GONE_AFTER_SECONDS that does not count idle live workers as gone: the
 * server refreshes a poller's last access time only when a long poll starts or ends, and an idle
 * worker's long poll lasts 60 s.
 */
export const MIN_GONE_AFTER_SECONDS = 65;

/** What the worker and the API warn at start when WORKER_GONE_AFTER_SECONDS is too short. */
export function goneAfterWarning(seconds: number): string | null {
  if (seconds >= MIN_GONE_AFTER_SECONDS) return null;
  return (
    `WORKER_GONE_AFTER_SECONDS=${seconds} is below ${MIN_GONE_AFTER_SECONDS} s: Temporal ` +
    "refreshes a worker's last poll time only when a long poll starts or ends, and an idle " +
    "worker's long poll lasts 60 s, so idle workers that run will count as gone (auto " +
    'promotion takes over from their build, creates answer 503). Set it to 65 or more (default 90)'
  );
}

/** The workers polling a task queue's workflow tasks now (within `windowMs`), by build id. */
export async function pollersByBuild(
  service: WorkflowService,
  namespace: string,
  taskQueue: string,
  windowMs = LIVE_WINDOW_MS,
): Promise<Map<string, string[]>> {
  const { pollers } = await service.describeTaskQueue({
    namespace,
    taskQueue: { name: taskQueue },
    taskQueueType: TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
  });
  return livePollers(pollers ?? [], Date.now(), windowMs);
}

/** Pollers seen within the window (90 s by default), by build id (exported for its test). */
export function livePollers(
  pollers: temporal.api.taskqueue.v1.IPollerInfo[],
  now: number,
  windowMs = LIVE_WINDOW_MS,
): Map<string, string[]> {
  const byBuild = new Map<string, string[]>();
  for (const poller of pollers) {
    const buildId = poller.deploymentOptions?.buildId;
    const seen = optionalTsToMs(poller.lastAccessTime) ?? 0;
    if (!buildId || now - seen > windowMs) continue;
    byBuild.set(buildId, [...(byBuild.get(buildId) ?? []), poller.identity ?? '?']);
  }
  return byBuild;
}

/**
 * Running workflows pinned to a version, by the query the server's drainage check runs; null for
 * a name the query language could not quote (another tool's, never one of ours).
 */
export async function runningPinned(
  client: Client,
  version: WorkerVersion,
): Promise<number | null> {
  const value = `pinned:${version.deploymentName}:${version.buildId}`;
  if (/['"\\]/.test(value)) return null;
  const { count } = await client.workflow.count(
    `BuildIds = '${value}' AND ExecutionStatus = 'Running'`,
  );
  return count;
}

/**
 * The version a decision's next workflow tasks go to, by its versioning info (a describe's
 * `versioningInfo`): a pinned override's version, else the version it is pinned to. Null when it
 * follows the current build (an auto-upgrade override or behaviour, or no step taken yet) or is
 * not versioned. The API's `attention`, `retry` and anything else that asks "which build does
 * this decision need" decide by it.
 */
export function decisionVersion(
  info: temporal.api.workflow.v1.IWorkflowExecutionVersioningInfo | null | undefined,
): WorkerVersion | null {
  const override = info?.versioningOverride;
  if (override?.autoUpgrade) return null;
  const pinned = override?.pinned?.version;
  if (pinned?.buildId && pinned.deploymentName) {
    return { deploymentName: pinned.deploymentName, buildId: pinned.buildId };
  }
  // Servers and clients that set only the deprecated fields of the override.
  if (override?.behavior === VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE) return null;
  if (override?.pinnedVersion) {
    const dot = override.pinnedVersion.indexOf('.');
    if (dot > 0) {
      return {
        deploymentName: override.pinnedVersion.slice(0, dot),
        buildId: override.pinnedVersion.slice(dot + 1),
      };
    }
  }
  const version = info?.deploymentVersion;
  return info?.behavior === VersioningBehavior.VERSIONING_BEHAVIOR_PINNED &&
    version?.buildId &&
    version.deploymentName
    ? { deploymentName: version.deploymentName, buildId: version.buildId }
    : null;
}

/** Makes a version current: new decisions start on it. Returns the build that was current. */
async function setCurrentVersion(
  service: WorkflowService,
  namespace: string,
  version: WorkerVersion,
  identity: string,
): Promise<string | null> {
  try {
    const response = await service.setWorkerDeploymentCurrentVersion({
      namespace,
      deploymentName: version.deploymentName,
      buildId: version.buildId,
      identity,
    });
    return response.previousDeploymentVersion?.buildId || null;
  } catch (err) {
    throw deploymentError(
      `Cannot make ${version.buildId} current in ${version.deploymentName}`,
      err,
    );
  }
}

export interface PromoteResult {
  deployment: string;
  current: string;
  /** False when the build was current already. */
  changed: boolean;
  /** The build that was current before, if another was. */
  previous: string | null;
  /** Decisions still running on the previous build: they stay on it until they finish. */
  previous_running: number | null;
}

/**
 * `decisions deploy promote`: makes a build current, by default the newest registered one. Refuses
 * a build no worker polls: the server only checks that it polled once, and routing new decisions
 * to a build whose workers are gone (the usual rollback mistake) would leave them all waiting.
 */
export async function promoteBuild(
  client: Client,
  options: {
    taskQueue: string;
    deploymentName: string;
    buildId?: string;
    identity: string;
    liveWindowMs?: number;
  },
): Promise<PromoteResult> {
  const { taskQueue, deploymentName, identity } = options;
  const namespace = client.options.namespace;
  const state = await describeDeployment(client.workflowService, namespace, deploymentName);
  const known = state?.versions.map((v) => v.build_id) ?? [];
  if (!state || known.length === 0) throw noDeployment(deploymentName, taskQueue);
  const buildId = options.buildId ?? known.at(-1)!;
  if (!known.includes(buildId)) {
    throw new Error(`${deploymentName} has no build ${buildId}; its builds: ${known.join(', ')}`);
  }
  const result = { deployment: deploymentName, current: buildId };
  if (buildId === state.current) {
    return { ...result, changed: false, previous: null, previous_running: null };
  }
  const pollers = await pollersByBuild(
    client.workflowService,
    namespace,
    taskQueue,
    options.liveWindowMs,
  );
  if (!pollers.has(buildId)) {
    throw new Error(
      `No worker of ${buildId} polls ${taskQueue}: start its workers first, or new decisions would wait for them`,
    );
  }
  const version = { deploymentName, buildId };
  const previous = await setCurrentVersion(client.workflowService, namespace, version, identity);
  return {
    ...result,
    changed: true,
    previous,
    previous_running: previous
      ? await runningPinned(client, { deploymentName, buildId: previous })
      : null,
  };
}

/**
 * Whether a starting worker makes its own version current. With no current version every policy
 * does, or no decision would start anywhere. Then `always` does (one worker in development);
 * `manual` leaves it to the operator (canary, ramp); `auto` does for a version that has never
 * been current or ramping, so that an old worker restarting while it drains, or a new one after a
 * rollback, does not take new decisions back; and, whatever its version's past, when no worker of
 * the current build has polled within the live window (`currentLive` false) and the current
 * build's version is older than its own (`takesOverFrom`): new decisions would otherwise wait for
 * workers that are gone, and a takeover never moves them back to an older build.
 */
export function shouldPromote(
  policy: PromotionPolicy,
  state: DeploymentState | null,
  buildId: string,
  currentLive = true,
): boolean {
  // Nothing current: the first build of a new deployment takes it. A manual build takes it only
  // when it is the deployment's only build: another one listed is about to be current, or was.
  if (!state?.current) {
    return policy !== 'manual' || !state || state.versions.every((v) => v.build_id === buildId);
  }
  if (state.current === buildId || policy === 'manual') return false;
  if (policy === 'always') return true;
  if (!currentLive && takesOverFrom(state, buildId)) return true;
  return state.versions.find((v) => v.build_id === buildId)?.status === 'inactive';
}

/**
 * Whether a build may take new decisions over from the current build when that one's workers are
 * gone: only when its version was created after the current one's. Workers of an older build
 * still running (a rollout's draining build, old pods that come up first on a cold start) would
 * otherwise take the deployment back for good whenever the current build's polls pause: once
 * they are current, the newer build is `draining` and auto never promotes it again.
 */
export function takesOverFrom(state: DeploymentState, buildId: string): boolean {
  const created = (build: string | null) =>
    state.versions.find((v) => v.build_id === build)?.created_at ?? null;
  const mine = created(buildId);
  const current = created(state.current);
  return state.current !== buildId && mine !== null && current !== null && current < mine;
}

/**
 * Whether no worker of the current build has polled within the live window while one of
 * `buildId` has: the liveness half of a takeover, for a starting worker and a running one alike.
 */
async function currentGone(
  service: WorkflowService,
  options: { namespace: string; taskQueue: string; liveWindowMs?: number | undefined },
  state: DeploymentState | null,
  buildId: string,
): Promise<boolean> {
  if (!state?.current || state.current === buildId) return false;
  const { namespace, taskQueue, liveWindowMs } = options;
  const live = await pollersByBuild(service, namespace, taskQueue, liveWindowMs);
  return !live.has(state.current) && live.has(buildId);
}

/** Who changed the routing, as the deployment records it (its `lastModifierIdentity`). */
const WORKER_PROMOTION_IDENTITY = 'decision-worker (WORKER_PROMOTION)';

/**
 * Run once the worker polls: waits until the server has registered this version on both task
 * queue types (workflow and activity; promoting earlier fails the server's missing-task-queue
 * check), then applies the promotion policy. Workers of one build starting together all use
 * one identity, so the server takes a second promotion of the same version as no change.
 */
export async function applyPromotionPolicy(
  service: WorkflowService,
  options: {
    namespace: string;
    taskQueue: string;
    version: WorkerVersion;
    policy: PromotionPolicy;
    timeoutMs?: number;
    liveWindowMs?: number;
  },
): Promise<{ promoted: boolean; current: string | null }> {
  const { namespace, taskQueue, version, policy } = options;
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  await until(deadline, `the server to register ${version.buildId}`, async () => {
    const { workerDeploymentVersionInfo: info } = await service.describeWorkerDeploymentVersion({
      namespace,
      deploymentVersion: version,
    });
    const types = new Set(
      (info?.taskQueueInfos ?? []).filter((q) => q.name === taskQueue).map((q) => q.type),
    );
    return types.has(TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW) &&
      types.has(TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
      ? true
      : undefined;
  });
  const state = await describeDeployment(service, namespace, version.deploymentName);
  // One look is enough here, unlike the running watch's two (see takeOverWatch): only a newer
  // build takes over, and a worker starting is one event, not a check every 30 s for a
  // worker's lifetime; waiting a second window would keep decisions that wait waiting longer.
  const currentLive =
    policy !== 'auto' || !(await currentGone(service, options, state, version.buildId));
  if (!shouldPromote(policy, state, version.buildId, currentLive)) {
    return { promoted: false, current: state?.current ?? null };
  }
  await until(deadline, `${version.buildId} to become current`, () =>
    setCurrentVersion(service, namespace, version, WORKER_PROMOTION_IDENTITY),
  );
  return { promoted: true, current: version.buildId };
}

/**
 * For a running `auto` worker whose build is not current: a check, to call every few seconds,
 * that makes its build current when no worker of the current build has polled within the live
 * window on two checks at least a window apart, and the current build is older than its own
 * (`takesOverFrom`). A worker started while the last poll of the current build's stopped workers
 * was still recent so takes over once they are gone. One check is not enough: Temporal's
 * matching service forgets every poller when it restarts, and a crashlooping or restarting
 * build misses polls, while its workers are back within a long poll (60 s). The check returns the
 * build that was current when it took over, else null.
 */
export function takeOverWatch(
  service: WorkflowService,
  options: { namespace: string; taskQueue: string; version: WorkerVersion; liveWindowMs?: number },
  now: () => number = Date.now,
): () => Promise<{ previous: string } | null> {
  const { version } = options;
  const windowMs = options.liveWindowMs ?? LIVE_WINDOW_MS;
  /** The current build first seen gone, and when, since it was last seen otherwise. */
  let gone: { build: string; at: number } | null = null;
  return async () => {
    const state = await describeDeployment(service, options.namespace, version.deploymentName);
    const at = now();
    if (
      !state?.current ||
      !takesOverFrom(state, version.buildId) ||
      !(await currentGone(service, options, state, version.buildId))
    ) {
      gone = null;
      return null;
    }
    if (gone?.build !== state.current) {
      gone = { build: state.current, at };
      return null;
    }
    if (at - gone.at < windowMs) return null;
    await setCurrentVersion(service, options.namespace, version, WORKER_PROMOTION_IDENTITY);
    gone = null;
    return { previous: state.current };
  };
}

/**
 * Calls `check` until it returns a value, by `deadline`; a retryable server error counts as
 * "not yet", any other ends the wait.
 */
function until<T>(deadline: number, what: string, check: () => Promise<T | undefined>): Promise<T> {
  return waitFor(what, check, deadline - Date.now(), {
    intervalMs: 250,
    retryable: (err) => {
      const code = grpcCode(err instanceof Error && err.cause ? err.cause : err);
      return code !== null && RETRYABLE.has(code);
    },
  });
}

const noDeployment = (name: string, taskQueue: string) =>
  new Error(
    `No worker of deployment ${name} has polled yet (task queue ${taskQueue}); start one, or set WORKER_DEPLOYMENT_NAME and TEMPORAL_TASK_QUEUE as the workers have them`,
  );

/** The gRPC status code of a server error (a plain number: the SDK's enum is grpc-js's). */
function grpcCode(err: unknown): number | null {
  return isGrpcServiceError(err) ? Number(err.code) : null;
}

function deploymentError(what: string, err: unknown): Error {
  const details = isGrpcServiceError(err) ? err.details : (err as Error).message;
  return new Error(`${what}: ${details}`, { cause: err });
}
