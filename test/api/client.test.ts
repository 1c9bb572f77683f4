import type { ServerResponse } from 'node:http';
import { serve, type ServerType } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type AppDeps } from '../../src/api/app';
import { DecisionService } from '../../src/api/decision-service';
import {
  DecisionApiError,
  createDecisionClient,
  type DecisionClient,
  type DecisionEvent,
  type Reconnect,
} from '../../src/client';
import { isLiveEventType } from '../../src/domain/live';
import { PHASE_NAMES } from '../../src/domain/phases';
import { createHealthCheck } from '../../src/observability/health';
import { services, testProjection, waitFor } from '../support/context';
import { scriptedOfflineModel, startOfflineWorker } from '../support/offline-worker';

Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });

async function collect(events: AsyncIterable<DecisionEvent>): Promise<DecisionEvent[]> {
  const out: DecisionEvent[] = [];
  for await (const event of events) out.push(event);
  return out;
}

/** An event as the client yields it, from an event of the API's stored stream. */
const asYielded = (e: { id: string; type: string; data: unknown }) => ({
  type: e.type,
  id: e.id,
  data: e.data,
});

describe('the typed client against the API on a socket and a real worker', () => {
  let native: NativeConnection;
  let connection: Connection;
  let temporal: Client;
  let worker: Awaited<ReturnType<typeof startOfflineWorker>>;
  let store: ReturnType<typeof testProjection>;
  let deps: AppDeps;
  const servers: ServerType[] = [];
  /** Every events response the first API has open, to drop them as a failing network would. */
  const streams = new Set<ServerResponse>();
  /** Every request the client sent. */
  const sent: Request[] = [];
  let client: DecisionClient;

  /** The API on a loopback port of its own; its URL. */
  const listen = async (overrides: Partial<AppDeps> = {}) => {
    const app = createApp({ ...deps, ...overrides });
    const server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
    });
    servers.push(server);
    const address = server.address();
    return {
      server,
      url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`,
    };
  };

  beforeAll(async () => {
    native = await NativeConnection.connect({ address: services.temporalAddress });
    connection = await Connection.connect({ address: services.temporalAddress });
    temporal = new Client({ connection });
    store = testProjection();
    worker = await startOfflineWorker(native, store, scriptedOfflineModel().model);
    deps = {
      decisions: new DecisionService({
        client: temporal,
        projection: store.projection,
        taskQueue: worker.taskQueue,
      }),
      health: createHealthCheck({ connection, redis: store.redis }),
      projection: store.projection,
      redis: store.redis,
      keyPrefix: store.prefix,
      apiKeys: null,
      maxQueryChars: 500,
      eventBlockMs: 500,
    };
    const { server, url } = await listen();
    server.on('request', (req: { url?: string }, res: ServerResponse) => {
      if (!req.url?.includes('/events')) return;
      streams.add(res);
      res.once('close', () => streams.delete(res));
    });
    client = createDecisionClient({
      baseUrl: url,
      fetch: (request) => {
        sent.push(request.clone());
        return fetch(request);
      },
    });
  });
  afterAll(async () => {
    for (const server of servers) {
      server.close();
      if ('closeAllConnections' in server) server.closeAllConnections();
    }
    await worker?.stop();
    await store?.cleanup();
    await connection?.close();
    await native?.close();
  });

  it('creates a decision and follows its events to decision.completed, as the API stored them', async () => {
    const created = await client.create({ query: 'Should the client follow its own events?' });
    expect(['pending', 'running']).toContain(created.status);
    const events = await collect(client.events(created.process_id, { deltas: false }));
    const stored = await store.projection.readEvents(created.process_id, null);
    expect(events).toEqual(stored.map(asYielded));
    expect(events.filter((e) => e.type === 'phase.started')).toHaveLength(10);
    const completed = events.flatMap((e) => (e.type === 'phase.completed' ? [e.data.phase] : []));
    expect(completed).toEqual(PHASE_NAMES);
    const end = events.at(-1);
    expect(end?.type).toBe('decision.completed');
    if (end?.type !== 'decision.completed') return;
    expect(end.data.result).toEqual(await client.result(created.process_id));
  });

  it("interleaves the model's live output, the durable events still exactly those stored", async () => {
    const created = await client.create({ query: 'Should the client show live output?' });
    const events = await collect(client.events(created.process_id));
    const durable = events.filter((e) => !isLiveEventType(e.type));
    const stored = await store.projection.readEvents(created.process_id, null);
    // With live events each id pairs the durable stream's position and the live one's.
    expect(durable.map((e) => ({ ...e, id: e.id.split('_')[0] }))).toEqual(stored.map(asYielded));
    expect(events.filter((e) => e.type === 'phase.delta').length).toBeGreaterThan(0);
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
  });

  it('resumes with Last-Event-ID after the server drops the stream: no gap, no duplicate', async () => {
    const created = await client.create({
      query: 'Should the stream survive a drop?',
      review: true,
    });
    const id = created.process_id;
    const reconnects: Reconnect[] = [];
    const events: DecisionEvent[] = [];
    let dropped: string | undefined;
    const before = sent.length;
    for await (const event of client.events(id, { onReconnect: (r) => reconnects.push(r) })) {
      events.push(event);
      if (event.type !== 'review.requested') continue;
      // The decision waits for its review: the connection is cut with nothing in flight.
      expect(streams.size).toBe(1);
      for (const res of streams) res.socket?.destroy();
      dropped = event.id;
      const review = await client.review(id, { approve: true });
      expect(review.status).toBe('approved');
    }
    expect(dropped).toBeDefined();
    expect(reconnects.length).toBeGreaterThanOrEqual(1);
    const opened = sent.slice(before).filter((r) => new URL(r.url).pathname.endsWith('/events'));
    expect(opened.map((r) => r.headers.get('last-event-id'))).toEqual([
      null,
      ...reconnects.map(() => dropped),
    ]);
    const stored = await store.projection.readEvents(id, null);
    const durable = events.filter((e) => !isLiveEventType(e.type));
    expect(durable.map((e) => ({ ...e, id: e.id.split('_')[0] }))).toEqual(stored.map(asYielded));
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    expect(events.at(-1)?.type).toBe('decision.completed');
  });

  it('lists every decision, newest first, following next_cursor over several pages', async () => {
    const made: string[] = [];
    for (const query of ['Should we page one?', 'Should we page two?', 'Should we page three?']) {
      made.push((await client.create({ query })).process_id);
    }
    // A listing reads the projection, which the workflow writes a moment after the create.
    await waitFor('the projection to list the new decisions', async () => {
      const { items } = await store.projection.list({ limit: 100 });
      return made.every((id) => items.some((d) => d.process_id === id)) ? true : undefined;
    });
    const before = sent.length;
    const listed = [];
    for await (const decision of client.list({ limit: 2 })) listed.push(decision);
    const pages = sent.slice(before).map((r) => new URL(r.url).searchParams);
    expect(pages.length).toBeGreaterThan(2);
    expect(pages[0]?.get('cursor')).toBeNull();
    expect(pages.slice(1).every((p) => p.get('cursor'))).toBe(true);
    expect(pages.every((p) => p.get('limit') === '2')).toBe(true);
    // What the projection holds: this file's decisions, under its own key prefix.
    const all = await store.projection.list({ limit: 100 });
    expect(all.next).toBeNull();
    expect(listed.map((d) => d.process_id)).toEqual(all.items.map((d) => d.process_id));
    expect(listed.length).toBeGreaterThanOrEqual(6);
    const times = listed.map((d) => Date.parse(d.created_at));
    expect(times).toEqual([...times].sort((a, b) => b - a));
  });

  it('throws what the API refuses as DecisionApiError, with the status and the problem', async () => {
    const err = await client.get('no-such-decision').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DecisionApiError);
    const refused = err as DecisionApiError;
    expect(refused.status).toBe(404);
    expect(refused.problem).toMatchObject({
      status: 404,
      title: 'Not found',
      detail: 'No decision with id no-such-decision',
    });
    expect(refused.problem.type).toMatch(/not-found$/);
    expect(refused.retryAfter).toBeUndefined();
    await expect(client.events('no-such-decision').next()).rejects.toMatchObject({ status: 404 });
  });

  it('gives the seconds of Retry-After with a rate-limited request', async () => {
    const { url } = await listen({ rateLimitPerMinute: 1 });
    const limited = createDecisionClient({ baseUrl: url });
    await limited.list().next();
    const err = (await limited
      .list()
      .next()
      .catch((e: unknown) => e)) as DecisionApiError;
    expect(err).toBeInstanceOf(DecisionApiError);
    expect(err.status).toBe(429);
    expect(err.retryAfter).toBe(Number(err.response.headers.get('retry-after')));
    expect(err.retryAfter).toBeGreaterThan(0);
  });

  it('waits, cancels, forks and retries, each as the API and Temporal then show it', async () => {
    const first = await client.create({ query: 'Should we try every route?' });
    const done = await client.wait(first.process_id, { timeout: '60s' });
    expect(done.status).toBe('completed');
    expect(done).toEqual(await client.get(first.process_id));

    const fork = await client.fork(first.process_id, { from_phase: 'draftDecision' });
    expect(fork.forked_from).toMatchObject({ process_id: first.process_id });
    const forkEvents = await collect(client.events(fork.process_id, { deltas: false }));
    expect(forkEvents.at(-1)?.type).toBe('decision.completed');

    const paused = await client.create({ query: 'Should we stop here?', review: true });
    await waitFor('the review', async () =>
      (await client.get(paused.process_id)).status === 'awaiting_review' ? true : undefined,
    );
    await client.cancel(paused.process_id);
    const pausedEvents = await collect(client.events(paused.process_id, { deltas: false }));
    expect(pausedEvents.at(-1)?.type).toBe('decision.cancelled');
    expect((await client.get(paused.process_id)).status).toBe('cancelled');

    const retried = await client.retry(first.process_id, { from_phase: 'compileResult' });
    expect(retried).toMatchObject({ process_id: first.process_id, from_phase: 'compileResult' });
    const run = await temporal.workflow.getHandle(first.process_id).describe();
    expect(run.runId).toBe(retried.new_run_id);
    expect((await client.wait(first.process_id, { timeout: '60s' })).status).toBe('completed');
  });
});
