import { writeFileSync } from 'node:fs';
import { createParser } from 'eventsource-parser';
import type { Redis } from 'ioredis';
import { PHASE_NAMES } from '../../src/domain/phases';
import { liveKey } from '../../src/projection/live-channel';
import { createRedis } from '../../src/projection/redis-client';
import type { ClusterBinaries } from '../cluster/binaries';
import { freePort } from '../process/ports';
import { ensureLocalRedis } from '../redis-dev';
import { cpuMeter, machineCpuMs, round } from './measure';
import {
  byPhase,
  countersDelta,
  distribution,
  liveIdOf,
  matchMarkers,
  parseInfo,
  streamIdMs,
  type Distribution,
  type Receipt,
} from './live-latency';
import { wallClockMs, type SentMarkers } from './model-server';
import { markersIn } from './schema-answer';
import { BENCH_KEY, startBenchStack, startRole, type BenchStack } from './stack';

const TERMINAL = new Set(['decision.completed', 'decision.failed', 'decision.cancelled']);

/** What one decision's event stream brought its client. */
interface Followed {
  end: string | null;
  deltas: number;
  durable: number;
}

/**
 * Follows `GET /decisions/{id}/events` to its end, as a client would, and notes where and when
 * each marker in a delta's text arrived.
 */
async function follow(apiUrl: string, id: string, receipts: Receipt[]): Promise<Followed> {
  const res = await fetch(`${apiUrl}/decisions/${id}/events`, {
    headers: { Authorization: `Bearer ${BENCH_KEY}`, Accept: 'text/event-stream' },
  });
  if (res.status !== 200 || !res.body) {
    throw new Error(`GET /decisions/${id}/events answered ${res.status}: ${await res.text()}`);
  }
  const openedAt = wallClockMs();
  let at = openedAt;
  const followed: Followed = { end: null, deltas: 0, durable: 0 };
  const parser = createParser({
    onEvent(event) {
      if (event.event === 'phase.delta') {
        followed.deltas += 1;
        const { text, phase } = JSON.parse(event.data) as { text: string; phase: string };
        const live = liveIdOf(event.id);
        const storedMs = live ? streamIdMs(live) : NaN;
        for (const marker of markersIn(text)) {
          receipts.push({ marker, at, storedMs, openedAt, phase });
        }
      } else if (event.event) {
        followed.durable += 1;
        if (TERMINAL.has(event.event)) followed.end = event.event;
      }
    },
  });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    at = wallClockMs();
    parser.feed(decoder.decode(value, { stream: true }));
  }
  return followed;
}

/** The figures of one run: `decisions` decisions at once, each followed by a client. */
export interface LiveRunFigures {
  decisions: number;
  seconds: number;
  /** Create → the terminal event at the client. */
  decision_ms: Distribution;
  model_calls: number;
  chunks_per_call: number;
  /** A chunk leaving the model server → its text at the client. */
  latency_ms: Distribution & { missing: number; repeats: number; before_open: number };
  /** The chunk leaving the model server → Redis storing the live event that carries it. */
  to_redis_ms: Distribution;
  /** Redis storing it → the client receiving it. */
  redis_to_client_ms: Distribution;
  /** Model server → client, by phase (retrieval runs a call per information need at once). */
  latency_by_phase_ms: Record<string, Distribution>;
  deltas_per_decision: number;
  /** Redis's own counts (INFO commandstats, INFO stats) over the run, per phase run. */
  redis_per_phase: {
    commands: number;
    net_input_bytes: number;
    net_output_bytes: number;
    /** Entries in the decisions' live streams (one XADD each), per phase. */
    live_entries: number;
    /** Calls of each command (INFO commandstats), per phase. */
    by_command: Record<string, number>;
  };
  /** What the live streams hold after the run, per decision (MEMORY USAGE, XLEN). */
  live_stream_per_decision: { bytes: number; entries: number };
  /**
   * Cores busy on average over the run: the whole machine (/proc/stat), and the stack's processes
   * with the clients. The difference ran beside the bench.
   */
  cores_busy: { machine: number; stack: number };
  /** CPU time per decision, from /proc (the clients: the bench's own process). */
  cpu_ms_per_decision: {
    worker: number;
    api: number;
    redis: number;
    temporal: number;
    model_server: number;
    clients: number;
  };
}

export interface LiveRunContext {
  stack: BenchStack;
  /** The stack's own Redis (the bench's, not shared), and its server's process. */
  redis: Redis;
  redisPid: number;
  modelServer: { url: string; pid: number };
}

