import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg } from 'node:os';
import type { Redis } from 'ioredis';
import { createRedis } from '../../src/projection/redis-client';
import { waitFor } from '../../src/process/wait';
import type { ClusterBinaries } from '../cluster/binaries';
import { follow } from './live-output';
import { closedLoop, round, thisMachine, type Machine } from './measure';
import {
  DECISION_KINDS,
  classifyKey,
  commandStats,
  perDecision,
  totalsByKind,
  type KeyKind,
  type KeySample,
  type KindTotals,
  type PerDecision,
} from './key-kinds';
import { BENCH_KEY, startModelStack } from './stack';

/** What Redis did over a round, from its own INFO. */
export interface RedisWork {
  seconds: number;
  /**
   * Commands run (`total_commands_processed`, which counts those a script runs too), per decision
   * and a second.
   */
  commands_per_decision: number;
  commands_per_second: number;
  /** Redis's CPU (`used_cpu_user` + `used_cpu_sys`), per decision, and cores busy on average. */
  cpu_ms_per_decision: number;
  cores_busy: number;
  /** Calls per decision of the commands that made most of them (those inside scripts too). */
  by_command: Record<string, number>;
}

/** A kind's keys per finished decision, with the TTLs they had once it finished. */
export type KindPerDecision = PerDecision & Pick<KindTotals, 'ttl_s' | 'no_ttl'>;

/** One group of decisions, measured once all had finished. */
export interface FootprintRound {
  decisions: number;
  /** `INFO memory`'s `used_memory` after the round less before it, per decision. */
  used_memory_per_decision: number;
  /** The decisions' own keys by kind (MEMORY USAGE, entries), per decision. */
  keys: Partial<Record<KeyKind, KindPerDecision>>;
  /** The decisions' own keys in all, per decision. */
  key_bytes_per_decision: number;
  work: RedisWork;
}

/** Running decisions at one moment of the streaming round. */
export interface RunningSnapshot {
  /** Since the round's first create. */
  seconds: number;
  running: number;
  finished: number;
  /** Per running decision: its keys' bytes by kind, and the entries of its streams. */
  bytes: Partial<Record<KeyKind, number>>;
  bytes_all: number;
  events_entries: number;
  live_entries: number;
}

export interface RedisFootprintFigures {
  date: string;
  machine: Machine;
  redis_version: string;
  /** The machine's 1-minute load average at the part's start and end: what else ran beside it. */
  load_average: [number, number];
  /** The stack's DECISION_TTL_SECONDS in the rounds (the default is 604800, seven days). */
  ttl_seconds: number;
  /** Offline model, a closed loop; every other decision with a webhook. */
  offline: FootprintRound & { concurrency: number };
  /** The record hash per decision with a webhook (its delivery state in it) and without. */
  webhook: { decisions: number; delivered: number; record_bytes: number; without_bytes: number };
  /** Streaming from the bench's model server, all created at once, a client on each. */
  streaming: FootprintRound & { chunks_per_answer: number; chunk_interval_ms: number };
  running: RunningSnapshot[];
  /** Keys no one decision owns (indexes, limits), after both rounds. */
  shared: Partial<Record<KeyKind, KindTotals>>;
  /** Every decision the indexes list, warm-ups included: what an entry of them costs. */
  index_entries_per_decision: number;
  /** Redis's memory after both rounds (`INFO memory`). */
  memory: {
    used_memory: number;
    used_memory_rss: number;
    used_memory_dataset: number;
    fragmentation_ratio: number;
    keys: number;
  };
  /** Decisions run with a short DECISION_TTL_SECONDS, watched until their keys had gone. */
  expiry: {
    decisions: number;
    ttl_seconds: number;
    /** From the last one's end until none of their own keys was left. */
    gone_after_s: number;
    /** Their entries left in the indexes then, and after one more decision had finished. */
    index_entries_left: number;
    index_entries_left_after_next: number;
  };
}

export interface RedisFootprintOptions {
  binaries: ClusterBinaries;
  bundle: string;
  /** Decisions with the offline model, `concurrency` at a time (every other one with a webhook). */
  offline: number;
  concurrency: number;
  /** Decisions streaming from the model server, all at once, each followed by a client. */
  streaming: number;
  chunks: number;
  intervalMs: number;
  /** Decisions run with a TTL of `expiryTtlSeconds` to watch their keys go. */
  expiring: number;
  expiryTtlSeconds: number;
  log: (line: string) => void;
}

