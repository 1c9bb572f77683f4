import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/api/app';
import { DecisionService } from '../../src/api/decision-service';
import { parseApiKeys } from '../../src/api/middleware/auth';
import type { DecisionRecord } from '../../src/domain/decision';
import { createOfflineModel } from '../../src/llm/offline-model';
import { createHealthCheck } from '../../src/observability/health';
import { createRedis } from '../../src/projection/redis-client';
import { DecisionProjection } from '../../src/projection/redis-projection';
import { retryWithinDeadline } from '../../src/temporal/deadlines';
import { BuildWatch } from '../../src/temporal/build-watch';
import { retryDecision } from '../../src/operations/retry';
import {
  DECISION_WORKFLOW_TYPE,
  DecisionOwnerAttribute,
  DecisionStatusAttribute,
} from '../../src/domain/workflow-api';
import type { decisionWorkflow } from '../../src/workflows';
import { ensureLocalRedis, type LocalRedis } from '../../tools/redis-dev';
import { startDevServer, type DevServer } from '../../tools/temporal/dev-server';
import { realActivities } from '../support/activities';
import { services, uniqueName, waitFor } from '../support/context';
import { freePort } from '../support/ports';

Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });

const ALICE = 'alice-key-0123456789';
const BOB = 'bob-key-0123456789ab';
const SCOPES = 'decisions:read+decisions:write';

/** Resolves with the value and how long it took, or rejects when `ms` pass first. */
async function timed<T>(ms: number, what: string, promise: Promise<T>) {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const value = await Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
  return { value, ms: performance.now() - started };
}

