import { writeFileSync } from 'node:fs';
import { createParser } from 'eventsource-parser';
import type { Redis } from 'ioredis';
import { PHASE_NAMES } from '../../src/domain/phases';
import { RedisKeys } from '../../src/projection/keys';
import { createRedis } from '../../src/projection/redis-client';
import type { ClusterBinaries } from '../cluster/binaries';
import { cpuMeter, machineCpuMs, round, thisMachine, type Machine } from './measure';
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
import { BENCH_KEY, startModelStack, type BenchStack } from './stack';

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
export async function follow(apiUrl: string, id: string, receipts: Receipt[]): Promise<Followed> {
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

/** A mode's processes: a worker on a task queue of its own, and an API that starts decisions there. */
export interface Lane {
  name: 'on' | 'unpublished' | 'off';
  api: { url: string; pid: number };
  workerPid: number;
}

export interface LiveRunContext {
  stack: BenchStack;
  /** The stack's own Redis (the bench's, not shared), and its server's process. */
  redis: Redis;
  redisPid: number;
  modelServer: { url: string; pid: number };
}

type CpuOf = 'worker' | 'api' | 'redis' | 'temporal' | 'model_server' | 'clients';

/** What one round measured, as counts and samples (rounds of a mode add up). */
export interface Round {
  decisions: number;
  seconds: number;
  decisionMs: number[];
  sent: SentMarkers;
  receipts: Receipt[];
  deltas: number;
  /** Changes of Redis's counters over the round: calls per command, and INFO's fields. */
  calls: Record<string, number>;
  fields: Record<string, number>;
  liveBytes: number;
  liveEntries: number;
  cpuMs: Record<CpuOf, number>;
  machineBusyMs: number;
}

async function takeMarkers(url: string): Promise<SentMarkers> {
  const res = await fetch(`${url}/bench/markers`);
  return (await res.json()) as SentMarkers;
}

async function redisInfo(redis: Redis) {
  return parseInfo(`${await redis.info('commandstats')}\n${await redis.info('stats')}`);
}

/** Decisions through `lane`, each followed by a client from its creation to its end. */
async function decideAndFollow(
  ctx: LiveRunContext,
  lane: Lane,
  decisions: number,
  receipts: Receipt[],
) {
  const runs = await Promise.all(
    Array.from({ length: decisions }, async () => {
      const t0 = performance.now();
      const id = await ctx.stack.create(lane.api.url);
      const followed = await follow(lane.api.url, id, receipts);
      return { id, followed, ms: performance.now() - t0 };
    }),
  );
  const failed = runs.filter((r) => r.followed.end !== 'decision.completed');
  if (failed.length > 0) {
    throw new Error(
      `${failed.length} of ${decisions} decisions (${lane.name}) did not complete: ${failed
        .slice(0, 3)
        .map((r) => `${r.id} ${r.followed.end ?? 'stream ended without an end'}`)
        .join(', ')}`,
    );
  }
  return runs;
}

/**
 * Starts `decisions` decisions at once through `lane`, each followed by its own client from the
 * moment it is created; measures latency per chunk, Redis's work and every process's CPU.
 */
export async function liveRound(
  ctx: LiveRunContext,
  lane: Lane,
  decisions: number,
): Promise<Round> {
  const { stack, redis } = ctx;
  await takeMarkers(ctx.modelServer.url);
  const before = await redisInfo(redis);
  const cpu = cpuMeter({
    worker: lane.workerPid,
    api: lane.api.pid,
    redis: ctx.redisPid,
    temporal: stack.temporalPid,
    model_server: ctx.modelServer.pid,
  });
  const clientCpu = process.cpuUsage();
  const machine = machineCpuMs();
  const receipts: Receipt[] = [];
  const started = performance.now();
  const runs = await decideAndFollow(ctx, lane, decisions, receipts);
  const seconds = (performance.now() - started) / 1000;
  const cpuMs = cpu(1, 0);
  const clients = process.cpuUsage(clientCpu);
  const machineBusyMs = machineCpuMs().busy - machine.busy;
  const after = await redisInfo(redis);
  const sent = await takeMarkers(ctx.modelServer.url);
  // BENCH_LIVE_SAMPLES=<path prefix> keeps each round's markers sent and sightings, to study them.
  if (process.env.BENCH_LIVE_SAMPLES) {
    writeFileSync(
      `${process.env.BENCH_LIVE_SAMPLES}-${lane.name}-${decisions}-${Date.now()}.json`,
      JSON.stringify({ sent: sent.sent, receipts }),
    );
  }
  let liveBytes = 0;
  let liveEntries = 0;
  for (const { id } of runs) {
    const key = new RedisKeys(stack.prefix, false).live(id);
    liveEntries += await redis.xlen(key);
    liveBytes += Number((await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) ?? 0);
  }
  return {
    decisions,
    seconds,
    decisionMs: runs.map((r) => r.ms),
    sent,
    receipts,
    deltas: runs.reduce((sum, r) => sum + r.followed.deltas, 0),
    calls: countersDelta(before.calls, after.calls, 1, 0),
    fields: countersDelta(before.fields, after.fields, 1, 0),
    liveBytes,
    liveEntries,
    cpuMs: { ...cpuMs, clients: (clients.user + clients.system) / 1000 },
    machineBusyMs,
  };
}

/** The figures of a mode: its rounds added up, then per decision or per phase. */
export interface LiveRunFigures {
  rounds: number;
  /** Decisions in all (each round started its decisions at once). */
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
  /** Redis's own counts (INFO commandstats, INFO stats) over the rounds, per phase run. */
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
   * Cores busy on average over the rounds: the whole machine (/proc/stat), and the stack's
   * processes with the clients. The difference ran beside the bench.
   */
  cores_busy: { machine: number; stack: number };
  /** CPU time per decision, from /proc (the clients: the bench's own process). */
  cpu_ms_per_decision: Record<CpuOf, number>;
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function added(maps: Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const map of maps) for (const [k, v] of Object.entries(map)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** A mode's rounds added up: samples pooled, counts summed, then divided. */
export function summarize(rounds: Round[]): LiveRunFigures {
  const decisions = sum(rounds.map((r) => r.decisions));
  const seconds = sum(rounds.map((r) => r.seconds));
  const phases = decisions * PHASE_NAMES.length;
  const matched = matchMarkers(
    Object.assign({}, ...rounds.map((r) => r.sent.sent)) as Record<string, number>,
    rounds.flatMap((r) => r.receipts),
  );
  const fields = added(rounds.map((r) => r.fields));
  const cpuMs = added(rounds.map((r) => r.cpuMs)) as Record<CpuOf, number>;
  const streamed = sum(rounds.map((r) => r.sent.streamed));
  const per = (total: number, n: number, digits = 2) => round(total / n, digits);
  return {
    rounds: rounds.length,
    decisions,
    seconds: round(seconds),
    decision_ms: distribution(
      rounds.flatMap((r) => r.decisionMs),
      0,
    ),
    model_calls: per(sum(rounds.map((r) => r.sent.calls)), decisions, 1),
    chunks_per_call: streamed > 0 ? per(sum(rounds.map((r) => r.sent.chunks)), streamed, 1) : 0,
    latency_ms: {
      ...distribution(matched.latencies),
      missing: matched.missing,
      repeats: matched.repeats,
      before_open: matched.beforeOpen,
    },
    to_redis_ms: distribution(matched.toRedis),
    redis_to_client_ms: distribution(matched.fromRedis),
    latency_by_phase_ms: byPhase(matched),
    deltas_per_decision: per(sum(rounds.map((r) => r.deltas)), decisions, 1),
    redis_per_phase: {
      commands: per(fields.total_commands_processed ?? 0, phases),
      net_input_bytes: per(fields.total_net_input_bytes ?? 0, phases, 0),
      net_output_bytes: per(fields.total_net_output_bytes ?? 0, phases, 0),
      live_entries: per(sum(rounds.map((r) => r.liveEntries)), phases),
      by_command: countersDelta({}, added(rounds.map((r) => r.calls)), phases),
    },
    live_stream_per_decision: {
      bytes: per(sum(rounds.map((r) => r.liveBytes)), decisions, 0),
      entries: per(sum(rounds.map((r) => r.liveEntries)), decisions, 1),
    },
    cores_busy: {
      machine: per(sum(rounds.map((r) => r.machineBusyMs)) / 1000, seconds),
      stack: per(sum(Object.values(cpuMs)) / 1000, seconds),
    },
    cpu_ms_per_decision: Object.fromEntries(
      Object.entries(cpuMs).map(([k, v]) => [k, per(v, decisions, 1)]),
    ) as Record<CpuOf, number>,
  };
}

export interface LiveOutputFigures {
  date: string;
  machine: Machine;
  /** Decisions started at once in each round. */
  decisions: number;
  /** The model server's pace: a chunk every `chunk_interval_ms`, `chunks_per_answer` an answer. */
  chunk_interval_ms: number;
  chunks_per_answer: number;
  /** The order the rounds ran in, one lane each. */
  order: Lane['name'][];
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
  /** Decisions at once in each round. */
  decisions: number;
  /** Rounds of each mode, alternating (on, unpublished, off, off, unpublished, on, …). */
  rounds: number;
  /** Decisions run first through each lane at once, unmeasured. */
  warmup: number;
  chunks: number;
  intervalMs: number;
  log: (line: string) => void;
}

/** Rounds in an order that cancels a steady drift of the machine's other load: ABC CBA ABC … */
export function roundOrder<T>(modes: readonly T[], rounds: number): T[] {
  return Array.from({ length: rounds }, (_, i) =>
    i % 2 === 0 ? modes : [...modes].reverse(),
  ).flat();
}

/**
 * Live output end to end: a model server streaming over HTTP, workers with the openai provider,
 * APIs and a client per decision, on a Redis of the bench's own (so that Redis's counts are the
 * stack's alone). Three lanes, each a worker and an API on a task queue of their own, run the
 * same workload in alternating rounds: streaming on, streaming with nothing published, streaming
 * off; so the machine's other load falls on each alike.
 */
export async function liveOutput(options: LiveOutputOptions): Promise<LiveOutputFigures> {
  const { log } = options;
  const {
    redis: localRedis,
    model,
    stack,
    stop,
  } = await startModelStack({
    binaries: options.binaries,
    bundle: options.bundle,
    modelArgs: [options.chunks, options.intervalMs],
    // One key follows every decision here.
    env: { EVENT_STREAMS_PER_KEY: String(options.decisions + options.warmup + 10) },
  });
  const redis = createRedis(localRedis.url);
  try {
    const lane = async (
      name: Lane['name'],
      model: number | 'unpublished',
      extra: NodeJS.ProcessEnv,
    ): Promise<Lane> => {
      const queue = `bench-${name}`;
      const worker = await stack.addWorker(queue, model, extra);
      const api = await stack.startApi(queue);
      return { name, api: { url: api.url, pid: api.role.pid }, workerPid: worker.pid };
    };
    const lanes: Record<Lane['name'], Lane> = {
      on: {
        name: 'on',
        api: { url: stack.api.url, pid: stack.api.role.pid },
        workerPid: stack.worker.pid,
      },
      unpublished: await lane('unpublished', 'unpublished', {}),
      off: await lane('off', 0, { LLM_STREAM: 'false' }),
    };
    const ctx: LiveRunContext = {
      stack,
      redis,
      redisPid: localRedis.pid,
      modelServer: { url: model.url, pid: model.role.pid },
    };
    log(`warming up: ${options.warmup} decisions through each lane`);
    await Promise.all(Object.values(lanes).map((l) => decideAndFollow(ctx, l, options.warmup, [])));
    const order = roundOrder(['on', 'unpublished', 'off'] as const, options.rounds);
    const rounds: Record<Lane['name'], Round[]> = { on: [], unpublished: [], off: [] };
    for (const name of order) {
      const round = await liveRound(ctx, lanes[name], options.decisions);
      rounds[name].push(round);
      const worker = Math.round(round.cpuMs.worker / round.decisions);
      log(`  ${options.decisions} decisions at once, ${name}: worker ${worker} ms CPU/decision`);
    }
    log('one decision on its own, streaming on');
    const alone = summarize([await liveRound(ctx, lanes.on, 1)]);
    const [on, unpublished, off] = [rounds.on, rounds.unpublished, rounds.off].map(summarize) as [
      LiveRunFigures,
      LiveRunFigures,
      LiveRunFigures,
    ];
    log(
      `  chunk → client p50 ${on.latency_ms.p50} ms, p99 ${on.latency_ms.p99} ms at ${options.decisions} at once; p50 ${alone.latency_ms.p50} ms, p99 ${alone.latency_ms.p99} ms alone`,
    );
    return {
      date: new Date().toISOString(),
      machine: thisMachine(),
      decisions: options.decisions,
      chunk_interval_ms: options.intervalMs,
      chunks_per_answer: options.chunks,
      order: [...order],
      on,
      alone: {
        latency_ms: alone.latency_ms,
        to_redis_ms: alone.to_redis_ms,
        redis_to_client_ms: alone.redis_to_client_ms,
      },
      unpublished,
      off,
      worker_cpu_ratio: round(on.cpu_ms_per_decision.worker / off.cpu_ms_per_decision.worker, 2),
    };
  } finally {
    redis.disconnect();
    await stop();
  }
}
