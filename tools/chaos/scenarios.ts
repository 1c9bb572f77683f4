import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import type { DecisionRecord } from '../../src/domain/decision';
import type { PhaseName } from '../../src/domain/phases';
import { reconcile } from '../../src/operations/reconcile';
import { createRedis } from '../../src/projection/redis-client';
import { DecisionProjection } from '../../src/projection/redis-projection';
import { DecisionReads } from '../../src/projection/decision-reads';
import { holdFirstCall, type ModelFault } from '../../test/support/schema-instance-server';
import { waitFor } from '../../src/process/wait';
import { fuzzApi } from './api-fuzz';
import type { Stack } from './stack';
import { eachPhaseOnce } from '../../test/support/history';
import { DecisionService } from '../../src/api/decision-service';
import type { WebhookMessage } from '../../src/domain/webhook';
import { freePort } from '../process/ports';
import { startRole, stopRole } from '../../test/support/processes';
import { startStalledDns } from '../../test/support/stalled-dns';
import { startReceiver, type Answer } from '../../test/support/webhook-receiver';

/** One scenario's figures, as docs/RELIABILITY.md shows them. */
export interface Figures {
  scenario: string;
  decisions: number;
  completed: number;
  /** What else the scenario checked, in words, with its numbers. */
  checks: string[];
  ok: boolean;
  seconds: number;
}

async function timed(scenario: string, run: () => Promise<Omit<Figures, 'scenario' | 'seconds'>>) {
  const started = Date.now();
  const figures = await run();
  return { scenario, ...figures, seconds: Math.round((Date.now() - started) / 100) / 10 };
}

/** A deterministic stream of numbers in [0, 1): the same run injects the same faults. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** How many of the decisions completed, as Temporal says. */
async function completedOf(stack: Stack, ids: readonly string[]): Promise<number> {
  let completed = 0;
  for (const id of ids) if ((await stack.outcome(id)).status === 'completed') completed += 1;
  return completed;
}

/**
 * Starts `count` decisions and waits until each has called the model for `phase`; the answers
 * to those calls are held until `release`.
 */
async function decisionsHeldAt(stack: Stack, phase: PhaseName, count: number, topic: string) {
  let release!: () => void;
  const held = new Promise<void>((done) => (release = done));
  stack.model.reset({
    fault: (request) => (request.task === phase ? { kind: 'hold', until: held } : undefined),
  });
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push(await stack.decide(`Should we outlive ${topic} ${i}?`));
  await waitFor(`every decision to reach ${phase}`, () =>
    stack.model.requests.filter((r) => r.task === phase).length >= count ? true : undefined,
  );
  return { ids, release };
}

/**
 * The workers are SIGKILLed while a call for `phase` is in flight, and another takes its place: the
 * decision completes, every phase completed once in history.
 */
export function workerKilledInPhases(stack: Stack, phases: readonly PhaseName[]) {
  return timed(
    `worker SIGKILLed in ${phases.length === 10 ? 'each of the ten phases' : phases.join(', ')}`,
    async () => {
      let completed = 0;
      const checks: string[] = [];
      let once = 0;
      for (const phase of phases) {
        const { inFlight, release } = holdFirstCall(stack.model, phase);
        const id = await stack.decide(`Should we survive a crash in ${phase}?`);
        await inFlight;
        await stack.killWorkers();
        release();
        const outcome = await stack.outcome(id);
        if (outcome.status === 'completed') completed += 1;
        if (eachPhaseOnce(await stack.completedPhases(id))) once += 1;
      }
      checks.push(`${once}/${phases.length} with every phase completed once in history`);
      return {
        decisions: phases.length,
        completed,
        checks,
        ok: completed === phases.length && once === phases.length,
      };
    },
  );
}

/**
 * 429s (with Retry-After), 500s, calls that hang past LLM_TIMEOUT_MS and malformed bodies at 30 %
 * of calls: every decision completes. No call site gets more than two faults in a row, inside the
 * five attempts each phase's retry policy allows.
 */
export function modelFaults(stack: Stack, decisions: number) {
  return timed('model faults (429, 500, timeout, malformed) at 30 % of calls', async () => {
    const next = random(42);
    const row = new Map<string, number>();
    const injected: Record<string, number> = {};
    const kinds: ModelFault[] = [
      { kind: 'status', status: 429, headers: { 'retry-after': '1' } },
      { kind: 'status', status: 500 },
      { kind: 'hang' },
      { kind: 'malformed' },
    ];
    stack.model.reset({
      fault: (request) => {
        const streak = row.get(request.task) ?? 0;
        if (streak >= 2 || next() >= 0.3) {
          row.set(request.task, 0);
          return undefined;
        }
        row.set(request.task, streak + 1);
        const fault = kinds[Math.floor(next() * kinds.length)]!;
        const name = fault.kind === 'status' ? String(fault.status) : fault.kind;
        injected[name] = (injected[name] ?? 0) + 1;
        return fault;
      },
    });
    let completed = 0;
    // Two at a time, so that a call site's attempts follow one another closely.
    for (let i = 0; i < decisions; i += 2) {
      const ids = await Promise.all(
        [i, i + 1]
          .filter((n) => n < decisions)
          .map((n) => stack.decide(`Should we weather fault ${n}?`)),
      );
      completed += await completedOf(stack, ids);
    }
    const calls = stack.model.requests.length;
    const faults = Object.values(injected).reduce((a, b) => a + b, 0);
    return {
      decisions,
      completed,
      checks: [
        `${calls} model calls, ${faults} faulted (${Math.round((faults / calls) * 100)} %): ${Object.entries(
          injected,
        )
          .map(([k, v]) => `${k} ×${v}`)
          .join(', ')}`,
      ],
      ok: completed === decisions,
    };
  });
}