// A Temporal dev server and a Redis of the test's own: the one is paused with SIGSTOP (it holds
// its connections and answers nothing, as a hung frontend does), the other stopped.
describe('with Temporal paused or Redis away', () => {
  let temporal: DevServer;
  let local: LocalRedis;
  let redis: Redis;
  let native: NativeConnection;
  let connection: Connection;
  let client: Client;
  let worker: Worker;
  let running: Promise<void>;
  let app: ReturnType<typeof createApp>;
  const prefix = `${uniqueName('outage')}:`;
  const taskQueue = uniqueName('outage');
  const pauseTemporal = () => process.kill(temporal.process.pid!, 'SIGSTOP');
  const resumeTemporal = () => process.kill(temporal.process.pid!, 'SIGCONT');

  const request = (path: string, key: string, init: RequestInit = {}) =>
    app.request(path, {
      ...init,
      headers: {
        Authorization: `Bearer ${key}`,
        'Content-Type': 'application/json',
        ...(init.headers as Record<string, string> | undefined),
      },
    });
  const create = async (key: string, body: object, headers: Record<string, string> = {}) =>
    request('/decisions', key, { method: 'POST', body: JSON.stringify(body), headers });
  const awaitingReview = (id: string) =>
    waitFor(
      `${id} to await review`,
      async () => {
        const res = await request(`/decisions/${id}`, ALICE);
        const body = (await res.json()) as DecisionRecord;
        return body.status === 'awaiting_review' ? body : undefined;
      },
      60_000,
    );

  // Decisions created before the outages: alice's awaiting review (quiet), bob's completed.
  let quiet: string;
  let bobs: string;

  beforeAll(async () => {
    temporal = await startDevServer({
      cliPath: services.temporalCliPath,
      address: `127.0.0.1:${await freePort()}`,
      namespace: 'default',
      uiPort: null,
      dbFile: null,
    });
    local = await ensureLocalRedis(`redis://127.0.0.1:${await freePort()}`, null);
    redis = createRedis(local.url, 500);
    redis.on('error', () => undefined);
    const projection = new DecisionProjection(redis, { prefix, ttlSeconds: 600 });
    native = await NativeConnection.connect({ address: temporal.address });
    connection = await Connection.connect({
      address: temporal.address,
      interceptors: [retryWithinDeadline()],
    });
    client = new Client({ connection });
    worker = await Worker.create({
      connection: native,
      taskQueue,
      workflowBundle: { codePath: services.workflowBundlePath },
      activities: await realActivities(
        { redis, prefix, projection, cleanup: () => Promise.resolve() },
        createOfflineModel(),
      ),
    });
    running = worker.run();
    // As the server wires it (src/api/server.ts): creates check for live workers, status documents
    // say when a decision's build has none. Every request looks afresh (as the first one after a
    // few seconds does in production), so each pays what a look costs while Temporal is away.
    const workers = new BuildWatch(client, {
      taskQueue,
      deploymentName: taskQueue.replace(/[.:]/g, '-'),
      cacheMs: 0,
    });
    app = createApp({
      // A decision quiet for a second is checked against Temporal on read (30 s in production).
      decisions: new DecisionService({
        client,
        projection,
        taskQueue,
        staleAfterMs: 1000,
        workers,
      }),
      workers,
      health: createHealthCheck({ connection, redis, timeoutMs: 500 }),
      projection,
      redis,
      keyPrefix: prefix,
      apiKeys: parseApiKeys(`${ALICE}=${SCOPES}@alice,${BOB}=${SCOPES}@bob`),
      maxQueryChars: 500,
      rateLimitPerMinute: 0,
      authFailuresPerMinute: 0,
      eventBlockMs: 500,
    });

    const first = await create(ALICE, { query: 'Should we add a reviewer?', review: true });
    expect(first.status).toBe(202);
    quiet = ((await first.json()) as DecisionRecord).process_id;
    const second = await create(BOB, { query: 'Should bob go ahead?' });
    expect(second.status).toBe(202);
    bobs = ((await second.json()) as DecisionRecord).process_id;
    await awaitingReview(quiet);
    await client.workflow.getHandle(bobs).result();
    // Quiet: its record has not changed for longer than staleAfterMs.
    await waitFor(
      'the decision to be quiet',
      async () => {
        const record = await projection.get(quiet);
        return record && Date.now() - Date.parse(record.updated_at) > 1500 ? true : undefined;
      },
      10_000,
    );
  }, 180_000);

  afterAll(async () => {
    if (temporal?.process.pid) resumeTemporal();
    if (worker?.getState() === 'RUNNING') worker.shutdown();
    await running;
    redis?.disconnect();
    await connection?.close();
    await native?.close();
    await local?.stop();
    await temporal?.stop();
  });

  it('reads a quiet decision awaiting review within 3 s (its 2 s deadline) while Temporal is paused, marked stale', async () => {
    pauseTemporal();
    try {
      const { value: res, ms } = await timed(
        3000,
        'a read with Temporal paused',
        Promise.resolve(request(`/decisions/${quiet}`, ALICE)),
      );
      expect(res.status).toBe(200);
      const body = (await res.json()) as DecisionRecord & { stale?: boolean };
      expect(body).toMatchObject({ process_id: quiet, status: 'awaiting_review', stale: true });
      expect(ms).toBeLessThan(3000);
      // The seed's status route serves the same document.
      const seed = await timed(
        3000,
        'a seed status read with Temporal paused',
        Promise.resolve(request(`/decisions/status/${quiet}`, ALICE)),
      );
      expect(await seed.value.json()).toMatchObject({ stale: true });
    } finally {
      resumeTemporal();
    }
    // Once Temporal answers again, the same read is fresh: no marker.
    const fresh = (await (await request(`/decisions/${quiet}`, ALICE)).json()) as object;
    expect(fresh).not.toHaveProperty('stale');
  });

  it('keeps an idle event stream answering (open, then keep-alives) while Temporal is paused', async () => {
    pauseTemporal();
    const abort = new AbortController();
    try {
      const res = await timed(
        5000,
        'opening an event stream with Temporal paused',
        Promise.resolve(
          request(`/decisions/${quiet}/events?deltas=false`, ALICE, { signal: abort.signal }),
        ),
      );
      expect(res.value.status).toBe(200);
      const reader = res.value.body!.getReader();
      const decoder = new TextDecoder();
      let text = '';
      // Ticks every 0.5 s, each checking Temporal about the quiet decision: two keep-alives
      // within 10 s show no tick waits for Temporal past its deadline.
      await timed(
        10_000,
        'two keep-alives with Temporal paused',
        (async () => {
          while ((text.match(/: keep-alive/g) ?? []).length < 2) {
            const { value, done } = await reader.read();
            if (done) throw new Error(`the stream ended: ${text}`);
            text += decoder.decode(value as Uint8Array);
          }
        })(),
      );
      expect(text).toContain('event: review.requested');
      await reader.cancel();
    } finally {
      abort.abort();
      resumeTemporal();
    }
  });

  it("answers creates (within the 5 s write deadline), cancels and forks with 503 and Retry-After in the project's words while Temporal is paused; a create sent again starts one decision", async () => {
    const key = uniqueName('create');
    const body = { query: 'Should we start during an outage?' };
    pauseTemporal();
    let problems: { status: number; retryAfter: string | null; detail: string; ms: number }[];
    try {
      const started = performance.now();
      const attempts = await timed(
        15_000,
        'a create, a cancel and a fork with Temporal paused',
        Promise.all(
          [
            create(ALICE, body, { 'Idempotency-Key': key }),
            request(`/decisions/${quiet}/cancel`, ALICE, { method: 'POST' }),
            request(`/decisions/${quiet}/fork`, ALICE, {
              method: 'POST',
              body: JSON.stringify({ from_phase: 'draftDecision' }),
            }),
          ].map(async (answer) => ({ res: await answer, ms: performance.now() - started })),
        ),
      );
      problems = await Promise.all(
        attempts.value.map(async ({ res, ms }) => ({
          status: res.status,
          retryAfter: res.headers.get('Retry-After'),
          detail: ((await res.json()) as { detail: string }).detail,
          ms,
        })),
      );
    } finally {
      resumeTemporal();
    }
    // The look for live workers (2 s) and the start share the create's deadline.
    expect(problems[0]!.ms).toBeLessThan(6000);
    for (const problem of problems) {
      expect(problem.status).toBe(503);
      expect(Number(problem.retryAfter)).toBeGreaterThan(0);
      // Not Temporal's words: no gRPC status, no address.
      expect(problem.detail).not.toMatch(/deadline|grpc|UNAVAILABLE|127\.0\.0\.1|\d{4,5}/i);
    }
    expect(problems[0]!.detail).toContain('Idempotency-Key');
    expect(problems[2]!.detail).toContain('send the fork again');

    // Sent again with the same key, the create answers with one decision, which completes.
    const again = await create(ALICE, body, { 'Idempotency-Key': key });
    expect(again.status).toBe(202);
    const id = ((await again.json()) as DecisionRecord).process_id;
    const record = await client.workflow.getHandle<typeof decisionWorkflow>(id).result();
    expect(record.status).toBe('completed');
    const runs: string[] = [];
    for await (const run of client.workflow.list({ query: `WorkflowId = '${id}'` })) {
      runs.push(run.runId);
    }
    expect(runs).toHaveLength(1);
  });

  it("lists from Temporal's visibility while Redis is away: owner scoping, filters, a cursor, this deployment's decisions only, each once as its current run", async () => {
    // Another deployment sharing the namespace: its decisions run on another task queue.
    const elsewhere = uniqueName('elsewhere');
    await client.workflow.start(DECISION_WORKFLOW_TYPE, {
      taskQueue: uniqueName('other-deployment'),
      workflowId: elsewhere,
      args: [{ query: 'Not this deployment?' }],
      typedSearchAttributes: [
        { key: DecisionOwnerAttribute, value: 'alice' },
        { key: DecisionStatusAttribute, value: 'pending' },
      ],
    });
    // A decision terminated (listed as failed), then retried: visibility keeps its closed run
    // beside the running one.
    const res = await create(ALICE, { query: 'Should we retry it?', review: true });
    expect(res.status).toBe(202);
    const retried = ((await res.json()) as DecisionRecord).process_id;
    await awaitingReview(retried);
    await client.workflow.getHandle(retried).terminate('stopped by the test');
    const { new_run_id } = await retryDecision(client, retried, { fromPhase: 'draftDecision' });
    await waitFor(
      'the retried run to await review',
      async () => {
        const now = await client.workflow.getHandle(retried).describe();
        return now.runId === new_run_id &&
          now.typedSearchAttributes.get(DecisionStatusAttribute) === 'awaiting_review'
          ? true
          : undefined;
      },
      60_000,
    );
    let runs = 0;
    for await (const run of client.workflow.list({ query: `WorkflowId = '${retried}'` })) {
      expect(run.runId).toBeDefined();
      runs++;
    }
    expect(runs).toBe(2);

    await local.stop();
    const list = async (key: string, query = '') => {
      const res = await timed(
        5000,
        'a list with Redis away',
        Promise.resolve(request(`/decisions${query}`, key)),
      );
      expect(res.value.status).toBe(200);
      return (await res.value.json()) as {
        items: { process_id: string; status: string; query: string }[];
        next_cursor: string | null;
        source?: string;
      };
    };
    // What Temporal says of each of alice's decisions on this deployment: its current run's status.
    const alices: Record<string, string | undefined> = {};
    const ours = `DecisionOwner = 'alice' AND TaskQueue = '${taskQueue}'`;
    for await (const run of client.workflow.list({ query: ours })) {
      const current = await client.workflow.getHandle(run.workflowId).describe();
      alices[run.workflowId] = current.typedSearchAttributes.get(DecisionStatusAttribute);
    }
    expect(Object.keys(alices).length).toBeGreaterThanOrEqual(2);
    expect(alices[retried]).toBe('awaiting_review');

    const all = await list(ALICE);
    expect(all.source).toBe('visibility');
    expect(all.items.map((i) => i.process_id).sort()).toEqual(Object.keys(alices).sort());
    for (const item of all.items) expect(item.status).toBe(alices[item.process_id]);
    expect(all.items.find((i) => i.process_id === quiet)).toMatchObject({
      query: 'Should we add a reviewer?',
    });
    expect(all.items.map((i) => i.process_id)).not.toContain(bobs);
    expect(all.items.map((i) => i.process_id)).not.toContain(elsewhere);
    // The retried decision's terminated run is not its state any more.
    expect((await list(ALICE, '?status=failed')).items.map((i) => i.process_id)).not.toContain(
      retried,
    );

    const bob = await list(BOB, '?status=completed');
    expect(bob.items.map((i) => i.process_id)).toEqual([bobs]);
    expect((await list(BOB, '?status=awaiting_review')).items).toEqual([]);
    expect((await list(BOB, '?status=failed')).items).toEqual([]);
    // Bob's decision stopped in compileResult; it was created within the last hour.
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    const filtered = await list(
      BOB,
      `?phase=compileResult&created_after=${hourAgo}&created_before=${new Date().toISOString()}`,
    );
    expect(filtered.items.map((i) => i.process_id)).toEqual([bobs]);
    expect((await list(BOB, `?created_before=${hourAgo}`)).items).toEqual([]);

    // A page at a time through visibility's own page token.
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await list(ALICE, `?limit=1${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.items.length).toBeLessThanOrEqual(1);
      seen.push(...page.items.map((i) => i.process_id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(seen.sort()).toEqual(Object.keys(alices).sort());
  });

  it('answers a garbled visibility cursor with 400 naming the cursor', async () => {
    const first = await request('/decisions?limit=1', ALICE);
    const cursor = ((await first.json()) as { next_cursor: string | null }).next_cursor;
    expect(cursor).not.toBeNull();
    // The cursor's shape kept, its page token cut short and padded: a token Temporal never issued.
    const [tag, token, ...rest] = JSON.parse(
      Buffer.from(cursor!, 'base64url').toString(),
    ) as unknown[];
    expect(tag).toBe('v');
    const garbled = `${(token as string).slice(0, 12)}AAAA`;
    const sent = Buffer.from(JSON.stringify([tag, garbled, ...rest])).toString('base64url');
    const res = await request(`/decisions?limit=1&cursor=${sent}`, ALICE);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { detail: string }).detail).toMatch(/^cursor /);
  });

  it('answers a list with 503 and Retry-After when Redis and Temporal are both away', async () => {
    pauseTemporal();
    try {
      const { value: res } = await timed(
        8000,
        'a list with both away',
        Promise.resolve(request('/decisions', ALICE)),
      );
      expect(res.status).toBe(503);
      expect(res.headers.get('Retry-After')).toBe('5');
      expect(((await res.json()) as { detail: string }).detail).toContain("Temporal's visibility");
    } finally {
      resumeTemporal();
    }
  });
});
