import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { Redis } from 'ioredis';
import { StartupError } from '../src/process/startup';
import { waitFor } from '../src/process/wait';
import {
  lastLines,
  startChildService,
  stopChild,
  type ChildService,
} from './process/child-service';
import { freePort } from './process/ports';
import { redisAnswers } from './redis-dev';

/** How many hash slots a Redis Cluster has; every one must be served for the cluster to be ok. */
export const CLUSTER_SLOTS = 16384;

export interface RedisClusterOptions {
  /** At least 3, as `redis-cli --cluster create` requires. */
  masters?: number;
  replicasPerMaster?: number;
  /**
   * How long a node may be unreachable before it counts as failed (`cluster-node-timeout`): a
   * killed master's replica takes over about one to three times this later.
   */
  nodeTimeoutMs?: number;
  /** Where the cluster's temporary folder is made; the system's temporary folder by default. */
  parentDir?: string;
  /** How long starting and joining the nodes may take. */
  timeoutMs?: number;
  log?: (line: string) => void;
}

/** A node as CLUSTER NODES describes it. */
export interface ClusterNodeView {
  id: string;
  /** host:port, as clients address it. */
  address: string;
  role: 'master' | 'replica';
  /** The master's id, for a replica. */
  masterId: string | null;
  /** Flagged failed (`fail`) or suspected (`fail?`) by the node that answered. */
  failing: boolean;
  /** How many slots it serves (a master). */
  slots: number;
}

export interface LocalRedisCluster {
  /** Every node started, masters and replicas, as host:port. */
  readonly nodes: string[];
  /** The nodes as REDIS_CLUSTER_NODES takes them (comma-separated host:port). */
  readonly nodesSetting: string;
  /** The folder of the nodes' cluster config files, removed by `stop()`. */
  readonly dir: string;
  /** The masters that serve slots now, as the live nodes agree. */
  masters(): Promise<string[]>;
  /** The hash slot of a key, as the cluster computes it (CLUSTER KEYSLOT). */
  slotOf(key: string): Promise<number>;
  /** The master that serves the key's slot now. */
  masterFor(key: string): Promise<string>;
  /** The keys matching `pattern` on each master (SCAN), by master. */
  keysByMaster(pattern: string): Promise<Map<string, string[]>>;
  /**
   * Kills a master as a crash would (SIGKILL) and waits until one of its replicas has taken its
   * slots over: that replica's ROLE is master, every live node says cluster_state:ok with all
   * slots assigned, and none sends the slots to the dead node. Resolves with the replica and how
   * long the takeover took.
   */
  killMaster(node: string): Promise<{ promoted: string; failoverMs: number }>;
  /** The node's last lines of output (its log). */
  output(node: string): string[];
  /** Stops every node and removes `dir`; safe to call more than once. */
  stop(): Promise<void>;
}

interface NodeProcess {
  address: string;
  port: number;
  service: ChildService;
  admin: Redis;
  tail: string;
  alive: boolean;
}

/** The fields of CLUSTER INFO. */
function parseInfo(text: string): Map<string, string> {
  return new Map(
    text
      .split(/\r?\n/)
      .map((line) => line.trim().split(':') as [string, string?])
      .filter((pair): pair is [string, string] => pair[1] !== undefined),
  );
}

/** CLUSTER NODES, one view per line. */
export function parseClusterNodes(text: string): ClusterNodeView[] {
  return text
    .split(/\r?\n/)
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [id = '', addr = '', flags = '', master = '-', , , , , ...slotRanges] = line
        .trim()
        .split(' ');
      const flagSet = new Set(flags.split(','));
      const slots = slotRanges
        .filter((range) => !range.startsWith('['))
        .reduce((sum, range) => {
          const [from, to = from] = range.split('-').map(Number) as [number, number?];
          return sum + (to - from + 1);
        }, 0);
      return {
        id,
        address: addr.split('@')[0]!.split(',')[0]!,
        role: flagSet.has('master') ? 'master' : 'replica',
        masterId: master === '-' ? null : master,
        failing: flagSet.has('fail') || flagSet.has('fail?'),
        slots,
      };
    });
}

function adminClient(port: number): Redis {
  const redis = new Redis({
    host: '127.0.0.1',
    port,
    connectTimeout: 1000,
    commandTimeout: 2000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => 200,
  });
  redis.on('error', () => undefined);
  return redis;
}

/** Runs `redis-cli` with `args` and resolves with its output, or fails with what it said. */
function redisCli(args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-cli', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        err.code === 'ENOENT'
          ? new StartupError('redis-cli is not on PATH: it joins the Redis Cluster nodes', {
              hint: 'Install Redis (Debian/Ubuntu: apt-get install redis-server or redis-tools; macOS: brew install redis).',
            })
          : err,
      );
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const text = stripVTControlCharacters(output);
      if (code === 0) resolve(text);
      else {
        reject(
          new StartupError(
            `redis-cli ${args.slice(0, 2).join(' ')} failed (${signal ?? `code ${code}`})`,
            { lastLines: lastLines(text) },
          ),
        );
      }
    });
  });
}