/** A 401 or a 400 ends the decision at once: one call, no retry. */
export function permanentFaults(stack: Stack) {
  return timed('401 and 400 from the model fail fast', async () => {
    const checks: string[] = [];
    let failedFast = 0;
    for (const status of [401, 400]) {
      stack.model.reset({
        fault: (request) =>
          request.task === 'identifyTrigger' ? { kind: 'status', status } : undefined,
      });
      const id = await stack.decide(`Should we stop at ${status}?`);
      const outcome = await stack.outcome(id);
      const calls = stack.model.requests.length;
      checks.push(`${status}: ${outcome.status} after ${calls} call`);
      if (outcome.status === 'failed' && calls === 1) failedFast += 1;
    }
    return { decisions: 2, completed: 0, checks, ok: failedFast === 2 };
  });
}

/**
 * The dev server is SIGKILLed while decisions wait for a model answer, and started again on its
 * SQLite file: every decision completes.
 */
export function temporalRestarted(stack: Stack, decisions: number) {
  return timed('Temporal dev server killed and restarted mid-run', async () => {
    const { ids, release } = await decisionsHeldAt(
      stack,
      'generateAlternatives',
      decisions,
      'Temporal',
    );
    await stack.restartTemporal();
    release();
    const completed = await completedOf(stack, ids);
    return { decisions, completed, checks: [], ok: completed === decisions };
  });
}

/**
 * Redis is paused, flushed and restarted (empty) while decisions run: none is lost in Temporal,
 * and after a reconcile every one reads completed from the projection and its event stream ends.
 */
export function redisTroubles(stack: Stack, decisions: number) {
  return timed('Redis paused, flushed and restarted mid-run, then reconciled', async () => {
    const started = new Date(Date.now() - 1000);
    const { ids, release } = await decisionsHeldAt(stack, 'draftDecision', decisions, 'Redis');
    stack.pauseRedis();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    stack.resumeRedis();
    const admin = createRedis(stack.redisUrl);
    await admin.flushall();
    admin.disconnect();
    await stack.restartRedis();
    release();
    const completed = await completedOf(stack, ids);

    const redis = createRedis(stack.redisUrl);
    const projection = new DecisionProjection(redis, { prefix: 'chaos:', ttlSeconds: 3600 });
    const report = await waitFor('visibility to list the decisions', async () => {
      const r = await reconcile({
        client: stack.client,
        reads: new DecisionReads({ client: stack.client, projection }),
        since: started,
        filter: 'TaskQueue = "chaos"',
      });
      return r.checked >= decisions ? r : undefined;
    });
    let projected = 0;
    let streamsEnded = 0;
    for (const id of ids) {
      if ((await projection.get(id))?.status === 'completed') projected += 1;
      const res = await fetch(`${stack.apiUrl}/decisions/${id}/events`);
      if ((await res.text()).includes('event: decision.completed')) streamsEnded += 1;
    }
    redis.disconnect();
    return {
      decisions,
      completed,
      checks: [
        `reconcile restored ${report.restored.length}, updated ${report.updated.length}, failed ${report.failed.length}`,
        `${projected}/${decisions} completed in the projection`,
        `${streamsEnded}/${decisions} event streams end with decision.completed`,
      ],
      ok: completed === decisions && projected === decisions && streamsEnded === decisions,
    };
  });
}

/**
 * Requests generated from the API's OpenAPI document and its schemas (fast-check), valid and
 * broken, against the real API process: no 5xx, and every 4xx a problem document.
 */
export function apiFuzzed(stack: Stack, requests: number) {
  return timed(`${requests} generated API requests, valid and invalid`, async () => {
    const report = await fuzzApi(stack.fuzzUrl, requests);
    const statuses = Object.entries(report.byStatus)
      .map(([status, n]) => `${status} ×${n}`)
      .join(', ');
    for (const hang of report.hangs.slice(0, 5)) {
      process.stderr.write(`fuzz: no answer for ${JSON.stringify(hang)}\n`);
    }
    for (const failure of [...report.serverErrors, ...report.notProblems].slice(0, 5)) {
      process.stderr.write(
        `fuzz: ${failure.status} for ${JSON.stringify(failure.probe)}: ${failure.body}\n`,
      );
    }
    return {
      decisions: 0,
      completed: 0,
      checks: [
        `${report.requests} answered: ${statuses}`,
        `${report.serverErrors.length} answers 5xx`,
        `${report.notProblems.length} answers 4xx without a problem document`,
        `${report.hangs.length} without an answer in 10 s`,
      ],
      ok:
        report.requests === requests &&
        report.serverErrors.length === 0 &&
        report.notProblems.length === 0 &&
        report.hangs.length === 0,
    };
  });
}

