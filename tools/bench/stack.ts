import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { DecisionRecord } from '../../src/domain/decision';
import { stopChild } from '../process/child-service';
import { createRedis } from '../../src/projection/redis-client';
import type { ClusterBinaries } from '../cluster/binaries';
import { DEFAULT_POSTGRES_URL } from '../cluster/config';
import {
  dropTemporalDatabases,
  freeTemporalPorts,
  postgresTarget,
  processLogs,
  startTemporalOnPostgres,
} from '../cluster/topology';
import { startDevServer, type DevServer } from '../temporal/dev-server';
import type { decisionWorkflow } from '../../src/workflows';
import { freePort } from '../process/ports';
import { waitFor } from '../../src/process/wait';
import { WORKER_NODE_FLAGS, WORKER_PROCESS_ENV } from '../../src/main/worker-memory';
import { ensureLocalRedis } from '../redis-dev';

const root = resolve(__dirname, '../..');
const node = process.execPath;

export interface Role {
  child: ChildProcess;
  pid: number;
  output: () => string;
  stop: () => Promise<void>;
}

/**
 * Starts `node dist/main/<name>.js` (or another `entry` with its arguments) and resolves once its
 * log says `ready`.
 */
export async function startRole(
  name: string,
  env: NodeJS.ProcessEnv,
  ready: string,
  entry: string[] = [`dist/main/${name}.js`],
): Promise<Role> {
  // BENCH_PROFILE_DIR=<dir> writes each role's CPU profile there when it stops.
  const profile = process.env.BENCH_PROFILE_DIR
    ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE_DIR]
    : [];
  const child = spawn(node, [...profile, ...entry], {
    cwd: root,
    env: { ...process.env, NODE_ENV: 'production', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  // The tail is cut in steps, not at each chunk: the API logs every request of a load, and this
  // process, which keeps its output, is the load generator too.
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 40_000) output = output.slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const stop = () => stopChild(child, 15_000);
  try {
    const state = await waitFor(
      `the ${name} to log "${ready}"`,
      () => (child.exitCode !== null ? 'exited' : output.includes(ready) ? 'ready' : undefined),
      90_000,
    );
    if (state === 'exited') throw new Error(`the ${name} exited before it was ready:\n${output}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, pid: child.pid!, output: () => output, stop };
}

export const BENCH_KEY = 'bench-key-0123456789abcdef';

/**
 * The bench's model server (tools/bench/model-server.ts) on a free port, given its arguments
 * after the port; with the settings that point a worker's openai provider at it.
 */
export async function startModelServer(args: (string | number)[]) {
  const port = await freePort();
  const role = await startRole('model server', {}, 'Model server listening', [
    '--import',
    'tsx',
    'tools/bench/model-server.ts',
    String(port),
    ...args.map(String),
  ]);
  const url = `http://127.0.0.1:${port}`;
  const env: NodeJS.ProcessEnv = {
    LLM_PROVIDER: 'openai',
    LLM_MODEL: 'bench-model-server',
    LLM_BASE_URL: `${url}/v1`,
  };
  return { role, url, env };
}

/** Deletes every key under `prefix`: what a run left in a Redis it shares. */
export async function removeKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = createRedis(redisUrl, 10_000);
  try {
    for await (const keys of redis.scanStream({ match: `${prefix}*`, count: 1000 })) {
      if ((keys as string[]).length > 0) await redis.unlink(...(keys as string[]));
    }
  } finally {
    redis.disconnect();
  }
}

export interface StackOptions {
  bundle: string;
  redisUrl: string;
  /**
   * Where Temporal keeps history: the dev server in memory or in a SQLite file, or the
   * production topology's server on PostgreSQL (npm run cluster's, on databases of the bench's
   * own, dropped at the end).
   */
  store: 'memory' | 'sqlite' | 'postgres';
  binaries: ClusterBinaries;
  /** Settings of the worker and the API beyond the bench's own (a model server, say). */
  env?: NodeJS.ProcessEnv;
  /**
   * A Redis Cluster's nodes (host:port), which the worker and the API use instead of `redisUrl`
   * (REDIS_CLUSTER_NODES); the bench stops the cluster, keys and all.
   */
  redisCluster?: readonly string[];
}

/** The Temporal server the stack runs on, with what stops it. */
async function startTemporal(options: StackOptions, dir: string) {
  if (options.store !== 'postgres') {
    const server: DevServer = await startDevServer({
      cliPath: options.binaries.temporalCli,
      address: `127.0.0.1:${await freePort()}`,
      namespace: 'default',
      uiPort: null,
      dbFile: options.store === 'sqlite' ? join(dir, 'temporal.sqlite') : null,
    });
    return {
      address: server.address,
      pid: server.process.pid!,
      postgres: null,
      stop: () => server.stop(),
    };
  }
  const postgres = postgresTarget(
    process.env.POSTGRES_URL ?? DEFAULT_POSTGRES_URL,
    `bench_temporal_${process.pid}`,
    `bench_temporal_visibility_${process.pid}`,
  );
  const logs = processLogs(join(dir, 'logs'));
  const server = await startTemporalOnPostgres({
    binaries: options.binaries,
    postgres,
    temporalPorts: await freeTemporalPorts(),
    temporalMetricsPort: null,
    namespace: 'default',
    retentionHours: 24,
    logTo: logs.to,
    log: () => undefined,
  });
  return {
    address: server.address,
    pid: server.pid!,
    postgres,
    stop: async () => {
      await server.stop();
      await logs.close();
      dropTemporalDatabases(options.binaries, postgres);
    },
  };
}

/**
 * The system as a deployment runs it, on this machine: a Temporal dev server, one worker and one
 * API process (built JavaScript), and the Redis the bench was given.
 */
export async function startBenchStack(options: StackOptions) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-'));
  const temporal = await startTemporal(options, dir);
  const address = temporal.address;
  const prefix = `bench:${process.pid}:${options.store}:`;
  const env = (taskQueue: string): NodeJS.ProcessEnv => ({
    TEMPORAL_ADDRESS: address,
    TEMPORAL_TASK_QUEUE: taskQueue,
    REDIS_URL: options.redisUrl,
    ...(options.redisCluster ? { REDIS_CLUSTER_NODES: options.redisCluster.join(',') } : {}),
    REDIS_KEY_PREFIX: prefix,
    LLM_PROVIDER: 'offline',
    WORKFLOW_BUNDLE_PATH: options.bundle,
    WORKER_HTTP_PORT: 'off',
    WORKER_SDK_METRICS_ADDRESS: 'off',
    API_KEYS: `${BENCH_KEY}=decisions:read+decisions:write@bench`,
    // One key sends thousands of requests a second here; the limiter would refuse them.
    RATE_LIMIT_PER_MINUTE: '0',
    // What the bench writes to a shared Redis goes soon, and at its end (see stop).
    DECISION_TTL_SECONDS: '3600',
    LOG_LEVEL: 'info',
    ...options.env,
  });
  const roles: Role[] = [];
  /**
   * The worker; with a delay, the bench's own (tools/bench/worker.cjs), whose offline model takes
   * that long per call; `unpublished`, the bench's own whose model's output reaches no one.
   */
  const startWorker = async (
    model: number | 'unpublished' = 0,
    extra: NodeJS.ProcessEnv = {},
    taskQueue = 'bench',
  ): Promise<Role> => {
    const entry =
      model === 'unpublished'
        ? ['tools/bench/worker.cjs', '--unpublished']
        : model > 0
          ? ['tools/bench/worker.cjs', String(model)]
          : ['dist/main/worker.js'];
    // Started as Dockerfile.worker starts it: its V8 flags and its process environment.
    const role = await startRole(
      'worker',
      { ...WORKER_PROCESS_ENV, ...env(taskQueue), ...extra },
      'Worker polling',
      [...WORKER_NODE_FLAGS, ...entry],
    );
    roles.push(role);
    return role;
  };
  const startApi = async (taskQueue: string): Promise<{ role: Role; url: string }> => {
    const port = await freePort();
    const role = await startRole('api', { ...env(taskQueue), PORT: String(port) }, 'API listening');
    roles.push(role);
    return { role, url: `http://127.0.0.1:${port}` };
  };
  let worker = await startWorker();
  const api = await startApi('bench');
  const connection = await Connection.connect({ address });
  const client = new Client({ connection });
  // Each Redis server the stack's data lives on: every node of a cluster, replicas included.
  const servers = (options.redisCluster ?? []).map((node) => createRedis(`redis://${node}`));
  if (servers.length === 0) servers.push(createRedis(options.redisUrl));
  let asked = 0;

  return {
    store: options.store,
    /** The prefix of every Redis key the stack's roles write. */
    prefix,
    temporalPid: temporal.pid,
    get worker() {
      return worker;
    },
    api,
    client,
    startApi,
    /**
     * Replaces the worker with one whose offline model answers each call after `model` ms (or the
     * bench's `unpublished` one), with `extra` settings of its own.
     */
    async restartWorker(
      model: number | 'unpublished',
      extra: NodeJS.ProcessEnv = {},
    ): Promise<Role> {
      await worker.stop();
      worker = await startWorker(model, extra);
      return worker;
    },
    /**
     * Starts the floor's worker (tools/bench/floor-worker.cjs): the bare workflow in `bundle`, on
     * the decisions' worker options and settings, polling `taskQueue`.
     */
    async startFloorWorker(bundle: string, taskQueue: string): Promise<Role> {
      // Started as the decisions' worker is: the same Node flags and process environment.
      const role = await startRole(
        'floor worker',
        { ...WORKER_PROCESS_ENV, ...env(taskQueue), FLOOR_BUNDLE_PATH: bundle },
        'Floor worker polling',
        [...WORKER_NODE_FLAGS, 'tools/bench/floor-worker.cjs'],
      );
      roles.push(role);
      return role;
    },
    /** Starts one more worker, polling `taskQueue` (see restartWorker); the stack stops it. */
    addWorker(
      taskQueue: string,
      model: number | 'unpublished' = 0,
      extra: NodeJS.ProcessEnv = {},
    ): Promise<Role> {
      return startWorker(model, extra, taskQueue);
    },
    /** Asks a question over HTTP, as a client does; the decision's id. */
    async create(apiUrl = api.url): Promise<string> {
      const res = await fetch(`${apiUrl}/decisions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${BENCH_KEY}` },
        body: JSON.stringify({
          query: `Should we move billing to a managed Postgres? (bench ${++asked})`,
        }),
      });
      if (res.status !== 202) {
        throw new Error(`POST /decisions answered ${res.status}: ${await res.text()}`);
      }
      return ((await res.json()) as DecisionRecord).process_id;
    },
    /** Resolves when the decision's workflow has completed; fails when it did not. */
    async completion(id: string): Promise<void> {
      const record = await client.workflow.getHandle<typeof decisionWorkflow>(id).result();
      if (record.status !== 'completed') throw new Error(`decision ${id} ended ${record.status}`);
    },
    async history(id: string) {
      return (await client.workflow.getHandle(id).fetchHistory()).events ?? [];
    },
    /**
     * CPU time Redis has spent since it started (user + system, from INFO), in ms: on a cluster,
     * every node's together.
     */
    async redisCpuMs(): Promise<number> {
      const infos = await Promise.all(servers.map((redis) => redis.info('cpu')));
      return infos.reduce((sum, info) => {
        const field = (name: string) =>
          Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0);
        return sum + (field('used_cpu_user') + field('used_cpu_sys')) * 1000;
      }, 0);
    },
    /**
     * On PostgreSQL: the rows the server has written to its executions table (one per workflow
     * state change, each a transaction on one history shard), from PostgreSQL's statistics; null
     * on the dev server.
     */
    historyTransactions(): number | null {
      const pg = temporal.postgres;
      if (!pg) return null;
      const out = execFileSync(
        'psql',
        [
          ...['-h', pg.host, '-p', String(pg.port), '-U', pg.user, '-d', pg.database, '-tA'],
          ...[
            '-c',
            "SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables WHERE relname = 'executions'",
          ],
        ],
        { encoding: 'utf8', env: { ...process.env, PGPASSWORD: pg.password } },
      );
      return Number(out.trim());
    },
    async stop(): Promise<void> {
      await Promise.all(roles.map((role) => role.stop()));
      await connection.close().catch(() => undefined);
      for (const redis of servers) redis.disconnect();
      await temporal.stop();
      rmSync(dir, { recursive: true, force: true });
      if (!options.redisCluster) await removeKeys(options.redisUrl, prefix);
    },
  };
}

