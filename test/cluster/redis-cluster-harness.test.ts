import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLUSTER_SLOTS,
  parseClusterNodes,
  startRedisCluster,
  type LocalRedisCluster,
} from '../../tools/redis-cluster';
import { StartupError } from '../../src/process/startup';
import { portAccepts } from '../../tools/process/ports';
import { waitFor } from '../support/wait';

const log = (line: string) => process.stderr.write(`[redis cluster harness] ${line}\n`);

/** A plain connection to one node, asked one command. */
async function askNode(address: string, ...args: string[]): Promise<unknown> {
  const [host, port] = address.split(':') as [string, string];
  const redis = new Redis({ host, port: Number(port), maxRetriesPerRequest: 0 });
  try {
    return await redis.call(args[0]!, ...args.slice(1));
  } finally {
    redis.disconnect();
  }
}

const clusterNodes = async (address: string) =>
  parseClusterNodes(String(await askNode(address, 'CLUSTER', 'NODES')));

/** Keys of `count` different slots, found by asking the cluster for each one's slot. */
async function keysInDistinctMasters(cluster: LocalRedisCluster, count: number) {
  const byMaster = new Map<string, string>();
  for (let i = 0; byMaster.size < count && i < 1000; i++) {
    const key = `harness:key:${i}`;
    const master = await cluster.masterFor(key);
    if (!byMaster.has(master)) byMaster.set(master, key);
  }
  return byMaster;
}

describe('the local Redis Cluster (tools/redis-cluster.ts)', () => {
  let cluster: LocalRedisCluster;
  let client: Cluster;

  beforeAll(async () => {
    const started = Date.now();
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1, log });
    log(`started in ${Date.now() - started} ms`);
    client = new Cluster(
      cluster.nodes.map((n) => {
        const [host, port] = n.split(':') as [string, string];
        return { host, port: Number(port) };
      }),
      { redisOptions: { maxRetriesPerRequest: 1 } },
    );
  }, 60_000);

  afterAll(async () => {
    client?.disconnect();
    await cluster?.stop();
  });

  it('runs three masters, each with one replica, serving all 16384 slots', async () => {
    expect(cluster.nodes).toHaveLength(6);
    expect(cluster.nodesSetting.split(',')).toEqual(cluster.nodes);
    for (const node of cluster.nodes) {
      const info = String(await askNode(node, 'CLUSTER', 'INFO'));
      expect(info).toContain('cluster_state:ok');
      expect(info).toContain(`cluster_slots_assigned:${CLUSTER_SLOTS}`);
      expect(info).toContain('cluster_known_nodes:6');
    }
    const views = await clusterNodes(cluster.nodes[0]!);
    const masters = views.filter((v) => v.role === 'master');
    const replicas = views.filter((v) => v.role === 'replica');
    expect(masters).toHaveLength(3);
    expect(masters.reduce((sum, m) => sum + m.slots, 0)).toBe(CLUSTER_SLOTS);
    expect(replicas).toHaveLength(3);
    // One replica for each master.
    expect(new Set(replicas.map((r) => r.masterId))).toEqual(new Set(masters.map((m) => m.id)));
    expect(await cluster.masters()).toEqual(masters.map((m) => m.address).sort());
  });

  it('puts keys of different slots on different masters, as the nodes themselves hold them', async () => {
    const byMaster = await keysInDistinctMasters(cluster, 3);
    expect(byMaster.size).toBe(3);
    for (const [master, key] of byMaster) {
      await client.set(key, master);
      // The master named holds the key itself; the other masters do not.
      expect(await askNode(master, 'GET', key)).toBe(master);
      for (const other of byMaster.keys()) {
        if (other === master) continue;
        await expect(askNode(other, 'GET', key)).rejects.toThrow(/MOVED/);
      }
    }
    // A hash tag puts keys that differ outside it in the one slot.
    const slots = await Promise.all(
      ['{d-1}:record', '{d-1}:events', '{d-1}:result'].map((k) => cluster.slotOf(k)),
    );
    expect(new Set(slots).size).toBe(1);
  });

  it("promotes a killed master's replica, and its slots' keys are readable and writable again", async () => {
    const key = 'harness:failover';
    await client.set(key, 'before');
    const master = await cluster.masterFor(key);
    const self = (await clusterNodes(master)).find((v) => v.address === master)!;
    const replica = (await clusterNodes(master)).find(
      (v) => v.role === 'replica' && v.masterId === self.id,
    )!;
    expect(replica).toBeDefined();
    // The replica has the write before the master goes: WAIT counts the replicas that acked it.
    expect(await askNode(master, 'WAIT', '1', '2000')).toBe(1);

    const { promoted, failoverMs } = await cluster.killMaster(master);
    log(`${master} killed; ${promoted} took over in ${failoverMs} ms`);
    expect(await portAccepts('127.0.0.1', Number(master.split(':')[1]), 500)).toBe(false);
    expect(promoted).toBe(replica.address);
    expect(((await askNode(promoted, 'ROLE')) as string[])[0]).toBe('master');
    expect(await cluster.masterFor(key)).toBe(promoted);
    expect(await cluster.masters()).not.toContain(master);

    // The cluster client follows the new topology (a MOVED or a refresh) on its own.
    const read = await waitFor(
      'the key through the cluster client',
      async () => (await client.get(key)) ?? undefined,
    );
    expect(read).toBe('before');
    await client.set(key, 'after');
    expect(await askNode(promoted, 'GET', key)).toBe('after');
  });

  it('stops every node and removes its folder', async () => {
    const ports = cluster.nodes.map((n) => Number(n.split(':')[1]));
    const dir = cluster.dir;
    client.disconnect();
    await cluster.stop();
    for (const port of ports) expect(await portAccepts('127.0.0.1', port, 500)).toBe(false);
    expect(existsSync(dir)).toBe(false);
    await cluster.stop();
  });
});