/**
 * The workers are SIGKILLed as soon as the answer to `phase` is in the response store, before or
 * while the attempt reports it: the decision completes, and the model is never asked for that
 * phase again (the retry, if the report was lost, reuses the stored answer).
 */
export function workerKilledAfterAnswer(stack: Stack, phases: readonly PhaseName[]) {
  return timed(
    `worker SIGKILLed after the model answered, in ${phases.length === 10 ? 'each of the ten phases' : phases.join(', ')}`,
    async () => {
      const redis = createRedis(stack.redisUrl);
      let completed = 0;
      let once = 0;
      for (const phase of phases) {
        const { inFlight, release } = holdFirstCall(stack.model, phase);
        const id = await stack.decide(`Should we keep a stored answer in ${phase}?`);
        await inFlight;
        // Every earlier phase stored its answers before it completed; the next key is this one's.
        const before = (await redis.keys(`chaos:llm:${id}:*`)).length;
        release();
        await waitFor(`the answer to ${phase} in the response store`, async () =>
          (await redis.keys(`chaos:llm:${id}:*`)).length > before ? true : undefined,
        );
        await stack.killWorkers();
        if ((await stack.outcome(id)).status === 'completed') completed += 1;
        if (stack.model.requests.filter((r) => r.task === phase).length === 1) once += 1;
      }
      redis.disconnect();
      return {
        decisions: phases.length,
        completed,
        checks: [
          `${once}/${phases.length} with one model call for the phase, none after its answer was stored`,
        ],
        ok: completed === phases.length && once === phases.length,
      };
    },
  );
}

/** A key for API_KEYS: 32 random hex characters. */
const newKey = () => randomBytes(16).toString('hex');

/** A request with a key; the response, its body unread. */
function withKey(url: string, key: string, init: RequestInit = {}): Promise<Response> {
  return fetch(url, {
    ...init,
    headers: {
      Authorization: `Bearer ${key}`,
      'Content-Type': 'application/json',
      ...(init.headers as Record<string, string> | undefined),
    },
  });
}

/**
 * Opens a GET event stream and answers with its status; with `abandon`, the client then closes
 * its socket without reading, else it keeps the stream for the caller (`socket`).
 */
function openStream(
  url: string,
  key: string,
  abandon: boolean,
): Promise<{ status: number; close: () => void }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers: { Authorization: `Bearer ${key}` }, agent: false });
    req.on('response', (res) => {
      const close = () => res.destroy();
      if (abandon || res.statusCode !== 200) close();
      resolve({ status: res.statusCode ?? 0, close });
    });
    req.on('error', reject);
    req.end();
  });
}

/** Opens streams for a key until one is refused: how many opened. */
async function streamsThatOpen(url: string, key: string, max: number) {
  const open: { close: () => void }[] = [];
  let refused = 0;
  while (open.length <= max) {
    const stream = await openStream(url, key, false);
    if (stream.status !== 200) {
      refused = stream.status;
      break;
    }
    open.push(stream);
  }
  for (const stream of open) stream.close();
  return { opened: open.length, refused };
}

/**
 * 1,000 event-stream requests for one key, half HEAD and half GETs whose client closes the socket
 * at once, 50 at a time, at a decision that runs meanwhile: afterwards the key still opens its
 * EVENT_STREAMS_PER_KEY streams (none held by the flood), and another key its own.
 */