const TTL_SECONDS = 3600;
const WEBHOOK_SECRET = `whsec_${Buffer.from('bench-redis-footprint-secret').toString('base64')}`;
/** Commands the bench's own reads send (`memory|usage` counts as `memory`), left out of a round's work. */
const OWN_COMMANDS = ['scan', 'memory', 'xlen', 'info'];

function field(info: string, name: string): number {
  return Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
}

/** INFO's counters the rounds are measured with. */
async function readCounters(redis: Redis) {
  const info = await redis.info('everything');
  return {
    at: performance.now(),
    usedMemory: field(info, 'used_memory'),
    commands: field(info, 'total_commands_processed'),
    cpuMs: (field(info, 'used_cpu_user') + field(info, 'used_cpu_sys')) * 1000,
    stats: commandStats(info),
  };
}
type Counters = Awaited<ReturnType<typeof readCounters>>;

/** What Redis did between two readings, for `decisions`, less the bench's own snapshots. */
function workBetween(
  before: Counters,
  after: Counters,
  decisions: number,
  seconds: number,
): RedisWork {
  let ownCalls = 0;
  let ownUsec = 0;
  const calls: Record<string, number> = {};
  for (const [name, s] of Object.entries(after.stats)) {
    const delta = {
      calls: s.calls - (before.stats[name]?.calls ?? 0),
      usec: s.usec - (before.stats[name]?.usec ?? 0),
    };
    if (OWN_COMMANDS.includes(name.split('|')[0]!)) {
      ownCalls += delta.calls;
      ownUsec += delta.usec;
    } else if (delta.calls > 0) calls[name] = delta.calls;
  }
  const commands = after.commands - before.commands - ownCalls;
  const cpuMs = after.cpuMs - before.cpuMs - ownUsec / 1000;
  const top = Object.entries(calls)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 10);
  return {
    seconds: round(seconds),
    commands_per_decision: round(commands / decisions, 1),
    commands_per_second: Math.round(commands / seconds),
    cpu_ms_per_decision: round(cpuMs / decisions, 2),
    cores_busy: round(cpuMs / 1000 / seconds, 3),
    by_command: Object.fromEntries(top.map(([name, n]) => [name, round(n / decisions, 1)])),
  };
}

/** Every key of the Redis, by SCAN. */
async function scanAll(redis: Redis): Promise<string[]> {
  const keys: string[] = [];
  for await (const batch of redis.scanStream({ count: 1000 })) keys.push(...(batch as string[]));
  return keys;
}

async function pipelined<T>(
  redis: Redis,
  keys: readonly string[],
  add: (p: ReturnType<Redis['pipeline']>, key: string, index: number) => void,
): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < keys.length; i += 500) {
    const p = redis.pipeline();
    keys.slice(i, i + 500).forEach((key, j) => add(p, key, i + j));
    for (const [err, value] of (await p.exec()) ?? []) {
      if (err) throw err;
      out.push(value as T);
    }
  }
  return out;
}

const LENGTH_OF: Record<string, string> = {
  stream: 'xlen',
  zset: 'zcard',
  hash: 'hlen',
  set: 'scard',
  list: 'llen',
};

/**
 * Every key as Redis sees it: MEMORY USAGE (all elements counted), entries and TTL. `brief`
 * (while decisions run) asks only the keys of `only` decisions, their bytes and their streams'
 * lengths: the commands the round's work leaves out.
 */
async function readKeys(
  redis: Redis,
  prefix: string,
  brief?: { only: ReadonlySet<string> },
): Promise<KeySample[]> {
  let keys = await scanAll(redis);
  if (brief) {
    keys = keys.filter((k) => {
      const d = classifyKey(k, prefix).decision;
      return d !== null && brief.only.has(d);
    });
  }
  const bytes = await pipelined<number | null>(redis, keys, (p, k) =>
    p.call('MEMORY', 'USAGE', k, 'SAMPLES', '0'),
  );
  if (brief) {
    const streams = new Set(
      keys.filter((k) => ['events', 'live'].includes(classifyKey(k, prefix).kind)),
    );
    const lengths = await pipelined<number>(redis, [...streams], (p, k) => p.xlen(k));
    const lengthOf = new Map([...streams].map((k, i) => [k, lengths[i]!]));
    return keys.map((key, i) => ({
      key,
      bytes: bytes[i] ?? 0,
      entries: lengthOf.get(key) ?? 1,
      ttlMs: -1,
    }));
  }
  const types = await pipelined<string>(redis, keys, (p, k) => p.type(k));
  const ttls = await pipelined<number>(redis, keys, (p, k) => p.pttl(k));
  const entries = await pipelined<number>(redis, keys, (p, k, i) => {
    const command = LENGTH_OF[types[i]!];
    if (command) p.call(command, k);
    else p.echo('1');
  });
  return keys.map((key, i) => ({
    key,
    bytes: bytes[i] ?? 0,
    entries: Number(entries[i]),
    ttlMs: ttls[i]!,
  }));
}