export type BenchStack = Awaited<ReturnType<typeof startBenchStack>>;

export interface ModelStackOptions {
  binaries: ClusterBinaries;
  bundle: string;
  /** The model server's arguments, as startModelServer takes them. */
  modelArgs: (string | number)[];
  /** Settings of the worker and the API beyond the bench's own. */
  env?: NodeJS.ProcessEnv;
  /** False: the first worker keeps the offline model (the model server waits for a later one). */
  workerOnModel?: boolean;
}

/**
 * What the parts that run the bench's model server start: a Redis of their own on a free port, the
 * model server, and a stack (dev server in memory) on both, its worker pointed at the model server.
 * What fails to start leaves nothing behind; `stop()` stops all of it, the stack first.
 */
export async function startModelStack(options: ModelStackOptions) {
  const redis = await ensureLocalRedis(`redis://127.0.0.1:${await freePort()}`, null);
  const stops: (() => Promise<void>)[] = [() => redis.stop()];
  const stop = async () => {
    for (const next of stops.splice(0).reverse()) await next();
  };
  try {
    const pid = redis.pid;
    if (pid === null) throw new Error('the bench expected a Redis of its own');
    const model = await startModelServer(options.modelArgs);
    stops.push(() => model.role.stop());
    const stack = await startBenchStack({
      binaries: options.binaries,
      bundle: options.bundle,
      redisUrl: redis.url,
      store: 'memory',
      env: { ...(options.workerOnModel === false ? {} : model.env), ...options.env },
    });
    stops.push(() => stack.stop());
    return { redis: { url: redis.url, pid }, model, stack, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
