import { Client, Connection } from '@temporalio/client';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PHASE_STATUSES, isTerminal, type DecisionRecord } from '../../src/domain/decision';
import { toEvent } from '../../src/projection/redis-projection';
import { services, testProjection, uniqueName, waitFor } from '../support/context';
import { freePort } from '../support/ports';
import { crashRole, prebuiltBundle, startRole, stopRole } from '../support/processes';
import { startRoundRobinProxy, UPSTREAM_HEADER } from '../support/round-robin-proxy';

type View = Omit<DecisionRecord, 'seq'>;
type Role = ReturnType<typeof startRole>;

const keyOf = (name: string) => `${name}-${'k'.repeat(24)}`;
const READER = keyOf('reader');
const OPERATOR = keyOf('operator');
const BURST = keyOf('burst');
const STREAMER = keyOf('streamer');
const API_KEYS = [
  `${READER}=decisions:read+decisions:write@reader`,
  `${OPERATOR}=decisions:admin@operator`,
  `${BURST}=decisions:read+decisions:write@burst`,
  `${STREAMER}=decisions:read+decisions:write@streamer`,
].join(',');

const statusRank = (status: string) =>
  ['pending', 'running', 'awaiting_review', 'completed'].indexOf(status);
const phaseRank = (status: string) => PHASE_STATUSES.indexOf(status as never);

/**
 * Where `later` went backwards from `earlier`, as a read of a decision that runs without review
 * or retry: its status, a phase's status, or its time of last update. Null when it did not.
 */
function backwards(earlier: View, later: View): string | null {
  if (statusRank(later.status) < statusRank(earlier.status)) {
    return `status ${earlier.status} -> ${later.status}`;
  }
  if (later.updated_at < earlier.updated_at) {
    return `updated_at ${earlier.updated_at} -> ${later.updated_at}`;
  }
  for (const [i, phase] of later.phases.entries()) {
    const before = earlier.phases[i]!;
    if (phaseRank(phase.status) < phaseRank(before.status)) {
      return `${phase.name} ${before.status} -> ${phase.status}`;
    }
  }
  return null;
}

