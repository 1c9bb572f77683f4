import { loadavg } from 'node:os';
import type { ClusterBinaries } from '../cluster/binaries';
import { freePort } from '../process/ports';
import { startRedisCluster } from '../redis-cluster';
import { ensureLocalRedis } from '../redis-dev';
import { round, thisMachine, type Machine } from './measure';
import { startBenchStack, type BenchStack } from './stack';
import { throughput, type ThroughputFigures } from './temporal-runs';

/** One closed loop of decisions on one kind of Redis. */
export interface RedisScaleRound extends ThroughputFigures {
  redis: 'single' | 'cluster';
  /** The machine's 1-minute load average before the round: what else ran beside it. */
  load_average: number;
}

export interface RedisScaleFigures {
  date: string;
  machine: Machine;
  /** The cluster's shape: masters, each with this many replicas. */
  cluster: { masters: number; replicas_per_master: number };
  rounds: RedisScaleRound[];
  /** Cluster ÷ single Redis, over the rounds of each: decisions/s and Redis CPU per decision. */
  ratio: { per_second: number; redis_cpu_ms_per_decision: number };
}

export interface RedisScaleOptions {
  binaries: ClusterBinaries;
  bundle: string;
  concurrency: number;
  decisions: number;
  /** Rounds of each kind, alternating single and cluster, so drift on the machine hits both. */
  rounds: number;
  log: (line: string) => void;
}

/**
 * Decisions/s with the projection (and everything else in Redis) on a Redis Cluster of three
 * masters with a replica each, beside one Redis: the same dev server in memory, worker and API,
 * the offline model, a closed loop of `concurrency` decisions, alternating rounds.
 */
export async function redisScale(options: RedisScaleOptions): Promise<RedisScaleFigures> {
  const masters = 3;
  const replicas = 1;
  const rounds: RedisScaleRound[] = [];
  for (let i = 0; i < options.rounds * 2; i++) {
    const kind = i % 2 === 0 ? 'single' : 'cluster';
    const single =
      kind === 'single'
        ? await ensureLocalRedis(`redis://127.0.0.1:${await freePort()}`, null)
        : null;
    const cluster =
      kind === 'cluster' ? await startRedisCluster({ masters, replicasPerMaster: replicas }) : null;
    let stack: BenchStack | null = null;
    try {
      stack = await startBenchStack({
        binaries: options.binaries,
        bundle: options.bundle,
        // The bench's own client for INFO reads the cluster's nodes instead (redisCluster).
        redisUrl: single?.url ?? `redis://${cluster!.nodes[0]}`,
        store: 'memory',
        ...(cluster ? { redisCluster: cluster.nodes } : {}),
      });
      // Warm: the first decisions load the workflow bundle and connect everything.
      await throughput(stack, 4, 8);
      const load = loadavg()[0]!;
      const figures = await throughput(stack, options.concurrency, options.decisions);
      options.log(
        `  ${kind}: ${figures.per_second}/s at ${options.concurrency} in flight, p50 ${figures.latency_ms.p50} ms, Redis ${figures.redis_cpu_ms_per_decision} ms CPU a decision`,
      );
      rounds.push({ redis: kind, load_average: round(load, 2), ...figures });
    } finally {
      await stack?.stop();
      await cluster?.stop();
      await single?.stop();
    }
  }
  const mean = (kind: RedisScaleRound['redis'], pick: (r: RedisScaleRound) => number) => {
    const of = rounds.filter((r) => r.redis === kind).map(pick);
    return of.reduce((a, b) => a + b, 0) / of.length;
  };
  const ratio = (pick: (r: RedisScaleRound) => number) =>
    round(mean('cluster', pick) / mean('single', pick), 2);
  return {
    date: new Date().toISOString(),
    machine: thisMachine(),
    cluster: { masters, replicas_per_master: replicas },
    rounds,
    ratio: {
      per_second: ratio((r) => r.per_second),
      redis_cpu_ms_per_decision: ratio((r) => r.redis_cpu_ms_per_decision ?? 0),
    },
  };
}