/**
 * Starts a Redis Cluster on this machine: `masters` masters with `replicasPerMaster` replicas
 * each, every node a `redis-server` in cluster mode on free ports, without persistence, its
 * cluster config in a temporary folder; joined by `redis-cli --cluster create`. Resolves once
 * every node says cluster_state:ok with all 16384 slots assigned, every node knows every other
 * in its role, and every replica's link to its master is up (a replica that has not synced
 * cannot take over). A start that fails stops what it started.
 */
export async function startRedisCluster(
  options: RedisClusterOptions = {},
): Promise<LocalRedisCluster> {
  const masterCount = options.masters ?? 3;
  const replicasPerMaster = options.replicasPerMaster ?? 1;
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 1000;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const log = options.log ?? (() => undefined);
  if (masterCount < 3) throw new Error('A Redis Cluster needs at least 3 masters');
  const total = masterCount * (1 + replicasPerMaster);
  const dir = mkdtempSync(join(options.parentDir ?? tmpdir(), 'redis-cluster-'));
  const started = Date.now();

  const running: NodeProcess[] = [];
  let stopped = false;
  // The nodes are killed as this process exits unstopped (startChildService's detached
  // children); their folder goes with them.
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  process.once('exit', removeDir);
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.off('exit', removeDir);
    await Promise.all(
      running.map(async (node) => {
        node.admin.disconnect();
        node.alive = false;
        await stopChild(node.service.process, 5000);
      }),
    );
    removeDir();
  };

  try {
    // Two ports a node: clients', and the cluster bus's (given, since port + 10000, Redis's
    // default, may be taken or out of range).
    const taken = new Set<number>();
    const pickPort = async () => {
      for (;;) {
        const port = await freePort();
        if (!taken.has(port)) {
          taken.add(port);
          return port;
        }
      }
    };
    const ports: { port: number; busPort: number }[] = [];
    for (let i = 0; i < total; i++)
      ports.push({ port: await pickPort(), busPort: await pickPort() });

    const startNode = async ({ port, busPort }: { port: number; busPort: number }) => {
      const node = { address: `127.0.0.1:${port}`, port, tail: '', alive: true } as NodeProcess;
      const service = await startChildService({
        name: `redis-server (cluster node) on port ${port}`,
        command: 'redis-server',
        args: [
          '--port',
          String(port),
          '--cluster-port',
          String(busPort),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          String(nodeTimeoutMs),
          '--dir',
          dir,
          '--appendonly',
          'no',
          '--save',
          '',
          // Replicas sync at once rather than after the default 5 s wait for more of them.
          '--repl-diskless-sync-delay',
          '0',
        ],
        answers: () => redisAnswers(`redis://127.0.0.1:${port}`),
        timeoutMs: 10_000,
        pollMs: 50,
        detached: true,
        output: (text) => (node.tail = (node.tail + text).slice(-8000)),
        hint: `A port in use (${port} or ${busPort}): start again, free ports are picked anew.`,
        onSpawnError: (err) =>
          err.code === 'ENOENT'
            ? new StartupError('redis-server is not on PATH: the Redis Cluster runs six of them', {
                hint: 'Install Redis 7 or newer (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis).',
              })
            : err,
      });
      node.service = service;
      node.admin = adminClient(port);
      running.push(node);
      return node;
    };
    const results = await Promise.allSettled(ports.map(startNode));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;

    const addresses = running.map((n) => n.address);
    await redisCli(
      [
        '--cluster',
        'create',
        ...ports.map(({ port }) => `127.0.0.1:${port}`),
        '--cluster-replicas',
        String(replicasPerMaster),
        '--cluster-yes',
      ],
      timeoutMs,
    );

    await waitFor(
      `the Redis Cluster (${addresses.join(', ')}) to be ok on every node`,
      async () => {
        for (const node of running) {
          const problem = await nodeProblem(node, {
            total,
            masters: masterCount,
            replicas: masterCount * replicasPerMaster,
          });
          if (problem) throw new Error(`${node.address}: ${problem}`);
        }
        return true;
      },
      Math.max(1000, timeoutMs - (Date.now() - started)),
      { intervalMs: 100 },
    ).catch((err: Error) => {
      throw new StartupError(err.message, { cause: err });
    });
    log(`Redis Cluster ok in ${Date.now() - started} ms: ${addresses.join(',')}`);
    return clusterHandle({ running, dir, stop, addresses, nodeTimeoutMs });
  } catch (err) {
    await stop();
    throw err;
  }
}