describe('two API processes behind one address, sharing nothing but Redis', () => {
  let store: ReturnType<typeof testProjection>;
  let connection: Connection;
  let client: Client;
  let worker: Role;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    store = testProjection();
    connection = await Connection.connect({ address: services.temporalAddress });
    client = new Client({ connection });
    env = {
      TEMPORAL_ADDRESS: services.temporalAddress,
      TEMPORAL_TASK_QUEUE: uniqueName('multi-api'),
      REDIS_URL: services.redisUrl,
      REDIS_KEY_PREFIX: store.prefix,
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'json',
      WORKFLOW_BUNDLE_PATH: prebuiltBundle(),
      REVIEW_TIMEOUT_SECONDS: '600',
      API_KEYS,
    };
    worker = startRole('src/main/worker.ts', {
      ...env,
      // Each model answer takes a while: reads find the decision running, phase after phase.
      LLM_OFFLINE_DELAY_MS: '150',
      WORKER_HTTP_PORT: String(await freePort()),
      WORKER_SDK_METRICS_ADDRESS: `127.0.0.1:${await freePort()}`,
    });
    await waitFor(
      'the worker to poll',
      () => (worker.output().includes('Worker polling') ? true : undefined),
      90_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${worker.output()}`);
    });
  }, 150_000);

  afterAll(async () => {
    if (worker) await stopRole(worker.child);
    await store?.cleanup();
    await connection?.close();
  });

  /** Two API processes on the shared Redis and a round-robin proxy in front of them. */
  const startPair = async (settings: NodeJS.ProcessEnv) => {
    const ports = [await freePort(), await freePort()];
    const apis = ports.map((port) =>
      startRole('src/main/api.ts', { ...env, ...settings, PORT: String(port) }),
    );
    for (const [i, port] of ports.entries()) {
      await waitFor(
        `API process ${i}`,
        async () => ((await fetch(`http://127.0.0.1:${port}/health`)).ok ? true : undefined),
        60_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n${apis[i]!.output()}`);
      });
    }
    const proxy = await startRoundRobinProxy(ports.map((port) => `http://127.0.0.1:${port}`));
    return { apis, proxy };
  };

  /** A request through the one address: its status, body and which process answered. */
  const call = async (
    base: string,
    path: string,
    key: string,
    init: { method?: string; body?: unknown } = {},
  ) => {
    const res = await fetch(`${base}${path}`, {
      method: init.method ?? 'GET',
      headers: {
        Authorization: `Bearer ${key}`,
        ...(init.body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      upstream: Number(res.headers.get(UPSTREAM_HEADER)),
      body: (text ? JSON.parse(text) : null) as unknown,
    };
  };

  /** An event stream through the one address, read as it comes. */
  const openEvents = async (base: string, path: string, key: string, lastEventId?: string) => {
    const abort = new AbortController();
    const res = await fetch(`${base}${path}`, {
      headers: {
        Authorization: `Bearer ${key}`,
        ...(lastEventId ? { 'Last-Event-ID': lastEventId } : {}),
      },
      signal: abort.signal,
    });
    const events: EventSourceMessage[] = [];
    let closed = false;
    const parser = createParser({ onEvent: (e) => !closed && events.push(e) });
    const ended =
      res.status === 200 && res.body
        ? (async () => {
            const decoder = new TextDecoder();
            for await (const chunk of res.body!)
              parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
          })().then(
            () => 'ended' as const,
            () => 'cut' as const,
          )
        : Promise.resolve('refused' as const);
    if (res.status !== 200) await res.body?.cancel();
    return {
      status: res.status,
      upstream: Number(res.headers.get(UPSTREAM_HEADER)),
      res,
      events,
      ended,
      until: (what: string, done: (events: EventSourceMessage[]) => boolean, timeoutMs = 30_000) =>
        waitFor(what, () => (done(events) ? true : undefined), timeoutMs, { intervalMs: 20 }),
      /** Cuts the stream: the events it had are all it will ever have. */
      close: () => {
        closed = true;
        abort.abort();
      },
    };
  };

  /**
   * Reads a decision through the one address, again and again, until it completes (or a read is
   * not a 200, or a minute passes): every read, which process answered it, and what Redis held
   * just after it (the projection the reads come from).
   */
  const readUntilCompleted = async (base: string, id: string) => {
    const reads: { status: number; upstream: number; view: View; stored: DecisionRecord | null }[] =
      [];
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const read = await call(base, `/decisions/${id}`, READER);
      const stored = await store.projection.get(id);
      reads.push({ status: read.status, upstream: read.upstream, view: read.body as View, stored });
      if (read.status !== 200 || isTerminal(reads.at(-1)!.view.status)) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(reads.map((r) => r.status).filter((status) => status !== 200)).toEqual([]);
    expect(reads.at(-1)!.view.status).toBe('completed');
    return reads;
  };

  describe('reads and event streams', () => {
    let pair: Awaited<ReturnType<typeof startPair>>;
    beforeAll(async () => {
      // Reads poll a running decision: far more than the default limit of a key a minute.
      pair = await startPair({ RATE_LIMIT_PER_MINUTE: '100000' });
    }, 120_000);
    afterAll(async () => {
      await pair?.proxy.close();
      await Promise.all((pair?.apis ?? []).map((api) => stopRole(api.child)));
    });

    it('serves a decision created through one process from the other, and reads alternating over both never go backwards while it runs', async () => {
      const base = pair.proxy.url;
      const created = await call(base, '/decisions', READER, {
        method: 'POST',
        body: { query: 'Should two API processes serve one decision?' },
      });
      expect(created.status).toBe(202);
      const id = (created.body as View).process_id;
      const reads = await readUntilCompleted(base, id);
      // The first read after the create reached the other process, and the reads alternated.
      expect(reads[0]!.upstream).not.toBe(created.upstream);
      for (const [i, read] of reads.entries()) {
        if (i > 0) expect(read.upstream, `read ${i}`).not.toBe(reads[i - 1]!.upstream);
      }
      // The reads saw the decision run: several states, phase after phase.
      const states = new Set(reads.map((r) => r.view.updated_at));
      expect(states.size).toBeGreaterThan(3);
      expect(reads.filter((r) => r.view.status === 'running').length).toBeGreaterThan(3);
      for (const [i, read] of reads.entries()) {
        expect(read.view.process_id).toBe(id);
        if (i > 0) expect(backwards(reads[i - 1]!.view, read.view), `read ${i}`).toBeNull();
        // Never ahead of the projection read just after (a decision's first moments aside,
        // before its first write, which Temporal serves).
        if (read.stored) expect(read.stored.updated_at >= read.view.updated_at).toBe(true);
        else expect(read.view.status).toBe('pending');
      }
      const last = reads.at(-1)!.view;
      expect(last.status).toBe('completed');
      const { seq: _seq, ...stored } = (await store.projection.get(id))!;
      expect(last).toEqual(stored);

      // The result, from each process, is the workflow's own.
      const truth = (await client.workflow.getHandle(id).result()) as DecisionRecord;
      const results = [
        await call(base, `/decisions/${id}/result`, READER),
        await call(base, `/decisions/${id}/result`, READER),
      ];
      expect(new Set(results.map((r) => r.upstream))).toEqual(new Set([0, 1]));
      for (const result of results) {
        expect(result.status).toBe(200);
        expect(result.body).toEqual(JSON.parse(JSON.stringify(truth.result)));
      }
    });

    it("after a retry through one process, neither serves the old run's end again (each had it kept)", async () => {
      const base = pair.proxy.url;
      const created = await call(base, '/decisions', READER, {
        method: 'POST',
        body: { query: 'Should a retry be seen by every API process?' },
      });
      const id = (created.body as View).process_id;
      const done = (await readUntilCompleted(base, id)).at(-1)!.view;
      // Both processes serve, and so keep, the finished record.
      const kept = [await call(base, `/decisions/${id}`, READER)];
      kept.push(await call(base, `/decisions/${id}`, READER));
      expect(new Set(kept.map((r) => r.upstream))).toEqual(new Set([0, 1]));
      for (const read of kept) expect(read.body).toEqual(done);

      const asked = new Date().toISOString();
      const retried = await call(base, `/decisions/${id}/retry`, OPERATOR, {
        method: 'POST',
        body: { from_phase: 'draftDecision' },
      });
      expect(retried.status, JSON.stringify(retried.body)).toBe(202);
      const { new_run_id: newRun } = retried.body as { new_run_id: string };
      const reads = await readUntilCompleted(base, id);
      // Every read, from the first on and by either process, is the new run's: running, or its
      // own end, never the old run's.
      for (const [i, read] of reads.entries()) {
        if (read.view.status === 'completed') {
          expect(read.view.completed_at! > asked, `read ${i}: the old run's end`).toBe(true);
        }
        if (i > 0) expect(backwards(reads[i - 1]!.view, read.view), `read ${i}`).toBeNull();
      }
      // The first came from the process that did not take the retry, and both served the run.
      expect(reads[0]!.upstream).not.toBe(retried.upstream);
      expect(reads[0]!.view.status).not.toBe('completed');
      expect(new Set(reads.map((r) => r.upstream))).toEqual(new Set([0, 1]));
      // Temporal's own word: the run the retry started is the one that completed, as served. (The
      // projection has the end a moment before the run closes: its result is waited for.)
      const truth = (await client.workflow.getHandle(id, newRun).result()) as DecisionRecord;
      const description = await client.workflow.getHandle(id).describe();
      expect(description.runId).toBe(newRun);
      expect(description.status.name).toBe('COMPLETED');
      expect(reads.at(-1)!.view.completed_at).toBe(truth.completed_at);
    });

    it('resumes on the other process an event stream cut on one (Last-Event-ID), with no gap and no repeat against the stream in Redis', async () => {
      const base = pair.proxy.url;
      const created = await call(base, '/decisions', READER, {
        method: 'POST',
        body: { query: 'Should an event stream survive a change of process?', review: true },
      });
      const id = (created.body as View).process_id;
      const path = `/decisions/${id}/events?deltas=false`;
      const first = await openEvents(base, path, READER);
      expect(first.status).toBe(200);
      await first.until('four events on the first process', (events) => events.length >= 4);
      first.close();
      const cut = [...first.events];
      // Cut while the decision ran: it has not reached its review.
      expect(cut.some((e) => e.event === 'review.requested')).toBe(false);

      const rest = await openEvents(base, path, READER, cut.at(-1)!.id);
      expect(rest.status).toBe(200);
      expect(rest.upstream).not.toBe(first.upstream);
      await rest.until('the review request', (events) =>
        events.some((e) => e.event === 'review.requested'),
      );
      const reviewed = await call(base, `/decisions/${id}/review`, READER, {
        method: 'POST',
        body: { approve: true },
      });
      expect(reviewed.status, JSON.stringify(reviewed.body)).toBe(200);
      expect(await rest.ended).toBe('ended');
      expect(rest.events.at(-1)!.event).toBe('decision.completed');

      const stored = (await store.redis.xrange(store.projection.eventsKey(id), '-', '+')).map(
        toEvent,
      );
      const seen = [...cut, ...rest.events].map((e) => ({
        id: e.id,
        type: e.event,
        data: JSON.parse(e.data) as unknown,
      }));
      expect(seen).toEqual(stored);
    });
  });

  describe('limits', () => {
    const RATE = 20;
    const STREAMS = 3;
    const LEASE_SECONDS = 2;
    let pair: Awaited<ReturnType<typeof startPair>>;
    beforeAll(async () => {
      pair = await startPair({
        RATE_LIMIT_PER_MINUTE: String(RATE),
        EVENT_STREAMS_PER_KEY: String(STREAMS),
        EVENT_STREAM_LEASE_SECONDS: String(LEASE_SECONDS),
      });
    }, 120_000);
    afterAll(async () => {
      await pair?.proxy.close();
      await Promise.all((pair?.apis ?? []).map((api) => stopRole(api.child)));
    });

    it("answers 429 once a key's requests over both processes pass the limit, not each process's", async () => {
      const reads: Awaited<ReturnType<typeof call>>[] = [];
      for (let i = 0; i < RATE + 5; i++) reads.push(await call(pair.proxy.url, '/me', BURST));
      expect(reads.map((r) => r.status)).toEqual([
        ...Array<number>(RATE).fill(200),
        ...Array<number>(5).fill(429),
      ]);
      // Each process served half: neither reached the limit on its own.
      const served = (upstream: number) =>
        reads.slice(0, RATE).filter((r) => r.upstream === upstream).length;
      expect([served(0), served(1)]).toEqual([RATE / 2, RATE / 2]);
      // One count: what remains goes down by one a request, whichever process answers.
      expect(reads.slice(0, RATE).map((r) => Number(r.headers.get('RateLimit-Remaining')))).toEqual(
        Array.from({ length: RATE }, (_, i) => RATE - 1 - i),
      );
      expect(new Set(reads.slice(RATE).map((r) => r.upstream))).toEqual(new Set([0, 1]));
      for (const refused of reads.slice(RATE)) {
        expect(Number(refused.headers.get('Retry-After'))).toBeGreaterThan(0);
      }
      // Redis's count: every request of the key, refused ones too.
      const [key] = await store.redis.keys(`${store.prefix}*ratelimit*burst`);
      expect(Number(await store.redis.get(key!))).toBe(RATE + 5);
    });

    it("caps a key's event streams over both processes; a close frees a slot for the other; a killed process's streams stop counting after their lease", async () => {
      const base = pair.proxy.url;
      const created = await call(base, '/decisions', STREAMER, {
        method: 'POST',
        body: { query: 'Should one key hold streams on every process?', review: true },
      });
      expect(created.status).toBe(202);
      const path = `/decisions/${(created.body as View).process_id}/events`;
      const leaseKey = `${store.prefix}{streams:streamer}`;
      const leases = () => store.redis.zcard(leaseKey);

      // Requests take turns: A, B, A, … (A: the process the first stream reached).
      const a1 = await openEvents(base, path, STREAMER);
      const b1 = await openEvents(base, path, STREAMER);
      const a2 = await openEvents(base, path, STREAMER);
      expect([a1, b1, a2].map((s) => s.status)).toEqual([200, 200, 200]);
      const A = a1.upstream;
      const B = 1 - A;
      expect([b1.upstream, a2.upstream]).toEqual([B, A]);
      expect(await leases()).toBe(STREAMS);
      // Past the cap on either process, though each holds fewer than the cap itself.
      const refused = [
        await openEvents(base, path, STREAMER),
        await openEvents(base, path, STREAMER),
      ];
      expect(refused.map((s) => [s.upstream, s.status])).toEqual([
        [B, 429],
        [A, 429],
      ]);
      const problem = await call(base, path, STREAMER);
      expect([problem.upstream, problem.status]).toEqual([B, 429]);
      expect(problem.headers.get('Content-Type')).toContain('application/problem+json');
      expect(problem.body).toMatchObject({
        status: 429,
        detail: `This key has ${STREAMS} event streams open, the most it may; close one first`,
      });

      // A stream closed on one process frees a slot for the other, both ways.
      const slotsBack = (count: number) =>
        waitFor('the closed stream to give its slot back', async () =>
          (await leases()) === count ? true : undefined,
        );
      b1.close();
      await slotsBack(STREAMS - 1);
      const a3 = await openEvents(base, path, STREAMER);
      expect([a3.upstream, a3.status]).toEqual([A, 200]);
      a1.close();
      await slotsBack(STREAMS - 1);
      const b2 = await openEvents(base, path, STREAMER);
      expect([b2.upstream, b2.status]).toEqual([B, 200]);
      expect(await leases()).toBe(STREAMS);

      // A dies holding two of the three, without giving them back.
      await crashRole(pair.apis[A]!);
      const killed = Date.now();
      const stillCounted = await openEvents(base, path, STREAMER);
      expect([stillCounted.upstream, stillCounted.status]).toEqual([B, 429]);
      // Redis's clock says when each lease runs out; B renews its own.
      const live = async () => {
        const [seconds, micros] = await store.redis.time();
        const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
        return store.redis.zcount(leaseKey, `(${now}`, '+inf');
      };
      await waitFor(
        "the dead process's leases to run out",
        async () => ((await live()) === 1 ? true : undefined),
        4 * LEASE_SECONDS * 1000,
        { intervalMs: 50 },
      );
      const waited = Date.now() - killed;
      expect(waited).toBeLessThanOrEqual(LEASE_SECONDS * 1000 + 1000);
      const freed = await openEvents(base, path, STREAMER);
      expect([freed.upstream, freed.status]).toEqual([B, 200]);
      expect(await live()).toBe(2);
      for (const stream of [a2, a3, b2, freed]) stream.close();
    });
  });
});