async function takeMarkers(url: string): Promise<SentMarkers> {
  const res = await fetch(`${url}/bench/markers`);
  return (await res.json()) as SentMarkers;
}

async function redisInfo(redis: Redis) {
  return parseInfo(`${await redis.info('commandstats')}\n${await redis.info('stats')}`);
}

/**
 * Starts `decisions` decisions at once, each followed by its own client from the moment it is
 * created; measures latency per chunk, Redis's work and every process's CPU.
 */
export async function liveRun(ctx: LiveRunContext, decisions: number): Promise<LiveRunFigures> {
  const { stack, redis } = ctx;
  await takeMarkers(ctx.modelServer.url);
  const before = await redisInfo(redis);
  const cpu = cpuMeter({
    worker: stack.worker.pid,
    api: stack.api.role.pid,
    redis: ctx.redisPid,
    temporal: stack.temporalPid,
    model_server: ctx.modelServer.pid,
  });
  const clientCpu = process.cpuUsage();
  const machine = machineCpuMs();
  const receipts: Receipt[] = [];
  const started = performance.now();
  const runs = await Promise.all(
    Array.from({ length: decisions }, async () => {
      const t0 = performance.now();
      const id = await stack.create();
      const followed = await follow(stack.api.url, id, receipts);
      return { id, followed, ms: performance.now() - t0 };
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpuPerDecision = cpu(decisions);
  const clients = process.cpuUsage(clientCpu);
  const clientsMs = (clients.user + clients.system) / 1000;
  const machineBusyMs = machineCpuMs().busy - machine.busy;

  const after = await redisInfo(redis);
  const sent = await takeMarkers(ctx.modelServer.url);
  // BENCH_LIVE_SAMPLES=<path prefix> keeps each run's markers sent and sightings, to study them.
  if (process.env.BENCH_LIVE_SAMPLES) {
    writeFileSync(
      `${process.env.BENCH_LIVE_SAMPLES}-${decisions}-${Date.now()}.json`,
      JSON.stringify({ sent: sent.sent, receipts }),
    );
  }
  const failed = runs.filter((r) => r.followed.end !== 'decision.completed');
  if (failed.length > 0) {
    throw new Error(
      `${failed.length} of ${decisions} decisions did not complete: ${failed
        .slice(0, 3)
        .map((r) => `${r.id} ${r.followed.end ?? 'stream ended without an end'}`)
        .join(', ')}`,
    );
  }
  let bytes = 0;
  let entries = 0;
  for (const { id } of runs) {
    const key = liveKey(stack.prefix, id);
    entries += await redis.xlen(key);
    bytes += Number((await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) ?? 0);
  }
  const phases = decisions * PHASE_NAMES.length;
  const fields = countersDelta(before.fields, after.fields, phases);
  const matched = matchMarkers(sent.sent, receipts);
  return {
    decisions,
    seconds: round(seconds),
    decision_ms: distribution(
      runs.map((r) => r.ms),
      0,
    ),
    model_calls: sent.calls,
    chunks_per_call: round(sent.streamed > 0 ? sent.chunks / sent.streamed : 0, 1),
    latency_ms: {
      ...distribution(matched.latencies),
      missing: matched.missing,
      repeats: matched.repeats,
      before_open: matched.beforeOpen,
    },
    to_redis_ms: distribution(matched.toRedis),
    redis_to_client_ms: distribution(matched.fromRedis),
    latency_by_phase_ms: byPhase(matched),
    deltas_per_decision: round(runs.reduce((s, r) => s + r.followed.deltas, 0) / decisions, 1),
    redis_per_phase: {
      commands: fields.total_commands_processed ?? 0,
      net_input_bytes: fields.total_net_input_bytes ?? 0,
      net_output_bytes: fields.total_net_output_bytes ?? 0,
      live_entries: round(entries / phases, 2),
      by_command: countersDelta(before.calls, after.calls, phases),
    },
    live_stream_per_decision: {
      bytes: Math.round(bytes / decisions),
      entries: round(entries / decisions, 1),
    },
    cores_busy: {
      machine: round(machineBusyMs / 1000 / seconds, 2),
      stack: round(
        (Object.values(cpuPerDecision).reduce((a, b) => a + b, 0) * decisions + clientsMs) /
          1000 /
          seconds,
        2,
      ),
    },
    cpu_ms_per_decision: { ...cpuPerDecision, clients: round(clientsMs / decisions, 1) },
  };
}

export interface LiveOutputFigures {
  date: string;
  decisions: number;
  /** The model server's pace: a chunk every `chunk_interval_ms`, `chunks_per_answer` an answer. */
  chunk_interval_ms: number;
  chunks_per_answer: number;
  /** The openai provider streaming (`stream: true`), each chunk to the live channel. */
  on: LiveRunFigures;
  /** One decision on its own, streaming as `on`: the latency with cores to spare. */
  alone: Pick<LiveRunFigures, 'latency_ms' | 'to_redis_ms' | 'redis_to_client_ms'>;
  /**
   * Streaming as `on`, its output handed to no one (tools/bench/worker.cjs --unpublished): the
   * live channel writes nothing, so this is what reading the stream costs without it.
   */
  unpublished: LiveRunFigures;
  /**
   * `LLM_STREAM=false`: the model server sends each answer whole after the same time, and the
   * live channel publishes it as one delta per call.
   */
  off: LiveRunFigures;
  /** Worker CPU per decision, streaming on / off. */
  worker_cpu_ratio: number;
}

export interface LiveOutputOptions {
  binaries: ClusterBinaries;
  bundle: string;
  decisions: number;
  /** Decisions run first, unmeasured, after each worker start. */
  warmup: number;
  chunks: number;
  intervalMs: number;
  log: (line: string) => void;
}

/**
 * Live output end to end: a model server streaming over HTTP, the worker with the openai
 * provider, the API and a client per decision, on a Redis of the bench's own (so that Redis's
 * counts are the stack's alone). The same workload runs with streaming on, with streaming and
 * nothing published, then with streaming off.
 */
export async function liveOutput(options: LiveOutputOptions): Promise<LiveOutputFigures> {
  const { log } = options;
  const localRedis = await ensureLocalRedis(`redis://127.0.0.1:${await freePort()}`, null);
  if (localRedis.pid === null) throw new Error('the bench expected a Redis of its own');
  const redis = createRedis(localRedis.url);
  const modelPort = await freePort();
  const modelServer = await startRole('model server', {}, 'Model server listening', [
    '--import',
    'tsx',
    'tools/bench/model-server.ts',
    String(modelPort),
    String(options.chunks),
    String(options.intervalMs),
  ]);
  let stack: BenchStack | null = null;
  try {
    stack = await startBenchStack({
      binaries: options.binaries,
      bundle: options.bundle,
      redisUrl: localRedis.url,
      store: 'memory',
      env: {
        LLM_PROVIDER: 'openai',
        LLM_MODEL: 'bench-model-server',
        LLM_BASE_URL: `http://127.0.0.1:${modelPort}/v1`,
        // One key follows every decision here.
        EVENT_STREAMS_PER_KEY: String(options.decisions + options.warmup + 10),
      },
    });
    const ctx: LiveRunContext = {
      stack,
      redis,
      redisPid: localRedis.pid,
      modelServer: { url: `http://127.0.0.1:${modelPort}`, pid: modelServer.pid },
    };
    const measured = async (label: string) => {
      await liveRun(ctx, options.warmup);
      log(`${options.decisions} decisions at once, ${label}`);
      const figures = await liveRun(ctx, options.decisions);
      log(
        `  chunk → client p50 ${figures.latency_ms.p50} ms, p99 ${figures.latency_ms.p99} ms (${figures.latency_ms.samples} chunks); worker ${figures.cpu_ms_per_decision.worker} ms CPU/decision`,
      );
      return figures;
    };
    const on = await measured('the model streaming');
    log('one decision on its own, the model streaming');
    const { latency_ms, to_redis_ms, redis_to_client_ms } = await liveRun(ctx, 1);
    log(`  chunk → client p50 ${latency_ms.p50} ms, p99 ${latency_ms.p99} ms`);
    await stack.restartWorker('unpublished');
    const unpublished = await measured('the model streaming, its output published nowhere');
    await stack.restartWorker(0, { LLM_STREAM: 'false' });
    const off = await measured('the model not streaming (LLM_STREAM=false)');
    return {
      date: new Date().toISOString(),
      decisions: options.decisions,
      chunk_interval_ms: options.intervalMs,
      chunks_per_answer: options.chunks,
      on,
      alone: { latency_ms, to_redis_ms, redis_to_client_ms },
      unpublished,
      off,
      worker_cpu_ratio: round(on.cpu_ms_per_decision.worker / off.cpu_ms_per_decision.worker, 2),
    };
  } finally {
    await stack?.stop();
    await modelServer.stop();
    redis.disconnect();
    await localRedis.stop();
  }
}
