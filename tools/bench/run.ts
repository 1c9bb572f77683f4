import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { Command } from 'commander';
import { KnowledgeBase } from '../../src/knowledge/knowledge-base';
import { ensureLocalRedis } from '../redis-dev';
import { createRedis } from '../../src/projection/redis-client';
import { findOrBuildClusterBinaries, type ClusterBinaries } from '../cluster/binaries';
import { findOrBuildTemporalCli } from '../temporal/cli';
import { buildProduction } from '../cluster/topology';
import { PHASE_NAMES } from '../../src/domain/phases';
import { postgresCpuMs, round, thisMachine } from './measure';
import { bullmqChain, inProcessBound } from './peers';
import { liveOutput } from './live-output';
import { providerLimit } from './provider-limit';
import { redisFootprint } from './redis-footprint';
import { redisScale } from './redis-scale';
import { slowModel } from './slow-model';
import { readResults, writeResults, type BenchResults } from './report';
import { removeKeys, startBenchStack, type BenchStack } from './stack';
import {
  creates,
  describeFloor,
  floor,
  memoryInFlight,
  serial,
  statusReads,
  throughput,
  type MemoryFigures,
  type ThroughputFigures,
} from './temporal-runs';

/** The bench model server's pace: an answer in 50 chunks 20 ms apart, about a second a call. */
const LIVE_CHUNKS = 50;
const LIVE_INTERVAL_MS = 20;

/** The parts `--only` runs alone. */
const PARTS = [
  'live-output',
  'provider-limit',
  'api-load',
  'slow-model',
  'redis-footprint',
  'redis-cluster',
];

// How much each part runs: `--quick` runs fewer of each (about twelve minutes on two cores, the
// provider limit's minutes included), the full run about forty minutes.
const SIZES = {
  full: {
    serial: 30,
    throughput: { 1: 30, 8: 200, 32: 400, 128: 512 } as Record<number, number>,
    afterTotal: 1000,
    slowSerial: 3,
    inFlight: 200,
    inFlightHoldMs: undefined as number | undefined,
    loadSeconds: 15,
    sqliteSerial: 20,
    sqliteDecisions: 200,
    floor: { serial: 30, throughput: { 32: 400, 128: 512 } as Record<number, number> },
    peers: { serial: 30, concurrency: 32, decisions: 1000 },
    live: { decisions: 50, rounds: 2, warmup: 3 },
    // 12 calls each: four minutes' worth of 600 calls, so the limit is busy over three minutes.
    providerLimit: 200,
    burst: { decisions: 300, callMs: 2000, chunks: 20 },
    footprint: { offline: 300, concurrency: 32, streaming: 100, expiring: 20 },
    redisScale: { concurrency: 32, decisions: 300, rounds: 2 },
  },
  quick: {
    serial: 10,
    throughput: { 1: 3, 8: 16, 32: 48, 128: 128 } as Record<number, number>,
    afterTotal: 0,
    slowSerial: 1,
    inFlight: 200,
    inFlightHoldMs: 15_000,
    loadSeconds: 5,
    sqliteSerial: 5,
    sqliteDecisions: 32,
    floor: { serial: 10, throughput: { 32: 96, 128: 128 } as Record<number, number> },
    peers: { serial: 10, concurrency: 32, decisions: 200 },
    live: { decisions: 16, rounds: 1, warmup: 1 },
    providerLimit: 110,
    burst: { decisions: 300, callMs: 2000, chunks: 20 },
    footprint: { offline: 60, concurrency: 16, streaming: 20, expiring: 10 },
    redisScale: { concurrency: 32, decisions: 96, rounds: 1 },
  },
};

/** The bare workflow's bundle (tools/bench/bare-workflow.ts), which the floor's worker runs. */
function bareBundle() {
  const quiet = () => undefined;
  return bundleWorkflowCode({
    workflowsPath: resolve(__dirname, 'bare-workflow.ts'),
    logger: { trace: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet, log: quiet },
  });
}