export function streamFlood(stack: Stack, requests: number) {
  return timed(`${requests} HEAD and abandoned GET event streams`, async () => {
    const perKey = 20;
    const [a, b] = [newKey(), newKey()];
    const api = await stack.startApi({
      API_KEYS: `${a}=decisions:read+decisions:write@flood-a,${b}=decisions:read+decisions:write@flood-b`,
      AUTH_DISABLED: 'false',
      EVENT_STREAMS_PER_KEY: String(perKey),
    });
    let release!: () => void;
    const held = new Promise<void>((done) => (release = done));
    stack.model.reset({
      fault: (request) =>
        request.task === 'identifyTrigger' ? { kind: 'hold', until: held } : undefined,
    });
    try {
      const ids: string[] = [];
      for (const key of [a, b]) {
        const res = await withKey(`${api.url}/decisions`, key, {
          method: 'POST',
          body: JSON.stringify({ query: 'Should a flood of streams shut the rest out?' }),
        });
        ids.push(((await res.json()) as DecisionRecord).process_id);
      }
      const events = `${api.url}/decisions/${ids[0]}/events`;
      const byStatus: Record<string, number> = {};
      const count = (what: string) => (byStatus[what] = (byStatus[what] ?? 0) + 1);
      for (let i = 0; i < requests; i += 50) {
        await Promise.all(
          Array.from({ length: Math.min(50, requests - i) }, async (_, j) => {
            if ((i + j) % 2 === 0) {
              const res = await withKey(events, a, { method: 'HEAD' });
              count(`HEAD ${res.status}`);
            } else {
              count(`GET ${(await openStream(events, a, true)).status}`);
            }
          }),
        );
      }
      // A slot is freed when its connection closes, which the server learns a moment later.
      const after = await waitFor(
        'the flooded key to open every stream it may',
        async () => {
          const r = await streamsThatOpen(events, a, perKey);
          return r.opened === perKey ? r : undefined;
        },
        10_000,
      ).catch(() => streamsThatOpen(events, a, perKey));
      const other = await openStream(`${api.url}/decisions/${ids[1]}/events`, b, false);
      other.close();
      release();
      const completed = await completedOf(stack, ids);
      const statuses = Object.entries(byStatus)
        .sort()
        .map(([k, v]) => `${k} ×${v}`)
        .join(', ');
      // 429 is right while more than the key's slots are open at once (50 in flight, half of
      // them GETs); a HEAD says what a GET would be told. Anything else is not.
      const answered = Object.entries(byStatus)
        .filter(([k]) => / (200|429)$/.test(k))
        .reduce((n, [, v]) => n + v, 0);
      return {
        decisions: ids.length,
        completed,
        checks: [
          statuses,
          `after: ${perKey - after.opened} slots held; the key opened ${after.opened}/${perKey}, then ${after.refused}`,
          `another key's stream: ${other.status}`,
        ],
        ok:
          answered === requests &&
          after.opened === perKey &&
          after.refused === 429 &&
          other.status === 200 &&
          completed === ids.length,
      };
    } finally {
      release();
      await api.stop();
    }
  });
}

/**
 * A tenant's key is rotated while its decisions run: the API restarted with the old and the new
 * key under one name, then with the new one alone. Every decision completes and reads with the
 * new key; the old one gets 401 once removed.
 */
export function keyRotation(stack: Stack, decisions: number) {
  return timed('API key rotated while decisions run', async () => {
    const [old, rotated] = [newKey(), newKey()];
    const entry = (key: string) => `${key}=decisions:read+decisions:write@rotating`;
    const settings = (keys: string) => ({ API_KEYS: keys, AUTH_DISABLED: 'false' });
    const { inFlight, release } = holdCalls(stack, 'generateAlternatives', decisions);
    let api = await stack.startApi(settings(entry(old)));
    const ids: string[] = [];
    try {
      for (let i = 0; i < decisions; i++) {
        const res = await withKey(`${api.url}/decisions`, old, {
          method: 'POST',
          body: JSON.stringify({ query: `Should we rotate key ${i}?` }),
        });
        ids.push(((await res.json()) as DecisionRecord).process_id);
      }
      await inFlight;
      await api.stop();
      api = await stack.startApi(settings(`${entry(old)},${entry(rotated)}`));
      const readable = async (key: string) => {
        let n = 0;
        for (const id of ids) if ((await withKey(`${api.url}/decisions/${id}`, key)).ok) n += 1;
        return n;
      };
      const during = { old: await readable(old), rotated: await readable(rotated) };
      const created = await withKey(`${api.url}/decisions`, rotated, {
        method: 'POST',
        body: JSON.stringify({ query: 'Should the new key start one too?' }),
      });
      ids.push(((await created.json()) as DecisionRecord).process_id);
      await api.stop();
      api = await stack.startApi(settings(entry(rotated)));
      const oldAfter = (await withKey(`${api.url}/decisions/${ids[0]}`, old)).status;
      release();
      const completed = await completedOf(stack, ids);
      let readCompleted = 0;
      for (const id of ids) {
        const res = await withKey(`${api.url}/decisions/${id}`, rotated);
        if (res.ok && ((await res.json()) as DecisionRecord).status === 'completed') {
          readCompleted += 1;
        }
      }
      const listed = (await (await withKey(`${api.url}/decisions?limit=100`, rotated)).json()) as {
        items: DecisionRecord[];
      };
      const inList = ids.filter((id) => listed.items.some((d) => d.process_id === id)).length;
      return {
        decisions: ids.length,
        completed,
        checks: [
          `during the move: old key read ${during.old}/${decisions}, new key ${during.rotated}/${decisions}`,
          `old key after its removal: ${oldAfter}`,
          `${readCompleted}/${ids.length} read completed with the new key, ${inList}/${ids.length} in its list`,
        ],
        ok:
          during.old === decisions &&
          during.rotated === decisions &&
          oldAfter === 401 &&
          completed === ids.length &&
          readCompleted === ids.length &&
          inList === ids.length,
      };
    } finally {
      release();
      await api.stop();
    }
  });
}

/** Holds the model's answers for `phase` until `release`; `inFlight` once `count` calls wait. */
function holdCalls(stack: Stack, phase: PhaseName, count: number) {
  let release!: () => void;
  const held = new Promise<void>((done) => (release = done));
  stack.model.reset({
    fault: (request) => (request.task === phase ? { kind: 'hold', until: held } : undefined),
  });
  const inFlight = waitFor(`${count} calls for ${phase} to wait`, () =>
    stack.model.requests.filter((r) => r.task === phase).length >= count ? true : undefined,
  );
  return { inFlight, release };
}