/**
 * The cluster folders in the temporary folder, and the processes working in one: a node runs in
 * its cluster's folder (`--dir`), and rewrites its command line, so that is how to tell it.
 */
function clusterLeftovers() {
  const inClusterDir = (pid: string) => {
    try {
      return readlinkSync(`/proc/${pid}/cwd`).startsWith(join(tmpdir(), 'redis-cluster-'));
    } catch {
      return false;
    }
  };
  return {
    dirs: readdirSync(tmpdir()).filter((name) => name.startsWith('redis-cluster-')),
    processes: readdirSync('/proc').filter((pid) => /^\d+$/.test(pid) && inClusterDir(pid)),
  };
}

/** Runs `fn` with PATH holding only the named Redis programs (links to the installed ones). */
async function withOnlyOnPath<T>(programs: string[], fn: () => Promise<T>): Promise<T> {
  const bin = mkdtempSync(join(tmpdir(), 'path-'));
  for (const program of programs) {
    symlinkSync(execFileSync('which', [program], { encoding: 'utf8' }).trim(), join(bin, program));
  }
  const path = process.env.PATH;
  process.env.PATH = bin;
  try {
    return await fn();
  } finally {
    process.env.PATH = path;
    rmSync(bin, { recursive: true, force: true });
  }
}

describe('a Redis Cluster that cannot start', () => {
  it('says redis-server is not on PATH', async () => {
    const before = clusterLeftovers();
    const failure = await withOnlyOnPath([], () => startRedisCluster()).catch(
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(StartupError);
    expect((failure as StartupError).message).toMatch(/redis-server is not on PATH/);
    expect((failure as StartupError).hint).toMatch(/Install Redis/);
    expect(clusterLeftovers()).toEqual(before);
  });

  it('stops the six nodes it started when they cannot be joined (no redis-cli), and removes its folder', async () => {
    const before = clusterLeftovers();
    // Seen while the nodes run: the failure comes once all six answer.
    let seenRunning = 0;
    const watch = setInterval(() => {
      seenRunning = Math.max(seenRunning, clusterLeftovers().processes.length);
    }, 20);
    const failure = await withOnlyOnPath(['redis-server'], () => startRedisCluster())
      .catch((err: unknown) => err)
      .finally(() => clearInterval(watch));
    expect(failure).toBeInstanceOf(StartupError);
    expect((failure as StartupError).message).toMatch(/redis-cli is not on PATH/);
    expect(seenRunning).toBe(6);
    expect(clusterLeftovers()).toEqual(before);
  });
});