async function main(): Promise<void> {
  const options = new Command('bench')
    .description('Benchmarks the decision backend on this machine beside its peers')
    .option('--quick', 'smaller runs, about twelve minutes; writes to .data/bench')
    .option('--out <dir>', 'where BENCHMARKS.md, benchmarks.json and benchmarks.svg go')
    .option(
      '--step <label>',
      'also record the key figures under this label in docs/bench-steps.json',
    )
    .option(
      '--only <part>',
      `run one part and put its figures into the results already in --out (parts: ${PARTS.join(', ')})`,
    )
    .parse(process.argv)
    .opts<{ quick?: boolean; out?: string; step?: string; only?: string }>();
  const quick = options.quick === true;
  const size = quick ? SIZES.quick : SIZES.full;
  const outDir = resolve(options.out ?? (quick ? '.data/bench' : 'docs'));
  const started = Date.now();
  const log = (line: string) =>
    process.stdout.write(`[${Math.round((Date.now() - started) / 1000)} s] ${line}\n`);

  if (options.only !== undefined && !PARTS.includes(options.only)) {
    throw new Error(`--only: no part "${options.only}" (parts: ${PARTS.join(', ')})`);
  }
  // Read first: figures of one part with no results to join fail before the run, not after.
  const earlier = options.only !== undefined ? readResults(outDir) : null;

  // The API load and Redis parts run on the dev server alone: no need for the cluster's binaries.
  const binaries =
    options.only === 'api-load' ||
    options.only === 'redis-footprint' ||
    options.only === 'redis-cluster'
      ? ({ temporalCli: await findOrBuildTemporalCli() } as ClusterBinaries)
      : await findOrBuildClusterBinaries();
  log('building the production roles (npm run build, workflow bundle)');
  const bundleDir = mkdtempSync(join(tmpdir(), 'bench-bundle-'));
  const bundle = buildProduction(join(bundleDir, 'workflow-bundle.js'));
  const floorBundle = join(bundleDir, 'floor-bundle.js');
  writeFileSync(floorBundle, (await bareBundle()).code);
  // A model server streaming over HTTP, the worker's openai provider, a client per decision.
  const live = () =>
    liveOutput({
      binaries,
      bundle,
      ...size.live,
      chunks: LIVE_CHUNKS,
      intervalMs: LIVE_INTERVAL_MS,
      log,
    });
  // Two workers sharing LLM_REQUESTS_PER_MINUTE=600 against a model server that enforces it.
  const limit = () => providerLimit({ binaries, bundle, decisions: size.providerLimit, log });
  // Many decisions at once, the model 2 s a call, one worker with the defaults, started as Dockerfile.worker starts it.
  const burst = () => {
    log(`${size.burst.decisions} decisions at once, model ${size.burst.callMs} ms per call`);
    return slowModel({ binaries, bundle, ...size.burst, log });
  };
  // What one Redis of its own holds and does per decision: offline, streaming, expiring.
  const footprint = () =>
    redisFootprint({
      binaries,
      bundle,
      ...size.footprint,
      chunks: LIVE_CHUNKS,
      intervalMs: LIVE_INTERVAL_MS,
      expiryTtlSeconds: 5,
      log,
    });
  // Decisions/s on a Redis Cluster of three masters with a replica each, beside one Redis.
  const cluster = () => {
    log('decisions on a Redis Cluster beside one Redis');
    return redisScale({ binaries, bundle, ...size.redisScale, log });
  };
  // The parts that run alone with --only, each with the figures it adds to the results.
  const alone: Record<string, () => Promise<Partial<BenchResults>>> = {
    'live-output': async () => ({ live_output: await live() }),
    'provider-limit': async () => ({ provider_limit: await limit() }),
    'slow-model': async () => ({ slow_model_burst: await burst() }),
    'redis-footprint': async () => ({ redis_footprint: await footprint() }),
    'redis-cluster': async () => ({ redis_cluster: await cluster() }),
  };
  if (earlier && options.only !== 'api-load') {
    try {
      log(`${options.only} alone`);
      const part = await alone[options.only!]!();
      const written = await writeResults({ ...earlier, ...part }, outDir);
      log(`wrote ${written.join(', ')}`);
    } finally {
      rmSync(bundleDir, { recursive: true, force: true });
    }
    return;
  }
  const redis = await ensureLocalRedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', null);
  const knowledge = await KnowledgeBase.load(resolve(__dirname, '../../knowledge'));
  const projectionRedis = createRedis(redis.url);

  let stack: BenchStack | null = null;
  const stopAll = async () => {
    await stack?.stop();
    stack = null;
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void stopAll().finally(() => process.exit(130)));
  }

  // Status reads and creates under load. Alone (--only api-load) they run on a fresh dev server;
  // in the full run, on one that has run about a thousand decisions by then.
  const apiLoad = async (s: BenchStack) => {
    log(`status reads at 2,000/s for ${size.loadSeconds} s`);
    const reads = await statusReads(s, 2000, size.loadSeconds);
    log(`  p50 ${reads.latency_ms.p50} ms, p99 ${reads.latency_ms.p99} ms`);
    log(`creates at 200/s for ${size.loadSeconds} s`);
    const created = await creates(s, 200, size.loadSeconds);
    log(`  p50 ${created.latency_ms.p50} ms, p99 ${created.latency_ms.p99} ms`);
    return { status_reads: reads, creates: created };
  };

  try {
    if (earlier) {
      log('dev server in memory: API load alone');
      stack = await startBenchStack({ binaries, bundle, redisUrl: redis.url, store: 'memory' });
      await serial(stack, 3); // warm-up: JIT, connections, caches
      const written = await writeResults({ ...earlier, ...(await apiLoad(stack)) }, outDir);
      log(`wrote ${written.join(', ')}`);
      return;
    }
    log('dev server in memory: serial decisions');
    stack = await startBenchStack({ binaries, bundle, redisUrl: redis.url, store: 'memory' });
    log('  the floor first: a bare workflow of ten no-op activities, same server and settings');
    const memoryFloor = await floor(stack, floorBundle, size.floor);
    log(`  floor: ${describeFloor(memoryFloor)}`);
    await serial(stack, 3); // warm-up: JIT, connections, caches
    const memorySerial = await serial(stack, size.serial);
    log(
      `  p50 ${memorySerial.latency_ms.p50} ms, ${memorySerial.overhead_per_phase_ms.p50} ms/phase`,
    );

    const concurrency: ThroughputFigures[] = [];
    let completed = 3 + size.serial;
    const rss: { after_decisions: number; rss_mb: number }[] = [];
    for (const c of [1, 8, 32, 128]) {
      log(`dev server in memory: ${size.throughput[c]} decisions at concurrency ${c}`);
      const figures = await throughput(stack, c, size.throughput[c]!);
      concurrency.push(figures);
      completed += figures.decisions;
      rss.push({ after_decisions: completed, rss_mb: figures.worker_rss_mb });
      log(`  ${figures.per_second}/s, p50 ${figures.latency_ms.p50} ms`);
    }
    while (completed < size.afterTotal) {
      const batch = Math.min(200, size.afterTotal - completed);
      const figures = await throughput(stack, 32, batch);
      completed += batch;
      rss.push({ after_decisions: completed, rss_mb: figures.worker_rss_mb });
      log(`  worker RSS ${figures.worker_rss_mb} MB after ${completed} decisions`);
    }

    const { status_reads: reads, creates: created } = await apiLoad(stack);

    // A worker whose model answers each call after 1 s: first many decisions at once (its memory
    // with them all cached, which also warms it up), then some one at a time.
    log(`${size.inFlight} decisions in flight (model 1 s per call): worker RSS`);
    const memory = await memoryInFlight(stack, size.inFlight, 1000, size.inFlightHoldMs);
    log(`  ${memory.in_flight_rss_mb} MB (idle ${memory.idle_rss_mb} MB)`);
    log(`model answering each call after 1 s: ${size.slowSerial} serial decision(s)`);
    const slowSerial = await serial(stack, size.slowSerial);
    log(
      `  ${slowSerial.latency_ms.p50} ms, orchestration ${(slowSerial.orchestration_share * 100).toFixed(2)} %`,
    );
    // The cache against memory: a worker that keeps 50 workflows replays the others' histories
    // at each of their tasks instead of holding them.
    let smallCache: MemoryFigures | null = null;
    if (!quick) {
      log(`${size.inFlight} decisions in flight with WORKER_MAX_CACHED_WORKFLOWS=50`);
      smallCache = await memoryInFlight(stack, size.inFlight, 1000, undefined, 50);
      log(`  ${smallCache.in_flight_rss_mb} MB, done in ${smallCache.seconds} s`);
    }
    await stopAll();

    log('dev server with its SQLite file: serial and concurrency 32');
    stack = await startBenchStack({ binaries, bundle, redisUrl: redis.url, store: 'sqlite' });
    const sqliteFloor = await floor(stack, floorBundle, {
      serial: size.sqliteSerial,
      throughput: { 32: size.sqliteDecisions },
    });
    log(`  floor: ${describeFloor(sqliteFloor)}`);
    await serial(stack, 3);
    const sqliteSerial = await serial(stack, size.sqliteSerial);
    const sqlite32 = await throughput(stack, 32, size.sqliteDecisions);
    log(`  p50 ${sqliteSerial.latency_ms.p50} ms, ${sqlite32.per_second}/s at 32`);
    await stopAll();

    // The production topology's Temporal server (npm run cluster, docker-compose.yml) on the
    // PostgreSQL of this machine, which the bench shares with it: PostgreSQL's CPU counts too.
    log('Temporal server on PostgreSQL: serial, concurrency 32 and 128');
    stack = await startBenchStack({ binaries, bundle, redisUrl: redis.url, store: 'postgres' });
    const postgresFloor = await floor(stack, floorBundle, {
      serial: size.sqliteSerial,
      throughput: { 32: size.sqliteDecisions, 128: size.throughput[128]! },
    });
    log(`  floor: ${describeFloor(postgresFloor)}`);
    await serial(stack, 3);
    const postgresSerial = await serial(stack, size.sqliteSerial);
    const postgresAt = async (c: number, decisions: number) => {
      const before = postgresCpuMs();
      const figures = await throughput(stack!, c, decisions);
      return {
        ...figures,
        postgres_cpu_ms_per_decision: round((postgresCpuMs() - before) / figures.decisions, 1),
      };
    };
    const postgres32 = await postgresAt(32, size.sqliteDecisions);
    const postgres128 = await postgresAt(128, size.throughput[128]!);
    log(
      `  p50 ${postgresSerial.latency_ms.p50} ms, ${postgres32.per_second}/s at 32, ${postgres128.per_second}/s at 128`,
    );
    await stopAll();

    const liveFigures = await live();
    const limitFigures = await limit();
    const burstFigures = await burst();
    const footprintFigures = await footprint();
    const clusterFigures = await cluster();

    log('in-process bound');
    await inProcessBound(projectionRedis, knowledge, { serial: 3, concurrency: 1, decisions: 0 });
    const bound = await inProcessBound(projectionRedis, knowledge, size.peers);
    log(`  p50 ${bound.serial_latency_ms.p50} ms, ${bound.per_second}/s at 32`);
    log('BullMQ chain of ten jobs');
    const bull = await bullmqChain(redis.url, knowledge, projectionRedis, size.peers);
    log(`  p50 ${bull.serial_latency_ms.p50} ms, ${bull.per_second}/s at 32`);

    const results: BenchResults = {
      date: new Date().toISOString(),
      machine: thisMachine(),
      quick,
      seconds: Math.round((Date.now() - started) / 1000),
      memory_serial: memorySerial,
      concurrency,
      worker_rss: { after: rss, in_flight: memory, small_cache: smallCache },
      status_reads: reads,
      creates: created,
      slow_model: { delay_ms: 1000, serial: slowSerial },
      sqlite: { serial: sqliteSerial, concurrency_32: sqlite32 },
      floor: { memory: memoryFloor, sqlite: sqliteFloor, postgres: postgresFloor },
      postgres: {
        serial: postgresSerial,
        concurrency_32: postgres32,
        concurrency_128: postgres128,
      },
      live_output: liveFigures,
      provider_limit: limitFigures,
      slow_model_burst: burstFigures,
      redis_footprint: footprintFigures,
      redis_cluster: clusterFigures,
      in_process: bound,
      bullmq: {
        ...bull,
        overhead_per_phase_ms: round(
          (bull.serial_latency_ms.p50 - bound.serial_latency_ms.p50) / PHASE_NAMES.length,
          2,
        ),
      },
    };
    const written = await writeResults(results, outDir, options.step);
    log(`wrote ${written.join(', ')}`);
  } finally {
    await stopAll();
    await removeKeys(redis.url, 'bench:inproc:');
    await removeKeys(redis.url, 'bench:bullmq:');
    projectionRedis.disconnect();
    await redis.stop();
    rmSync(bundleDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(
      `bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