/**
 * The Temporal dev server is SIGSTOPped (it holds every connection and answers nothing) for
 * `pauseMs` while status reads, creates and open event streams go on. Reads answer within the
 * API's 2 s deadline (a quiet decision from the projection, marked stale), creates answer 503
 * with Retry-After, and streams keep sending keep-alives; no 5xx but 503. Once Temporal is back,
 * every create that got 503 is sent again with its Idempotency-Key, and every decision completes.
 */
export function temporalPaused(
  stack: Stack,
  sizes: { reads: number; creates: number; streams: number; pauseMs: number },
) {
  const seconds = Math.round(sizes.pauseMs / 1000);
  return timed(
    `Temporal frontend paused ${seconds} s: ${sizes.reads} status reads, ${sizes.creates} creates, ${sizes.streams} open streams`,
    async () => {
      stack.model.reset();
      const api = stack.apiUrl;
      const post = (path: string, body: object, headers: Record<string, string> = {}) =>
        fetch(`${api}${path}`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', ...headers },
          body: JSON.stringify(body),
        });
      const serverErrors: Record<string, number> = {};
      const count5xx = (kind: string, status: number) => {
        if (status >= 500 && status !== 503) serverErrors[kind] = (serverErrors[kind] ?? 0) + 1;
      };
      let missingRetryAfter = 0;
      const note503 = (res: Response) => {
        if (res.status === 503 && !Number(res.headers.get('Retry-After'))) missingRetryAfter += 1;
      };

      // Decisions to read: ten awaiting review (quiet: the API asks Temporal about them), ten done.
      const reviewed: string[] = [];
      for (let i = 0; i < 10; i++) {
        const res = await post('/decisions', {
          query: `Should we wait out a pause ${i}?`,
          review: true,
        });
        reviewed.push(((await res.json()) as DecisionRecord).process_id);
      }
      const done: string[] = [];
      for (let i = 0; i < 10; i++)
        done.push(await stack.decide(`Should we read during a pause ${i}?`));
      await completedOf(stack, done);
      const records = await waitFor(
        'the decisions to await review',
        async () => {
          const all = await Promise.all(
            reviewed.map(
              async (id) =>
                (await (await fetch(`${api}/decisions/${id}`)).json()) as DecisionRecord,
            ),
          );
          return all.every((r) => r.status === 'awaiting_review') ? all : undefined;
        },
        120_000,
      );
      // The API asks Temporal about a running record once it is 30 s old.
      const quietAt = Math.max(...records.map((r) => Date.parse(r.updated_at))) + 31_000;
      await waitFor(
        'the decisions awaiting review to be quiet',
        () => (Date.now() > quietAt ? true : undefined),
        60_000,
      );

      // Event streams, open before the pause; each chunk's arrival time is kept.
      const aborts: AbortController[] = [];
      const chunkTimes: number[][] = [];
      const streamEnds: Promise<string>[] = [];
      for (let i = 0; i < sizes.streams; i++) {
        const abort = new AbortController();
        aborts.push(abort);
        const times: number[] = [];
        chunkTimes.push(times);
        const res = await fetch(
          `${api}/decisions/${reviewed[i % reviewed.length]}/events?deltas=false`,
          {
            signal: abort.signal,
          },
        );
        count5xx('stream', res.status);
        const reader = res.body!.getReader();
        streamEnds.push(
          (async () => {
            try {
              for (;;) {
                const { done: ended } = await reader.read();
                if (ended) return 'ended';
                times.push(Date.now());
              }
            } catch {
              return 'aborted';
            }
          })(),
        );
      }

      stack.pauseTemporal();
      const pausedAt = Date.now();
      let resumedAt = 0;
      const resumed = new Promise<void>((resolve) =>
        setTimeout(() => {
          stack.resumeTemporal();
          resumedAt = Date.now();
          resolve();
        }, sizes.pauseMs),
      );
      try {
        const readMs: number[] = [];
        const readOutcomes: Record<string, number> = {};
        let next = 0;
        const reader = async () => {
          while (next < sizes.reads) {
            const n = next++;
            const id = n % 2 === 0 ? reviewed[n % reviewed.length]! : done[n % done.length]!;
            const started = performance.now();
            const res = await fetch(`${api}/decisions/${id}`);
            const body = (await res.json()) as { stale?: boolean };
            readMs.push(performance.now() - started);
            count5xx('read', res.status);
            note503(res);
            const outcome =
              res.status === 200 ? (body.stale ? '200 stale' : '200') : String(res.status);
            readOutcomes[outcome] = (readOutcomes[outcome] ?? 0) + 1;
          }
        };
        const createMs: number[] = [];
        const createOutcomes: Record<string, number> = {};
        const keys = Array.from({ length: sizes.creates }, (_, i) => `pause-${pausedAt}-${i}`);
        const accepted = new Map<string, string>();
        // One create every 0.8 × pause / creates, each sent without waiting for the one before.
        const create = async (i: number) => {
          await new Promise((r) => setTimeout(r, (i * sizes.pauseMs * 0.8) / sizes.creates));
          const started = performance.now();
          const res = await post(
            '/decisions',
            { query: `Should we start in a pause ${i}?` },
            {
              'Idempotency-Key': keys[i]!,
            },
          );
          createMs.push(performance.now() - started);
          count5xx('create', res.status);
          note503(res);
          createOutcomes[res.status] = (createOutcomes[res.status] ?? 0) + 1;
          if (res.status === 202) {
            accepted.set(keys[i]!, ((await res.json()) as DecisionRecord).process_id);
          } else await res.body?.cancel();
        };
        const reading = Promise.all(Array.from({ length: 100 }, reader)).then(() => Date.now());
        await Promise.all(keys.map((_, i) => create(i)));
        const readsDoneAt = await reading;
        await resumed;

        // Sent again with its key once Temporal is back, each create answers with its decision.
        let retried = 0;
        for (const [i, key] of keys.entries()) {
          if (accepted.has(key)) continue;
          const id = await waitFor(
            `the create ${key} to be accepted`,
            async () => {
              const res = await post(
                '/decisions',
                { query: `Should we start in a pause ${i}?` },
                {
                  'Idempotency-Key': key,
                },
              );
              count5xx('create again', res.status);
              if (res.status !== 202) {
                await res.body?.cancel();
                return undefined;
              }
              return ((await res.json()) as DecisionRecord).process_id;
            },
            60_000,
          );
          accepted.set(key, id);
          retried += 1;
        }
        const ids = [...new Set(accepted.values())];
        const completed = await completedOf(stack, ids);

        // The longest silence on a stream while Temporal was paused.
        let longestGap = 0;
        for (const times of chunkTimes) {
          const during = [
            pausedAt,
            ...times.filter((t) => t > pausedAt && t < resumedAt),
            resumedAt,
          ];
          for (let i = 1; i < during.length; i++)
            longestGap = Math.max(longestGap, during[i]! - during[i - 1]!);
        }
        const open = (
          await Promise.all(streamEnds.map((end) => Promise.race([end, Promise.resolve('open')])))
        ).filter((state) => state === 'open').length;
        const fiveXX = Object.values(serverErrors).reduce((a, b) => a + b, 0);
        const list = (o: Record<string, number>) =>
          Object.entries(o)
            .map(([k, v]) => `${k} ×${v}`)
            .join(', ');
        return {
          decisions: sizes.creates,
          completed,
          checks: [
            `reads p50 ${Math.round(percentile(readMs, 0.5))} ms, p99 ${Math.round(percentile(readMs, 0.99))} ms, max ${Math.round(percentile(readMs, 1))} ms (${list(readOutcomes)}; all answered ${Math.round((readsDoneAt - pausedAt) / 1000)} s into the pause)`,
            `creates p99 ${Math.round(percentile(createMs, 0.99))} ms (${list(createOutcomes)}); ${retried} sent again with their key once Temporal was back, ${ids.length} decisions for ${keys.length} keys`,
            `${open}/${sizes.streams} streams open through the pause, longest silence ${Math.round(longestGap / 100) / 10} s (keep-alive every 15 s)`,
            `${fiveXX} answers 5xx other than 503${fiveXX ? ` (${list(serverErrors)})` : ''}; ${missingRetryAfter} 503 without Retry-After`,
          ],
          ok:
            completed === sizes.creates &&
            ids.length === sizes.creates &&
            fiveXX === 0 &&
            missingRetryAfter === 0 &&
            open === sizes.streams &&
            Math.round(percentile(readMs, 0.99)) < 3000,
        };
      } finally {
        await resumed;
        for (const abort of aborts) abort.abort();
        await Promise.all(
          reviewed.map((id) => post(`/decisions/${id}/cancel`, {}).then((r) => r.body?.cancel())),
        );
      }
    },
  );
}