/** What keeps a node from counting as ready, or null when it is. */
async function nodeProblem(
  node: NodeProcess,
  expected: { total: number; masters: number; replicas: number },
): Promise<string | null> {
  const info = parseInfo(String(await node.admin.call('CLUSTER', 'INFO')));
  if (info.get('cluster_state') !== 'ok') return `cluster_state:${info.get('cluster_state')}`;
  if (info.get('cluster_slots_assigned') !== String(CLUSTER_SLOTS)) {
    return `${info.get('cluster_slots_assigned')} slots assigned`;
  }
  const views = parseClusterNodes(String(await node.admin.call('CLUSTER', 'NODES')));
  if (views.length !== expected.total) return `knows ${views.length} of ${expected.total} nodes`;
  const masters = views.filter((v) => v.role === 'master' && v.slots > 0).length;
  const replicas = views.filter((v) => v.role === 'replica' && v.masterId).length;
  if (masters !== expected.masters || replicas !== expected.replicas) {
    return `sees ${masters} masters with slots and ${replicas} replicas`;
  }
  const replication = String(await node.admin.info('replication'));
  if (/role:slave/.test(replication) && !/master_link_status:up/.test(replication)) {
    return 'its link to its master is not up';
  }
  return null;
}

function clusterHandle(parts: {
  running: NodeProcess[];
  dir: string;
  stop: () => Promise<void>;
  addresses: string[];
  nodeTimeoutMs: number;
}): LocalRedisCluster {
  const { running, dir, stop, addresses, nodeTimeoutMs } = parts;
  const live = () => running.filter((n) => n.alive);
  const byAddress = (address: string) => {
    const node = running.find((n) => n.address === address);
    if (!node) throw new Error(`${address} is not a node of this cluster`);
    return node;
  };
  /** A command on the first live node that answers. */
  const ask = async (...args: (string | number)[]): Promise<unknown> => {
    let last: unknown = new Error('No node of the cluster is alive');
    for (const node of live()) {
      try {
        return await node.admin.call(String(args[0]), ...args.slice(1));
      } catch (err) {
        last = err;
      }
    }
    throw last;
  };
  type SlotRange = [number, number, [string, number, ...unknown[]], ...unknown[]];
  const slotMap = async () =>
    ((await ask('CLUSTER', 'SLOTS')) as SlotRange[]).map(([from, to, [host, port]]) => ({
      from,
      to,
      master: `${host}:${port}`,
    }));
  const slotOf = async (key: string) => Number(await ask('CLUSTER', 'KEYSLOT', key));
  const masters = async () => [...new Set((await slotMap()).map((r) => r.master))].sort();

  return {
    nodes: addresses,
    nodesSetting: addresses.join(','),
    dir,
    masters,
    slotOf,
    async masterFor(key) {
      const slot = await slotOf(key);
      const range = (await slotMap()).find((r) => slot >= r.from && slot <= r.to);
      if (!range) throw new Error(`No master serves slot ${slot} (key ${key})`);
      return range.master;
    },
    async keysByMaster(pattern) {
      const found = new Map<string, string[]>();
      for (const address of await masters()) {
        const node = byAddress(address);
        const keys: string[] = [];
        let cursor = '0';
        do {
          const [next, batch] = await node.admin.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
          keys.push(...batch);
          cursor = next;
        } while (cursor !== '0');
        found.set(address, keys);
      }
      return found;
    },
    async killMaster(address) {
      const node = byAddress(address);
      if (!node.alive) throw new Error(`${address} is not running`);
      const [role] = (await node.admin.call('ROLE')) as [string];
      if (role !== 'master') throw new Error(`${address} is a ${role}, not a master`);
      const views = parseClusterNodes(String(await node.admin.call('CLUSTER', 'NODES')));
      const self = views.find((v) => v.address === address);
      const replicas = views
        .filter((v) => v.role === 'replica' && v.masterId === self?.id)
        .map((v) => byAddress(v.address));
      if (replicas.length === 0) throw new Error(`${address} has no replica to take over`);

      node.alive = false;
      node.admin.disconnect();
      const killed = Date.now();
      const gone = new Promise<void>((resolve) =>
        node.service.process.once('exit', () => resolve()),
      );
      node.service.process.kill('SIGKILL');
      await gone;

      const promoted = await waitFor(
        `a replica of ${address} (${replicas.map((r) => r.address).join(', ')}) to take over`,
        async () => {
          let promoted: string | undefined;
          for (const replica of replicas) {
            const [replicaRole] = (await replica.admin.call('ROLE')) as [string];
            if (replicaRole === 'master') promoted = replica.address;
          }
          if (!promoted) return undefined;
          for (const other of live()) {
            const info = parseInfo(String(await other.admin.call('CLUSTER', 'INFO')));
            if (info.get('cluster_state') !== 'ok') return undefined;
            if (info.get('cluster_slots_assigned') !== String(CLUSTER_SLOTS)) return undefined;
            const served = ((await other.admin.call('CLUSTER', 'SLOTS')) as SlotRange[]).map(
              ([, , [host, port]]) => `${host}:${port}`,
            );
            if (served.includes(address)) return undefined;
          }
          return promoted;
        },
        // Detection takes the node timeout and more, an election up to a few seconds after.
        20 * nodeTimeoutMs + 10_000,
        { intervalMs: 50 },
      );
      return { promoted, failoverMs: Date.now() - killed };
    },
    output: (address) => lastLines(byAddress(address).tail, 40),
    stop,
  };
}