/** The round's decisions' keys by kind, per decision, with their TTLs. */
function footprint(
  samples: readonly KeySample[],
  prefix: string,
  ids: ReadonlySet<string>,
): Pick<FootprintRound, 'keys' | 'key_bytes_per_decision'> {
  const { decisions } = totalsByKind(samples, prefix, ids);
  const keys: Partial<Record<KeyKind, KindPerDecision>> = {};
  let all = 0;
  for (const kind of DECISION_KINDS) {
    const totals = decisions[kind];
    if (!totals) continue;
    keys[kind] = { ...perDecision(totals, ids.size), ttl_s: totals.ttl_s, no_ttl: totals.no_ttl };
    all += totals.bytes;
  }
  return { keys, key_bytes_per_decision: Math.round(all / ids.size) };
}

/** POST /decisions as a client does, with a webhook when given one; the decision's id. */
async function create(apiUrl: string, n: number, webhook: string | null): Promise<string> {
  const res = await fetch(`${apiUrl}/decisions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${BENCH_KEY}` },
    body: JSON.stringify({
      query: `Should we move billing to a managed Postgres? (footprint ${n})`,
      ...(webhook ? { webhook: { url: webhook } } : {}),
    }),
  });
  if (res.status !== 202) {
    throw new Error(`POST /decisions answered ${res.status}: ${await res.text()}`);
  }
  return ((await res.json()) as { process_id: string }).process_id;
}

/** Webhook deliveries of the decision that its record says were delivered. */
async function delivered(apiUrl: string, id: string): Promise<number> {
  const res = await fetch(`${apiUrl}/decisions/${id}`, {
    headers: { Authorization: `Bearer ${BENCH_KEY}` },
  });
  const record = (await res.json()) as {
    webhook: { deliveries: { state: string }[] } | null;
  };
  return record.webhook?.deliveries.filter((d) => d.state === 'delivered').length ?? 0;
}

/** A webhook receiver that answers every delivery 204 and counts them. */
async function startReceiver() {
  let count = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      count += 1;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    count: () => count,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * What one Redis holds and does per decision, measured from Redis itself on a server of the
 * part's own (nothing else's keys count): decisions with the offline model, then streaming from
 * the bench's model server with a client on each event stream, then a few with a short TTL to see
 * what expires and what stays. Bytes are MEMORY USAGE per key, grouped by kind, and INFO's
 * used_memory; work is INFO's commands and CPU.
 */