/** The value below which `q` of the sorted values lie (nearest rank). */
function percentile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN;
}

const ms = (value: number) => `${Math.round(value)} ms`;

/**
 * Creates with a webhook URL whose host only a DNS server that never answers could resolve, to an
 * API process of its own (WEBHOOK_DNS_SERVERS names that server, WEBHOOK_DNS_TIMEOUT_MS=1000),
 * `creates` at once, beside as many creates without a webhook: the first answer 503 within the
 * DNS timeout and start nothing; the others answer 202 as fast as without the stalled lookups.
 */
export function dnsStalls(stack: Stack, creates: number) {
  return timed(
    `a DNS server that stalls: ${creates} creates with a webhook at once, beside ${creates} without`,
    async () => {
      const dns = await startStalledDns();
      const port = await freePort();
      const queue = `chaos-dns-${Date.now()}`;
      const api = startRole('src/main/api.ts', {
        ...stack.env,
        PORT: String(port),
        TEMPORAL_TASK_QUEUE: queue,
        WEBHOOK_SECRET: stack.webhookSecret,
        WEBHOOK_DNS_SERVERS: dns.server,
        WEBHOOK_DNS_TIMEOUT_MS: '1000',
        LOG_LEVEL: 'warn',
      });
      const url = `http://127.0.0.1:${port}`;
      try {
        await waitFor(
          'the API with the stalled DNS server',
          async () => ((await fetch(`${url}/health`)).ok ? true : undefined),
          60_000,
        );
        const post = async (body: object) => {
          const started = performance.now();
          const res = await fetch(`${url}/decisions`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify(body),
          });
          const text = await res.text();
          return { status: res.status, ms: performance.now() - started, text };
        };
        const plain = (tag: string) =>
          Promise.all(
            Array.from({ length: creates }, (_, i) => post({ query: `Plain ${tag} ${i}?` })),
          );
        const alone = await plain('alone');
        const [hooked, beside] = await Promise.all([
          Promise.all(
            Array.from({ length: creates }, (_, i) =>
              post({
                query: `Hooked ${i}?`,
                webhook: { url: `https://hooks-${i}.stalled.example/x` },
              }),
            ),
          ),
          plain('beside'),
        ]);
        const count = async () =>
          (await stack.client.workflow.count(`TaskQueue = "${queue}"`)).count;
        // Visibility lags: wait for the plain ones, then count once more.
        await waitFor('the plain creates to be visible', async () =>
          (await count()) >= 2 * creates ? true : undefined,
        );
        const started = await count();
        const unavailable = hooked.filter(
          (r) => r.status === 503 && r.text.includes('could not be resolved just now (ETIMEOUT)'),
        ).length;
        const accepted = [...alone, ...beside].filter((r) => r.status === 202).length;
        const hookedP99 = percentile(
          hooked.map((r) => r.ms),
          0.99,
        );
        const besideP99 = percentile(
          beside.map((r) => r.ms),
          0.99,
        );
        const aloneP99 = percentile(
          alone.map((r) => r.ms),
          0.99,
        );
        return {
          decisions: 0,
          completed: 0,
          checks: [
            `${unavailable}/${creates} with a webhook answered 503 (ETIMEOUT), p50 ${ms(
              percentile(
                hooked.map((r) => r.ms),
                0.5,
              ),
            )}, p99 ${ms(hookedP99)}`,
            `${accepted}/${2 * creates} without answered 202: p99 ${ms(besideP99)} beside the stalled lookups, ${ms(aloneP99)} alone`,
            `${started} decisions started (${2 * creates} expected: none for a 503)`,
            `${dns.queries.length} queries reached the stalled server`,
          ],
          ok:
            unavailable === creates &&
            hookedP99 < 2500 &&
            accepted === 2 * creates &&
            started === 2 * creates,
        };
      } finally {
        await stopRole(api.child);
        await dns.close();
      }
    },
  );
}

