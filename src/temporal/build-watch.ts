import type { Client } from '@temporalio/client';
import { TemporalCalls } from './deadlines';
import {
  DEV_BUILD_ID,
  LIVE_WINDOW_MS,
  decisionVersion,
  describeDeployment,
  pollersByBuild,
  type VersionStatus,
} from './versioning';

/** The deployment as the API last saw it: which build takes new decisions, which have workers. */
export interface BuildsSnapshot {
  deployment: string;
  taskQueue: string;
  current: string | null;
  /** Builds with a worker that polled within the live window. */
  live: Set<string>;
  versions: { build_id: string; status: VersionStatus }[];
}

/** A build that decisions wait for and no worker runs, and what to do about it. */
export interface Stranded {
  build_id: string;
  message: string;
}

/** What the status document says of a pending or running decision whose build has no worker. */
export interface Attention {
  reason: 'no_live_worker';
  build_id: string;
  message: string;
}

export interface BuildWatchOptions {
  taskQueue: string;
  deploymentName: string;
  /** WORKER_GONE_AFTER_SECONDS: a build whose last poll is older has no worker. */
  liveWindowMs?: number;
  /** How long one look at the deployment serves every request (a few seconds). */
  cacheMs?: number;
  /** The most one look may take; past it the answer is "cannot tell", which refuses nothing. */
  timeoutMs?: number;
}

/** The most decisions whose pinned build is remembered between two looks. */
const PINNED_CACHE_SIZE = 1000;

/** How a person starts a worker of a build, in words for a problem document. */
function howToRun(buildId: string): string {
  return buildId === DEV_BUILD_ID
    ? '`npm start`, or `npm run worker` with WORKER_BUILD_ID=dev'
    : `the release that built it, or \`npm run worker\` with WORKER_BUILD_ID=${buildId} from that release's code`;
}

/**
 * Watches which builds of the deployment have live workers, for the API: /ready, creates and
 * status documents. One look (the deployment and the task queue's pollers, within a deadline)
 * serves all requests for a few seconds; a look that fails or is late says "cannot tell", and
 * nothing is refused for it (Temporal being away is the health check's to report).
 */
export class BuildWatch {
  readonly liveWindowMs: number;
  private readonly cacheMs: number;
  private readonly temporal: TemporalCalls;
  private look: { at: number; snapshot: Promise<BuildsSnapshot | null> } | null = null;
  private readonly pinned = new Map<
    string,
    { at: number; build: Promise<string | null | undefined> }
  >();

  constructor(
    private readonly client: Client,
    private readonly options: BuildWatchOptions,
  ) {
    this.liveWindowMs = options.liveWindowMs ?? LIVE_WINDOW_MS;
    this.cacheMs = options.cacheMs ?? 5000;
    this.temporal = new TemporalCalls(client, { readMs: options.timeoutMs ?? 2000 });
  }

  /** The deployment and its live builds; null when unknown (no deployment, or no answer in time). */
  snapshot(): Promise<BuildsSnapshot | null> {
    const now = Date.now();
    if (this.look && now - this.look.at < this.cacheMs) return this.look.snapshot;
    const snapshot = this.within(async () => {
      const { client, options } = this;
      const namespace = client.options.namespace;
      const state = await describeDeployment(
        client.workflowService,
        namespace,
        options.deploymentName,
      );
      if (!state) return null;
      const pollers = await pollersByBuild(
        client.workflowService,
        namespace,
        options.taskQueue,
        this.liveWindowMs,
      );
      return {
        deployment: state.deployment,
        taskQueue: options.taskQueue,
        current: state.current,
        live: new Set(pollers.keys()),
        versions: state.versions.map((v) => ({ build_id: v.build_id, status: v.status })),
      };
    }).catch(() => null);
    this.look = { at: now, snapshot };
    return snapshot;
  }