export async function redisFootprint(
  options: RedisFootprintOptions,
): Promise<RedisFootprintFigures> {
  const { log } = options;
  const loadBefore = loadavg()[0]!;
  const receiver = await startReceiver();
  let started: Awaited<ReturnType<typeof startModelStack>>;
  try {
    // The offline model first: the model server waits for the streaming round's worker.
    started = await startModelStack({
      binaries: options.binaries,
      bundle: options.bundle,
      modelArgs: [options.chunks, options.intervalMs],
      workerOnModel: false,
      env: {
        DECISION_TTL_SECONDS: String(TTL_SECONDS),
        // On, so that their keys exist, and high, so that they hold nothing back.
        RATE_LIMIT_PER_MINUTE: '1000000',
        LLM_REQUESTS_PER_MINUTE: '1000000',
        WEBHOOK_SECRET,
        WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
        WEBHOOK_ALLOWED_PORTS: '*',
        EVENT_STREAMS_PER_KEY: String(options.streaming + 10),
      },
    });
  } catch (err) {
    await receiver.stop();
    throw err;
  }
  const { redis: localRedis, model, stack, stop } = started;
  const redis = createRedis(localRedis.url, 30_000);
  try {
    const s = stack;
    const prefix = s.prefix;
    const api = s.api.url;
    let asked = 0;
    const warmUp = async (n: number) => {
      await closedLoop(n, n, async () => s.completion(await create(api, ++asked, null)));
    };

    log(`offline model: ${options.offline} decisions, ${options.concurrency} at a time`);
    await warmUp(3);
    const offlineIds = new Set<string>();
    const hooked = new Set<string>();
    const offlineBefore = await readCounters(redis);
    const offlineSeconds = await closedLoop(options.concurrency, options.offline, async (i) => {
      const webhook = i % 2 === 1 ? receiver.url : null;
      const id = await create(api, ++asked, webhook);
      offlineIds.add(id);
      if (webhook) hooked.add(id);
      await s.completion(id);
    });
    // Each delivery's state lands in its decision's hash once the receiver has answered.
    const pending = new Set(hooked);
    await waitFor(
      'every webhook delivery to be recorded as delivered',
      async () => {
        if (receiver.count() < hooked.size) return undefined;
        for (const id of [...pending]) if ((await delivered(api, id)) > 0) pending.delete(id);
        return pending.size === 0 ? true : undefined;
      },
      180_000,
      { intervalMs: 500 },
    );
    const offlineAfter = await readCounters(redis);
    const afterOffline = await readKeys(redis, prefix);
    const offlineWork = workBetween(offlineBefore, offlineAfter, options.offline, offlineSeconds);
    const withHook = totalsByKind(afterOffline, prefix, hooked).decisions.record;
    const plain = new Set([...offlineIds].filter((id) => !hooked.has(id)));
    const withoutHook = totalsByKind(afterOffline, prefix, plain).decisions.record;
    const offline = {
      decisions: options.offline,
      concurrency: options.concurrency,
      used_memory_per_decision: Math.round(
        (offlineAfter.usedMemory - offlineBefore.usedMemory) / options.offline,
      ),
      ...footprint(afterOffline, prefix, offlineIds),
      work: offlineWork,
    };
    log(
      `  ${offline.key_bytes_per_decision} B of keys, used_memory +${offline.used_memory_per_decision} B, ${offlineWork.cpu_ms_per_decision} ms of Redis CPU per decision`,
    );

    log(`streaming model: ${options.streaming} decisions at once, a client on each`);
    await s.restartWorker(0, model.env);
    const followAll = (n: number, onId: (id: string) => void) =>
      (async () => {
        const ids: string[] = [];
        for (let i = 0; i < n; i += 20) {
          const batch = Math.min(20, n - i);
          ids.push(
            ...(await Promise.all(Array.from({ length: batch }, () => create(api, ++asked, null)))),
          );
        }
        return ids;
      })().then((ids) =>
        Promise.all(
          ids.map(async (id) => {
            onId(id);
            const followed = await follow(api, id, []);
            if (followed.end !== 'decision.completed') {
              throw new Error(`decision ${id} ended ${followed.end ?? 'without an end event'}`);
            }
          }),
        ),
      );
    await followAll(2, () => undefined);
    const streamIds = new Set<string>();
    const streamBefore = await readCounters(redis);
    let done = false;
    const all = followAll(options.streaming, (id) => streamIds.add(id)).finally(
      () => (done = true),
    );
    const running: RunningSnapshot[] = [];
    while (!done) {
      await Promise.race([all, new Promise((resolve) => setTimeout(resolve, 4000))]);
      if (done || streamIds.size < options.streaming) continue;
      running.push(await snapshot(redis, prefix, streamIds, streamBefore.at));
      const last = running.at(-1)!;
      log(
        `  ${last.seconds} s: ${last.running} running, ${last.bytes_all} B each (${last.events_entries} events, ${last.live_entries} live entries)`,
      );
    }
    await all;
    const streamSeconds = (performance.now() - streamBefore.at) / 1000;
    const streamAfter = await readCounters(redis);
    // A request with the bench's key and one with a wrong key: the rate limit's counters (a
    // minute each) exist when the keys are read.
    await fetch(`${api}/decisions?limit=1`, { headers: { Authorization: `Bearer ${BENCH_KEY}` } });
    await fetch(`${api}/decisions?limit=1`, { headers: { Authorization: 'Bearer not-a-key' } });
    const afterStreaming = await readKeys(redis, prefix);
    const streaming = {
      decisions: options.streaming,
      chunks_per_answer: options.chunks,
      chunk_interval_ms: options.intervalMs,
      used_memory_per_decision: Math.round(
        (streamAfter.usedMemory - streamBefore.usedMemory) / options.streaming,
      ),
      ...footprint(afterStreaming, prefix, streamIds),
      work: workBetween(streamBefore, streamAfter, options.streaming, streamSeconds),
    };
    log(
      `  ${streaming.key_bytes_per_decision} B of keys, used_memory +${streaming.used_memory_per_decision} B, ${streaming.work.cpu_ms_per_decision} ms of Redis CPU per decision`,
    );

    const { shared } = totalsByKind(afterStreaming, prefix, new Set());
    // Every decision so far, warm-ups included, is in the indexes now.
    const listed = asked;
    const memoryInfo = await redis.info('memory');
    const serverInfo = await redis.info('server');
    const keyCount = await redis.dbsize();

    log(
      `expiry: ${options.expiring} decisions with DECISION_TTL_SECONDS=${options.expiryTtlSeconds}`,
    );
    await s.restartWorker(0, { DECISION_TTL_SECONDS: String(options.expiryTtlSeconds) });
    const expiring = new Set<string>();
    await closedLoop(Math.min(8, options.expiring), options.expiring, async () => {
      const id = await create(api, ++asked, null);
      expiring.add(id);
      await s.completion(id);
    });
    const ended = performance.now();
    const ownKeys = async () =>
      (await scanAll(redis)).filter((k) => {
        const d = classifyKey(k, prefix).decision;
        return d !== null && expiring.has(d);
      }).length;
    await waitFor(
      `the keys of ${options.expiring} decisions to expire`,
      async () => ((await ownKeys()) === 0 ? true : undefined),
      (options.expiryTtlSeconds + 60) * 1000,
      { intervalMs: 250 },
    );
    const goneAfter = (performance.now() - ended) / 1000;
    const indexEntries = async () => {
      const indexes = (await scanAll(redis)).filter((k) => classifyKey(k, prefix).kind === 'index');
      let left = 0;
      for (const key of indexes) {
        const scores = (await redis.call('ZMSCORE', key, ...expiring)) as (string | null)[];
        left += scores.filter((x) => x !== null).length;
      }
      return left;
    };
    const leftThen = await indexEntries();
    await s.completion(await create(api, ++asked, null));
    const leftAfterNext = await indexEntries();
    log(
      `  their keys gone ${round(goneAfter)} s after the last ended; ${leftThen} index entries left, ${leftAfterNext} after one more decision`,
    );

    const indexes = shared.index;
    return {
      date: new Date().toISOString(),
      machine: thisMachine(),
      redis_version: /redis_version:(\S+)/.exec(serverInfo)?.[1] ?? 'unknown',
      load_average: [round(loadBefore, 2), round(loadavg()[0]!, 2)],
      ttl_seconds: TTL_SECONDS,
      offline,
      webhook: {
        decisions: hooked.size,
        delivered: hooked.size - pending.size,
        record_bytes: perDecision(withHook, hooked.size).bytes,
        without_bytes: perDecision(withoutHook, plain.size).bytes,
      },
      streaming,
      running,
      shared,
      index_entries_per_decision: indexes ? round(indexes.entries / listed, 2) : 0,
      memory: {
        used_memory: field(memoryInfo, 'used_memory'),
        used_memory_rss: field(memoryInfo, 'used_memory_rss'),
        used_memory_dataset: field(memoryInfo, 'used_memory_dataset'),
        fragmentation_ratio: field(memoryInfo, 'mem_fragmentation_ratio'),
        keys: keyCount,
      },
      expiry: {
        decisions: options.expiring,
        ttl_seconds: options.expiryTtlSeconds,
        gone_after_s: round(goneAfter),
        index_entries_left: leftThen,
        index_entries_left_after_next: leftAfterNext,
      },
    };
  } finally {
    redis.disconnect();
    await stop();
    await receiver.stop();
  }
}