/**
 * Webhook deliveries, a third each to a receiver that answers 404, one that answers 500 and one
 * that never answers, each receiver a principal of its own (a decision each, started through the
 * API's own service on a queue no worker polls, so only its deliveries run). Each delivery is a
 * real delivery workflow on the stack's workers (2 s per attempt, retried for 60 s rather than
 * 24 h, a 4xx retried after 2 s and 4 s rather than 1 and 10 minutes), started as a decision's
 * would be. Counted from the receivers' recorded requests and
 * Temporal's record of each delivery; meanwhile decisions run on the same workers.
 */
export function webhookReceivers(stack: Stack, deliveries: number) {
  const kinds = [
    { principal: 'hooks-404', answer: 404 as Answer },
    { principal: 'hooks-500', answer: 500 as Answer },
    { principal: 'hooks-hang', answer: 'hold' as Answer },
  ];
  return timed(
    `${deliveries} webhook deliveries to receivers that answer 404, 500 or hang`,
    async () => {
      const receivers = await Promise.all(kinds.map((k) => startReceiver(() => k.answer)));
      const redis = createRedis(stack.redisUrl);
      const projection = new DecisionProjection(redis, { prefix: 'chaos:', ttlSeconds: 3600 });
      try {
        stack.model.reset();
        const service = new DecisionService({
          client: stack.client,
          projection,
          taskQueue: 'fuzz',
        });
        const owners = await Promise.all(
          kinds.map(async (k) => {
            const { record } = await service.start({
              caller: { principal: k.principal, admin: false },
              request: { query: `Where do ${k.principal}'s deliveries go?` },
            });
            // The first write its workflow would make, had a worker run it: deliveries report
            // to the decision's record, and only to one that exists.
            await projection.write(record);
            return record.process_id;
          }),
        );
        const decide = async (n: number, tag: string) => {
          const started = performance.now();
          const ids = await Promise.all(
            Array.from({ length: n }, (_, i) => stack.decide(`Should we decide ${tag} ${i}?`)),
          );
          const outcomes = await Promise.all(ids.map((id) => stack.outcome(id)));
          return {
            seconds: (performance.now() - started) / 1000,
            completed: outcomes.filter((o) => o.status === 'completed').length,
          };
        };
        const alone = await decide(4, 'alone');

        type Sent = { id: string; kind: number; decision: string };
        const sent: Sent[] = [];
        for (let i = 0; i < deliveries; i++) {
          const kind = i % kinds.length;
          sent.push({ id: `msg_${owners[kind]}_${i}_1`, kind, decision: owners[kind]! });
        }
        const startedAt = Date.now();
        const starting = (async () => {
          for (let at = 0; at < sent.length; at += 50) {
            await Promise.all(
              sent.slice(at, at + 50).map(({ id, kind, decision }) =>
                stack.client.workflow.start('webhookDeliveryWorkflow', {
                  taskQueue: 'chaos',
                  workflowId: id,
                  args: [
                    {
                      id,
                      decision_id: decision,
                      url: receivers[kind]!.url,
                      body: {
                        type: 'decision.completed',
                        timestamp: new Date().toISOString(),
                        decision_id: decision,
                        data: { status: 'completed' },
                      },
                      timeout_ms: 2000,
                      retry_ms: 60_000,
                    } satisfies WebhookMessage,
                  ],
                }),
              ),
            );
          }
        })();
        // Decisions beside the deliveries, once these are under way.
        await waitFor('deliveries under way', () =>
          receivers.every((r) => r.received.length > 0) ? true : undefined,
        );
        const during = await decide(4, 'beside deliveries');
        await starting;
        const running = () =>
          stack.client.workflow.count(
            'WorkflowType = "webhookDeliveryWorkflow" AND ExecutionStatus = "Running"',
          );
        await waitFor(
          'every delivery to end',
          async () => ((await running()).count === 0 ? true : undefined),
          600_000,
          { intervalMs: 2000 },
        );
        const finishedIn = (Date.now() - startedAt) / 1000;

        // What Temporal says of each: its status, and how long it took.
        const described: { status: string; seconds: number }[] = [];
        for (let at = 0; at < sent.length; at += 50) {
          described.push(
            ...(await Promise.all(
              sent.slice(at, at + 50).map(async ({ id }) => {
                const d = await stack.client.workflow.getHandle(id).describe();
                return {
                  status: d.status.name,
                  seconds: ((d.closeTime?.getTime() ?? 0) - d.startTime.getTime()) / 1000,
                };
              }),
            )),
          );
        }
        const requestsById = (kind: number) => {
          const counts = new Map<string, number>();
          for (const r of receivers[kind]!.received) {
            const id = String(r.headers['webhook-id']);
            counts.set(id, (counts.get(id) ?? 0) + 1);
          }
          return counts;
        };
        const ofKind = (kind: number) =>
          sent.map((s, i) => ({ ...s, ...described[i]! })).filter((s) => s.kind === kind);

        const k404 = ofKind(0);
        const c404 = requestsById(0);
        const threeThenFailed = k404.filter(
          (s) => c404.get(s.id) === 3 && s.status === 'FAILED',
        ).length;
        const k500 = ofKind(1);
        const c500 = requestsById(1);
        const attempts500 = k500.map((s) => c500.get(s.id) ?? 0);
        const kHang = ofKind(2);
        const cHang = requestsById(2);
        const hangErrors = await Promise.all(
          kHang.map(
            async (s) => (await projection.readDelivery(s.decision, s.id))?.delivery.last_error,
          ),
        );
        const hangTimedOut = hangErrors.filter((e) => e?.includes('No answer: timeout')).length;
        const hangSent = kHang.filter((s) => (cHang.get(s.id) ?? 0) > 0).length;
        const hangAnswered = receivers[2]!.received.filter((r) => r.answered !== null).length;
        const never = sent.length - described.filter((d) => d.status === 'FAILED').length;
        return {
          decisions: 8,
          completed: alone.completed + during.completed,
          checks: [
            `404: ${threeThenFailed}/${k404.length} sent exactly 3 times, then failed; ended in p50 ${percentile(
              k404.map((s) => s.seconds),
              0.5,
            ).toFixed(1)} s, p99 ${percentile(
              k404.map((s) => s.seconds),
              0.99,
            ).toFixed(1)} s`,
            `500: ${k500.length} retried until their 60 s ran out, attempts per delivery min ${Math.min(...attempts500)}, p50 ${percentile(attempts500, 0.5)}, max ${Math.max(...attempts500)}`,
            `hang: ${hangSent}/${kHang.length} sent (${receivers[2]!.received.length} attempts, ${hangAnswered} answered), last_error "No answer: timeout" on ${hangTimedOut}; the rest waited for their principal's share (10 per worker)`,
            `${never} deliveries not failed in the end (0 expected: none delivered, none lost)`,
            `4 decisions beside them took ${during.seconds.toFixed(1)} s, ${alone.seconds.toFixed(1)} s alone; all ${deliveries} ended ${finishedIn.toFixed(0)} s after the first start`,
          ],
          ok:
            threeThenFailed === k404.length &&
            Math.min(...attempts500) >= 2 &&
            hangAnswered === 0 &&
            hangTimedOut === hangSent &&
            never === 0 &&
            alone.completed === 4 &&
            during.completed === 4,
        };
      } finally {
        redis.disconnect();
        await Promise.all(receivers.map((r) => r.close()));
      }
    },
  );
}