  /** The current build when no worker of it is live (new decisions would wait), else null. */
  async currentStranded(): Promise<Stranded | null> {
    const snapshot = await this.snapshot();
    if (!snapshot?.current || snapshot.live.has(snapshot.current)) return null;
    const build = snapshot.current;
    const other = snapshot.versions.find((v) => snapshot.live.has(v.build_id))?.build_id;
    return {
      build_id: build,
      message:
        `No worker of build ${build}, the current build of deployment ${snapshot.deployment}, ` +
        `has polled task queue ${snapshot.taskQueue} in the last ${this.seconds()} s, so new ` +
        `decisions would wait. Start one (${howToRun(build)}), or make a build that has workers ` +
        `current: \`npm run decisions -- deploy promote --build-id ${other ?? '<build>'}\`` +
        (other ? ` (${other} has workers)` : ''),
    };
  }

  /** /ready's check: whether the current build has a live worker, and if not what to run. */
  async workersCheck(): Promise<{ ok: boolean; detail: string }> {
    const stranded = await this.currentStranded();
    if (stranded) return { ok: false, detail: stranded.message };
    const snapshot = await this.snapshot();
    if (!snapshot?.current) {
      return { ok: true, detail: 'not known: no current build, or Temporal did not tell in time' };
    }
    return { ok: true, detail: `build ${snapshot.current} (current) has workers` };
  }

  /**
   * What a pending or running decision waits for when no worker of its build is live: the build
   * it is pinned to, or, before its first step, the current one. Null when all is well or when
   * that cannot be told.
   */
  async attention(id: string): Promise<Attention | null> {
    const snapshot = await this.snapshot();
    if (!snapshot) return null;
    // Only a build without workers can strand a decision; a drained one has none left to strand.
    const dead = snapshot.versions.filter(
      (v) => v.status !== 'drained' && !snapshot.live.has(v.build_id),
    );
    if (dead.length === 0) return null;
    const pinned = await this.pinnedBuild(id);
    if (pinned === undefined) return null;
    const build = pinned ?? snapshot.current;
    if (!build || snapshot.live.has(build)) return null;
    const current = snapshot.current;
    const move =
      current && current !== build && snapshot.live.has(current)
        ? `, or move it to the current build ${current}: \`temporal workflow update-options ` +
          `--workflow-id ${id} --versioning-override-behavior auto_upgrade\` (after ` +
          `\`npm run decisions -- replay ${id}\` checks that its code replays the history)`
        : '';
    return {
      reason: 'no_live_worker',
      build_id: build,
      message:
        `No worker of build ${build}, ${pinned ? 'which this decision runs on' : "the current build, which this decision's next step runs on"}, has polled task queue ` +
        `${snapshot.taskQueue} in the last ${this.seconds()} s: it waits until one does. ` +
        `Start one (${howToRun(build)})${move}`,
    };
  }

  /**
   * The build a decision's next step needs (decisionVersion): its pinned override's or the one it
   * is pinned to; null when that is the current build (before its first step, unpinned, or moved
   * by an auto-upgrade override); undefined when unknown.
   */
  private pinnedBuild(id: string): Promise<string | null | undefined> {
    const now = Date.now();
    const known = this.pinned.get(id);
    if (known && now - known.at < this.cacheMs) return known.build;
    const build = this.within(async () => {
      const description = await this.client.workflow.getHandle(id).describe();
      const version = decisionVersion(description.raw.workflowExecutionInfo?.versioningInfo);
      return version?.buildId ?? null;
    }).catch(() => undefined);
    this.pinned.delete(id);
    this.pinned.set(id, { at: now, build });
    if (this.pinned.size > PINNED_CACHE_SIZE) {
      this.pinned.delete(this.pinned.keys().next().value!);
    }
    return build;
  }

  private seconds(): number {
    return Math.round(this.liveWindowMs / 1000);
  }

  /** Runs Temporal calls within the read deadline (TemporalCalls, as the API's other reads). */
  private within<T>(call: () => Promise<T>): Promise<T> {
    return this.temporal.read(call);
  }
}