/** The running decisions of `ids` now: their keys' bytes and their streams' lengths. */
async function snapshot(
  redis: Redis,
  prefix: string,
  ids: ReadonlySet<string>,
  startedAt: number,
): Promise<RunningSnapshot> {
  const seconds = round((performance.now() - startedAt) / 1000);
  const samples = await readKeys(redis, prefix, { only: ids });
  // A decision's result is stored when it finishes: one without is running.
  const finished = new Set<string>();
  for (const s of samples) {
    const of = classifyKey(s.key, prefix);
    if (of.kind === 'result' && of.decision) finished.add(of.decision);
  }
  const runningIds = new Set([...ids].filter((id) => !finished.has(id)));
  const { decisions } = totalsByKind(samples, prefix, runningIds);
  const n = Math.max(1, runningIds.size);
  const bytes: Partial<Record<KeyKind, number>> = {};
  let all = 0;
  for (const kind of DECISION_KINDS) {
    const t = decisions[kind];
    if (!t) continue;
    bytes[kind] = Math.round(t.bytes / n);
    all += t.bytes;
  }
  return {
    seconds,
    running: runningIds.size,
    finished: finished.size,
    bytes,
    bytes_all: Math.round(all / n),
    events_entries: round((decisions.events?.entries ?? 0) / n, 1),
    live_entries: round((decisions.live?.entries ?? 0) / n, 1),
  };
}
