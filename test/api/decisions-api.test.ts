import {
  DECISION_EVENT_TYPES,
  DEFAULT_LIMITS,
  type DecisionEventType,
} from '../../src/domain/decision';
import { DECISION_EVENT_DATA } from '../../src/domain/events';
import { LIVE_EVENT_TYPES } from '../../src/domain/live';
import {
  DECISION_WORKFLOW_TYPE,
  DecisionOwnerAttribute,
  progressQuery,
} from '../../src/domain/workflow-api';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type AppDeps } from '../../src/api/app';
import { DecisionService, type DecisionServiceOptions } from '../../src/api/decision-service';
import { DecisionReads } from '../../src/projection/decision-reads';
import { reconcile } from '../../src/operations/reconcile';
import { createHealthCheck } from '../../src/observability/health';
import { parseApiKeys } from '../../src/api/middleware/auth';
import type { DecisionRecord } from '../../src/domain/decision';
import { PHASE_NAMES } from '../../src/domain/phases';
import { Redis } from 'ioredis';
import { services, testProjection, uniqueName, waitFor } from '../support/context';
import { scriptedOfflineModel, startOfflineWorker } from '../support/offline-worker';
import {
  keyShape,
  parseSse,
  readRecording,
  RECORDINGS,
  RERECORD,
  streamShape,
  writeRecording,
  type Recording,
} from '../support/streams';

Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });

type View = Omit<DecisionRecord, 'seq'>;
const json = { 'Content-Type': 'application/json' };

/** Reads an SSE response to its end, or until `stopAfter` events when given. */
async function readEvents(res: Response, stopAfter?: number): Promise<EventSourceMessage[]> {
  const events: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (e) => events.push(e) });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parser.feed(decoder.decode(value, { stream: true }));
    if (stopAfter !== undefined && events.length >= stopAfter) {
      await reader.cancel();
      return events.slice(0, stopAfter);
    }
  }
  return events;
}

describe('the decision API against a real worker', () => {
  let native: NativeConnection;
  let connection: Connection;
  let client: Client;
  let worker: Awaited<ReturnType<typeof startOfflineWorker>>;
  let store: ReturnType<typeof testProjection>;
  const counting = scriptedOfflineModel();
  let base: Omit<AppDeps, 'decisions'>;
  let taskQueue: string;
  let app: ReturnType<typeof createApp>;

  const service = (reviewTimeoutMs = 60_000) =>
    new DecisionService({ client, projection: store.projection, taskQueue, reviewTimeoutMs });

  beforeAll(async () => {
    native = await NativeConnection.connect({ address: services.temporalAddress });
    connection = await Connection.connect({ address: services.temporalAddress });
    client = new Client({ connection });
    store = testProjection();
    worker = await startOfflineWorker(native, store, counting.model);
    taskQueue = worker.taskQueue;
    base = {
      health: createHealthCheck({
        connection,
        redis: store.redis,
      }),
      projection: store.projection,
      redis: store.redis,
      keyPrefix: store.prefix,
      apiKeys: null,
      maxQueryChars: 500,
      eventBlockMs: 500,
    };
    app = createApp({ ...base, decisions: service() });
  });
  afterAll(async () => {
    await worker?.stop();
    await store?.cleanup();
    await connection?.close();
    await native?.close();
  });

  const create = async (body: object, headers: Record<string, string> = {}, target = app) => {
    const res = await target.request('/decisions', {
      method: 'POST',
      headers: { ...json, ...headers },
      body: JSON.stringify(body),
    });
    return { res, body: (await res.json()) as View };
  };
  const waitUntil = (id: string, status: string) =>
    waitFor(`decision ${id} to be ${status}`, async () => {
      const res = await app.request(`/decisions/${id}`);
      const view = (await res.json()) as View;
      return view.status === status ? view : undefined;
    });

  describe('create, wait, result', () => {
    it('POST /decisions?wait= creates and waits: 200 with the finished decision', async () => {
      const res = await app.request('/decisions?wait=60s', {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ query: 'Should we move billing to a managed Postgres?' }),
      });
      expect(res.status).toBe(200);
      const view = (await res.json()) as View;
      expect(view.status).toBe('completed');
      expect(res.headers.get('location')).toBe(`/decisions/${view.process_id}`);

      const result = await app.request(`/decisions/${view.process_id}/result`);
      expect(result.status).toBe(200);
      expect(await result.json()).toEqual(view.result);
    });

    it('GET /wait answers 202 with the current state when the timeout passes first', async () => {
      const { body } = await create({ query: 'Should we adopt a review step?', review: true });
      await waitUntil(body.process_id, 'awaiting_review');
      const res = await app.request(`/decisions/${body.process_id}/wait?timeout=200ms`);
      expect(res.status).toBe(202);
      expect(await res.json()).toMatchObject({ status: 'awaiting_review' });

      const result = await app.request(`/decisions/${body.process_id}/result`);
      expect(result.status).toBe(409);
      expect(await result.json()).toMatchObject({
        detail: 'The decision is awaiting_review; it has no result',
      });
      const bad = await app.request(`/decisions/${body.process_id}/wait?timeout=soon`);
      expect(bad.status).toBe(400);
      await app.request(`/decisions/${body.process_id}/cancel`, { method: 'POST' });
    });

    it('keeps context and metadata on the decision and passes the context to the agents', async () => {
      const res = await app.request('/decisions?wait=60s', {
        method: 'POST',
        headers: json,
        body: JSON.stringify({
          query: 'Should we hire two platform engineers?',
          context: 'Budget is frozen until Q3.',
          metadata: { team: 'platform' },
        }),
      });
      const view = (await res.json()) as View;
      expect(view).toMatchObject({
        status: 'completed',
        context: 'Budget is frozen until Q3.',
        metadata: { team: 'platform' },
      });
      // The model was asked with it: every phase's prompt but retrieval's, which answers one
      // information need from its passages.
      const asked = counting.prompts.filter((p) =>
        p.text.includes('Should we hire two platform engineers?'),
      );
      const withContext = new Set(
        asked
          .filter((p) => p.text.includes('Context from the asker: Budget is frozen until Q3.'))
          .map((p) => p.task),
      );
      expect(withContext).toEqual(new Set(PHASE_NAMES.filter((p) => p !== 'retrieveInformation')));
    });
  });

  describe('idempotency', () => {
    it('two concurrent creates with the same key yield one workflow and the same decision', async () => {
      const key = uniqueName('idem');
      const body = { query: 'Should we consolidate our queues?' };
      const [a, b] = await Promise.all([
        create(body, { 'Idempotency-Key': key }),
        create(body, { 'Idempotency-Key': key }),
      ]);
      expect([a.res.status, b.res.status]).toEqual([202, 202]);
      expect(a.body.process_id).toBe(b.body.process_id);
      const runs = [];
      for await (const run of client.workflow.list({
        query: `WorkflowId = "${a.body.process_id}"`,
      })) {
        runs.push(run);
      }
      expect(runs).toHaveLength(1);

      const again = await create(body, { 'Idempotency-Key': key });
      expect(again.body.process_id).toBe(a.body.process_id);
    });

    it('takes a body whose metadata keys come in another order as the same request', async () => {
      const key = uniqueName('idem');
      const first = await create(
        { query: 'Should we A?', metadata: { team: 'billing', owner: 'ana' } },
        { 'Idempotency-Key': key },
      );
      const again = await create(
        { metadata: { owner: 'ana', team: 'billing' }, query: 'Should we A?' },
        { 'Idempotency-Key': key },
      );
      expect(first.res.status).toBe(202);
      expect(again.res.status).toBe(202);
      expect(again.body.process_id).toBe(first.body.process_id);
    });

    it('answers 422 when the same key comes with a different body', async () => {
      const key = uniqueName('idem');
      await create({ query: 'Should we A?' }, { 'Idempotency-Key': key });
      const { res, body } = await create({ query: 'Should we B?' }, { 'Idempotency-Key': key });
      expect(res.status).toBe(422);
      expect(body).toMatchObject({
        detail: 'This Idempotency-Key was already used with a different request body',
      });
    });
  });

  describe('budget', () => {
    it('fails the decision at the call that would pass its budget, which is never made', async () => {
      // A worker and a model of its own, so that the model's count is this decision's alone.
      const own = scriptedOfflineModel();
      const ownWorker = await startOfflineWorker(native, store, own.model);
      const ownApp = createApp({
        ...base,
        decisions: new DecisionService({
          client,
          projection: store.projection,
          taskQueue: ownWorker.taskQueue,
        }),
      });
      const calls = (phase: string) => own.calls[phase] ?? 0;
      const { res, body } = await create(
        { query: 'Should we move billing to a managed Postgres?', budget: { max_model_calls: 2 } },
        {},
        ownApp,
      );
      expect(res.status).toBe(202);
      expect(body.budget).toEqual({
        max_model_calls: 2,
        max_tokens: DEFAULT_LIMITS.budget.max_tokens,
      });
      const failed = await waitUntil(body.process_id, 'failed');
      expect(failed.error).toMatchObject({
        phase: 'defineScope',
        type: 'BudgetExceeded',
        message: expect.stringContaining('spent 2 of 2 model calls'),
      });
      // The model's own count: two calls made, none for the phase that would have passed it.
      expect([calls('identifyTrigger'), calls('analyzeRootCause'), calls('defineScope')]).toEqual([
        1, 1, 0,
      ]);
      await ownWorker.stop();
    });

    it('refuses a budget above the server maximum with a 400 that names it', async () => {
      const { res, body } = await create({
        query: 'Should we?',
        budget: { max_model_calls: DEFAULT_LIMITS.budget.max_model_calls + 1 },
      });
      expect(res.status).toBe(400);
      expect(JSON.stringify(body)).toContain(
        `must be at most ${DEFAULT_LIMITS.budget.max_model_calls}, this server's maximum (DECISION_MAX_MODEL_CALLS)`,
      );
    });
  });

  describe('decisions ended in Temporal, not by their workflow', () => {
    // Reads check Temporal at once, not after 30 quiet seconds.
    const eager = (options: Partial<DecisionServiceOptions> = {}) =>
      createApp({
        ...base,
        decisions: new DecisionService({
          client,
          projection: store.projection,
          taskQueue,
          staleAfterMs: 0,
          ...options,
        }),
      });
    const awaitingReview = async (target: ReturnType<typeof createApp>) => {
      const { body } = await create({ query: 'Should we end this?', review: true }, {}, target);
      await waitUntil(body.process_id, 'awaiting_review');
      return body.process_id;
    };

    it('reads a terminated decision as failed (Terminated) on GET, wait and the event stream', async () => {
      const ended = eager();
      const id = await awaitingReview(ended);
      const stream = ended.request(`/decisions/${id}/events`);
      await client.workflow.getHandle(id).terminate('stopped by an operator');

      const waited = await ended.request(`/decisions/${id}/wait?timeout=10s`);
      expect(waited.status).toBe(200);
      const view = (await waited.json()) as View;
      expect(view).toMatchObject({
        status: 'failed',
        error: {
          type: 'Terminated',
          phase: 'draftDecision',
          message: 'The workflow was terminated: stopped by an operator',
        },
      });
      const events = await readEvents(await stream);
      expect(events.at(-1)).toMatchObject({ event: 'decision.failed' });
      expect(JSON.parse(events.at(-1)!.data)).toMatchObject({ error: { type: 'Terminated' } });
      // The projection has the end now, with the TTL of a finished decision.
      expect(await store.projection.get(id)).toMatchObject({ status: 'failed' });
      expect(await store.redis.ttl(store.projection.recordKey(id))).toBeGreaterThan(0);
    });

    it('keeps what the projection knew when no worker answers for a terminated decision', async () => {
      // A query deadline of 1 ms: Temporal's description alone says how it ended.
      const coarse = eager({ queryTimeoutMs: 1 });
      const { body } = await create(
        { query: 'Should we keep the details?', context: 'CONTEXT-MARK', review: true },
        {},
        coarse,
      );
      await waitUntil(body.process_id, 'awaiting_review');
      await client.workflow.getHandle(body.process_id).terminate('no workers today');
      const view = (await (await coarse.request(`/decisions/${body.process_id}`)).json()) as View;
      expect(view).toMatchObject({
        status: 'failed',
        context: 'CONTEXT-MARK',
        error: { type: 'Terminated', message: 'The workflow was terminated: no workers today' },
      });
      expect(view.phases[0]!.duration_ms).not.toBeNull();
      expect((await store.projection.get(body.process_id))!.context).toBe('CONTEXT-MARK');
    });

    it('reads a timed-out decision as failed (TimedOut)', async () => {
      const id = uniqueName('timeout');
      // No worker polls this queue: the decision never starts, and times out after a second.
      await client.workflow.start(DECISION_WORKFLOW_TYPE, {
        taskQueue: uniqueName('nobody'),
        workflowId: id,
        args: [{ query: 'Too slow?' }],
        workflowExecutionTimeout: '1 second',
      });
      await waitFor('the workflow to time out', async () => {
        const d = await client.workflow.getHandle(id).describe();
        return d.status.name === 'TIMED_OUT' ? true : undefined;
      });
      const res = await eager().request(`/decisions/${id}`);
      expect(await res.json()).toMatchObject({
        status: 'failed',
        error: { type: 'TimedOut', message: 'The workflow timed out' },
      });
    });

    it('reconcile writes a terminated end over the stale record, once, with its event', async () => {
      const id = await awaitingReview(app);
      await client.workflow.getHandle(id).terminate('cleanup');
      const run = () =>
        reconcile({
          client,
          reads: new DecisionReads({ client, projection: store.projection }),
          since: new Date(Date.now() - 600_000),
          filter: `WorkflowId = "${id}"`,
        });
      const first = await waitFor('visibility to list the decision', async () => {
        const report = await run();
        return report.checked > 0 ? report : undefined;
      });
      expect(first.updated).toEqual([id]);
      expect(await store.projection.get(id)).toMatchObject({
        status: 'failed',
        error: { type: 'Terminated' },
      });
      expect(await store.redis.ttl(store.projection.recordKey(id))).toBeGreaterThan(0);
      expect((await run()).unchanged).toBe(1);
      const ends = (await store.projection.readEvents(id, null)).filter(
        (e) => e.type === 'decision.failed',
      );
      expect(ends).toHaveLength(1);
    });
  });

  describe('list', () => {
    it('pages newest first with a cursor and filters by status and phase', async () => {
      const listApp = createApp({ ...base, decisions: service() });
      const ids: string[] = [];
      for (const q of ['Should we list one?', 'Should we list two?', 'Should we list three?']) {
        const res = await listApp.request('/decisions?wait=60s', {
          method: 'POST',
          headers: json,
          body: JSON.stringify({ query: q }),
        });
        ids.push(((await res.json()) as View).process_id);
      }
      const since = encodeURIComponent(new Date(Date.now() - 60_000).toISOString());
      const page1 = (await (
        await listApp.request(`/decisions?limit=2&status=completed&created_after=${since}`)
      ).json()) as { items: View[]; next_cursor: string | null };
      expect(page1.items).toHaveLength(2);
      expect(page1.next_cursor).not.toBeNull();
      const all: string[] = page1.items.map((i) => i.process_id);
      let cursor = page1.next_cursor;
      while (cursor) {
        const page = (await (
          await listApp.request(`/decisions?limit=2&status=completed&cursor=${cursor}`)
        ).json()) as { items: View[]; next_cursor: string | null };
        all.push(...page.items.map((i) => i.process_id));
        cursor = page.next_cursor;
      }
      expect(new Set(all).size).toBe(all.length);
      // Newest first: the three just made lead, in reverse order of creation.
      expect(all.filter((id) => ids.includes(id))).toEqual([...ids].reverse());

      const byPhase = (await (
        await listApp.request('/decisions?phase=compileResult&limit=100')
      ).json()) as { items: View[] };
      expect(byPhase.items.length).toBeGreaterThan(0);
      expect(byPhase.items.every((i) => i.current_phase === 'compileResult')).toBe(true);

      const none = (await (
        await listApp.request('/decisions?status=cancelled&phase=identifyTrigger')
      ).json()) as {
        items: View[];
      };
      expect(none.items).toEqual([]);
      for (const bad of [
        'status=done',
        'phase=thinking',
        'limit=0',
        'cursor=nope',
        'created_after=yesterday',
      ]) {
        const res = await listApp.request(`/decisions?${bad}`);
        expect(res.status, bad).toBe(400);
      }
    });
  });

  describe('events (SSE)', () => {
    it('tells the whole story to a client that connects after the end', async () => {
      const { body } = await create({ query: 'Should we stream events?' });
      await waitUntil(body.process_id, 'completed');
      const res = await app.request(`/decisions/${body.process_id}/events`);
      expect(res.headers.get('content-type')).toContain('text/event-stream');
      const events = await readEvents(res);

      expect(events[0]).toMatchObject({ event: 'decision.started' });
      expect(events.at(-1)).toMatchObject({ event: 'decision.completed' });
      const completed = events.filter((e) => e.event === 'phase.completed');
      expect(completed.map((e) => (JSON.parse(e.data) as { phase: string }).phase)).toEqual(
        PHASE_NAMES,
      );
      expect(JSON.parse(completed[0]!.data)).toHaveProperty('output.trigger');
      expect(events.filter((e) => e.event === 'phase.started')).toHaveLength(10);
    });

    it("streams the events the decide client's recordings hold, in the same shape", async () => {
      const quickReview = createApp({ ...base, decisions: service(1500) });
      // The recordings are the durable stream, as deltas=false gives it.
      const body = async (id: string) =>
        (await app.request(`/decisions/${id}/events?deltas=false`)).text();
      // Each story as the decide client follows it, to its end.
      const stories: Record<Recording, () => Promise<string>> = {
        reviewed: async () => {
          const { body: created } = await create({
            query: 'Should we move billing to a managed Postgres?',
            review: true,
          });
          await waitUntil(created.process_id, 'awaiting_review');
          await app.request(`/decisions/${created.process_id}/review`, {
            method: 'POST',
            headers: json,
            body: JSON.stringify({ feedback: 'Check the month-end freeze before any cut-over.' }),
          });
          return body(created.process_id);
        },
        reviewTimedOut: async () => {
          const { body: created } = await create(
            { query: 'Should we wait for a reviewer?', review: true },
            {},
            quickReview,
          );
          return body(created.process_id);
        },
        failed: async () => {
          const { body: created } = await create({
            query: 'Should we spend more than we may?',
            budget: { max_model_calls: 2 },
          });
          return body(created.process_id);
        },
        cancelled: async () => {
          const { body: created } = await create({ query: 'Should we cancel?', review: true });
          await waitUntil(created.process_id, 'awaiting_review');
          await app.request(`/decisions/${created.process_id}/cancel`, { method: 'POST' });
          return body(created.process_id);
        },
      };
      const names = Object.keys(RECORDINGS) as Recording[];
      const streams = await Promise.all(names.map((name) => stories[name]()));

      for (const [i, name] of names.entries()) {
        const live = parseSse(streams[i]!);
        // The domain's schemas describe the wire exactly: every event reads, and no key is left out.
        for (const frame of live) {
          const where = `${name}: ${frame.event} ${frame.id}`;
          expect(DECISION_EVENT_TYPES, where).toContain(frame.event);
          const data: unknown = JSON.parse(frame.data);
          const parsed = DECISION_EVENT_DATA[frame.event as DecisionEventType].safeParse(data);
          expect(parsed.error?.issues, where).toBeUndefined();
          expect(keyShape(parsed.data), `${where}: a key its schema does not declare`).toEqual(
            keyShape(data),
          );
        }
        if (process.env.RECORD_STREAMS === '1') writeRecording(name, streams[i]!);
        // Re-recorded or not, the file must now have the shape of what the server streams.
        expect(
          streamShape(live),
          `${RECORDINGS[name]} no longer has the shape of what the server streams. ` +
            `If the change is intended, re-record: ${RERECORD}`,
        ).toEqual(streamShape(readRecording(name)));
      }
      // Together the recordings hold every event the client may be sent.
      const recorded = new Set(names.flatMap((name) => readRecording(name).map((f) => f.event)));
      expect([...recorded].sort()).toEqual([...DECISION_EVENT_TYPES].sort());
    });

    it("interleaves each running phase's model output, whole, between its start and its end", async () => {
      const query = 'Should we stream the model output live?';
      const { body } = await create({ query });
      await waitUntil(body.process_id, 'completed');
      const events = await readEvents(await app.request(`/decisions/${body.process_id}/events`));
      type Delta = { phase: string; need: string | null; attempt: number; call: number };
      type DeltaData = Delta & { offset: number; text: string; partial: unknown };
      const texts = new Map<string, { phase: string; text: string; partial: unknown }>();
      const running = new Set<string>();
      for (const e of events) {
        const data = JSON.parse(e.data) as DeltaData;
        if (e.event === 'phase.started') running.add(data.phase);
        if (e.event === 'phase.completed') running.delete(data.phase);
        if (e.event !== 'phase.delta') continue;
        // Only while its phase runs.
        expect(running.has(data.phase), `${data.phase} is running`).toBe(true);
        const key = `${data.phase}|${data.need}|${data.attempt}|${data.call}`;
        const known = texts.get(key) ?? { phase: data.phase, text: '', partial: null };
        expect(data.offset).toBe(known.text.length);
        texts.set(key, { phase: data.phase, text: known.text + data.text, partial: data.partial });
      }
      // What the model answered this decision, call by call (retrieval's prompts carry the
      // need, not the question: one call per need).
      const answered = counting.answers.filter(
        (a) => a.prompt.includes(query) || a.task === 'retrieveInformation',
      );
      for (const phase of PHASE_NAMES) {
        const streamed = [...texts.values()].filter((t) => t.phase === phase);
        expect(streamed.length, phase).toBeGreaterThan(0);
        for (const { text, partial } of streamed) {
          expect(answered.map((a) => a.text)).toContain(text);
          // The last delta's partial answer is the whole answer.
          expect(partial).toEqual(JSON.parse(text));
        }
      }
      // The durable events are the same as without the live ones, in the same order.
      const durable = await readEvents(
        await app.request(`/decisions/${body.process_id}/events?deltas=false`),
      );
      const live = new Set<string>(LIVE_EVENT_TYPES);
      expect(events.filter((e) => !live.has(e.event!)).map((e) => e.data)).toEqual(
        durable.map((e) => e.data),
      );
      // ...with their ids as Redis stores them.
      const stored = await store.redis.xrange(
        store.projection.eventsKey(body.process_id),
        '-',
        '+',
      );
      expect(durable.map((e) => e.id)).toEqual(stored.map(([id]) => id));
      expect((await app.request(`/decisions/${body.process_id}/events?deltas=maybe`)).status).toBe(
        400,
      );
    });

    it('resumes in the middle of the model output with no gap and no duplicate', async () => {
      const { body } = await create({ query: 'Should we resume in the middle of a delta?' });
      await waitUntil(body.process_id, 'completed');
      const url = `/decisions/${body.process_id}/events`;
      const whole = await readEvents(await app.request(url));
      // Cut right after each kind: a delta followed by a delta, a delta followed by a durable
      // event, and a durable event followed by a delta.
      const cuts = [
        whole.findIndex(
          (e, i) => e.event === 'phase.delta' && whole[i + 1]?.event === 'phase.delta',
        ),
        whole.findIndex(
          (e, i) => e.event === 'phase.delta' && whole[i + 1]?.event !== 'phase.delta',
        ),
        whole.findIndex(
          (e, i) => e.event !== 'phase.delta' && whole[i + 1]?.event === 'phase.delta',
        ),
      ];
      for (const cut of cuts) {
        expect(cut).toBeGreaterThanOrEqual(0);
        const rest = await readEvents(
          await app.request(url, { headers: { 'Last-Event-ID': whole[cut]!.id! } }),
        );
        expect([...whole.slice(0, cut + 1), ...rest]).toEqual(whole);
      }
    });

    it('resumes after Last-Event-ID with no gap and no duplicate', async () => {
      const { body } = await create({ query: 'Should we resume streams?' });
      const first = await readEvents(await app.request(`/decisions/${body.process_id}/events`), 5);
      const rest = await readEvents(
        await app.request(`/decisions/${body.process_id}/events`, {
          headers: { 'Last-Event-ID': first.at(-1)!.id! },
        }),
      );
      const whole = await readEvents(await app.request(`/decisions/${body.process_id}/events`));
      expect([...first, ...rest].map((e) => e.id)).toEqual(whole.map((e) => e.id));
      expect(whole.at(-1)!.event).toBe('decision.completed');

      // Resuming after the end: 204, so an EventSource stops reconnecting.
      const after = await app.request(`/decisions/${body.process_id}/events`, {
        headers: { 'Last-Event-ID': whole.at(-1)!.id! },
      });
      expect(after.status).toBe(204);

      for (const id of ['not-an-id', `${'9'.repeat(40)}-0`, '1-1; drop']) {
        const bad = await app.request(`/decisions/${body.process_id}/events`, {
          headers: { 'Last-Event-ID': id },
        });
        expect(bad.status, id).toBe(400);
      }
      expect((await app.request('/decisions/unknown/events')).status).toBe(404);
    });
  });

  it('caps the event streams one caller holds open (auth off: its address): 429 past it, room again once one closes', async () => {
    const capped = createApp({ ...base, decisions: service(), maxStreamsPerKey: 2 });
    const { body } = await create({ query: 'Should we cap streams?', review: true }, {}, capped);
    await waitUntil(body.process_id, 'awaiting_review');
    const open = () => capped.request(`/decisions/${body.process_id}/events`);
    const [a, b] = [await open(), await open()];
    expect([a.status, b.status]).toEqual([200, 200]);
    const refused = await open();
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({
      detail: 'This address has 2 event streams open, the most it may; close one first',
    });
    await readEvents(a, 1);
    const again = await waitFor('a stream slot to free up', async () => {
      const res = await open();
      if (res.status === 200) return res;
      await res.body?.cancel();
      return undefined;
    });
    await readEvents(again, 1);
    await readEvents(b, 1);
    await capped.request(`/decisions/${body.process_id}/cancel`, { method: 'POST' });
  });

  describe('cancel', () => {
    it('during review cancels the decision and leaves the completed draft completed', async () => {
      const { body } = await create({ query: 'Should we cancel in review?', review: true });
      await waitUntil(body.process_id, 'awaiting_review');
      const res = await app.request(`/decisions/${body.process_id}/cancel`, { method: 'POST' });
      expect(res.status).toBe(200);
      const record = (await res.json()) as View;
      expect(record.status).toBe('cancelled');
      const status = Object.fromEntries(record.phases.map((p) => [p.name, p.status]));
      expect(status).toMatchObject({ draftDecision: 'completed', updateDraft: 'pending' });
      // Temporal's own record agrees.
      const queried = await client.workflow.getHandle(body.process_id).query(progressQuery);
      expect(queried.phases.find((p) => p.name === 'draftDecision')!.status).toBe('completed');
    });

    it('answers 409, not 500, to a cancel that races the end of the decision', async () => {
      const { body } = await create({ query: 'Should we race the end?' });
      await waitUntil(body.process_id, 'completed');
      // The API still reads it as running (a projection a moment behind) when the cancel arrives.
      const behind = await store.projection.get(body.process_id);
      await store.projection.write({
        ...behind!,
        status: 'running',
        completed_at: null,
        result: null,
        updated_at: new Date().toISOString(),
        seq: behind!.seq + 1,
      });
      const res = await app.request(`/decisions/${body.process_id}/cancel`, { method: 'POST' });
      expect(res.status).toBe(409);
      // The projection said running: the end it answers with was read from Temporal.
      expect(await res.json()).toMatchObject({ detail: 'The decision has already completed' });
    });
  });

  describe('human review', () => {
    it('pauses after the draft; feedback is delivered as an update and revises the draft', async () => {
      const { body } = await create({
        query: 'Should we move billing to a managed Postgres?',
        review: true,
      });
      const paused = await waitUntil(body.process_id, 'awaiting_review');
      expect(paused.current_phase).toBe('draftDecision');
      expect(paused.review.status).toBe('awaiting');

      for (const bad of [
        {},
        { approve: false },
        { approve: true, feedback: 'x' },
        { feedback: '  ' },
      ]) {
        const res = await app.request(`/decisions/${body.process_id}/review`, {
          method: 'POST',
          headers: json,
          body: JSON.stringify(bad),
        });
        expect(res.status, JSON.stringify(bad)).toBe(400);
      }
      const review = await app.request(`/decisions/${body.process_id}/review`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ feedback: 'Check the month-end freeze before any cut-over.' }),
      });
      expect(review.status).toBe(200);
      expect(await review.json()).toMatchObject({
        status: 'feedback',
        feedback: 'Check the month-end freeze before any cut-over.',
      });
      // Read your writes: the very next read shows the review, not the pause.
      const after = (await (await app.request(`/decisions/status/${body.process_id}`)).json()) as {
        status: string;
        review: { status: string };
      };
      expect(after.review.status).toBe('feedback');
      expect(after.status).not.toBe('awaiting_review');
      const second = await app.request(`/decisions/${body.process_id}/review`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ approve: true }),
      });
      expect(second.status).toBe(409);

      const done = await waitUntil(body.process_id, 'completed');
      expect(done.review).toMatchObject({
        status: 'feedback',
        feedback: 'Check the month-end freeze before any cut-over.',
      });
      expect(done.result!.phases.updateDraft.critique[0]).toBe(
        'Reviewer feedback: Check the month-end freeze before any cut-over.',
      );
      const events = await readEvents(await app.request(`/decisions/${body.process_id}/events`));
      const types = events.map((e) =>
        `${e.event} ${(JSON.parse(e.data) as { phase?: string }).phase ?? ''}`.trim(),
      );
      const at = (t: string) => types.indexOf(t);
      expect(at('phase.completed draftDecision')).toBeGreaterThan(-1);
      expect(at('phase.completed draftDecision')).toBeLessThan(
        at('review.requested draftDecision'),
      );
      expect(at('review.requested draftDecision')).toBeLessThan(at('review.received'));
      expect(at('review.received')).toBeLessThan(at('phase.started updateDraft'));
    });

    it('rejects a review of a decision that did not ask for one, with 409', async () => {
      const { body } = await create({ query: 'Should we skip review?' });
      await waitUntil(body.process_id, 'completed');
      const res = await app.request(`/decisions/${body.process_id}/review`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ approve: true }),
      });
      expect(res.status).toBe(409);
    });

    it('continues with self-critique when the review times out, and says so', async () => {
      const quick = createApp({ ...base, decisions: service(1500) });
      const { body } = await create(
        { query: 'Should we wait for a reviewer?', review: true },
        {},
        quick,
      );
      const done = await waitUntil(body.process_id, 'completed');
      expect(done.review.status).toBe('timed_out');
      expect(done.result!.phases.updateDraft.critique).toContain(
        'No reviewer answered in time; this is self-critique.',
      );
      const events = await readEvents(await app.request(`/decisions/${body.process_id}/events`));
      expect(events.map((e) => e.event)).toContain('review.timed_out');
    });
  });

  describe('cancel', () => {
    it('cancels a running decision; a second cancel is a 409', async () => {
      const { body } = await create({ query: 'Should we cancel this?', review: true });
      await waitUntil(body.process_id, 'awaiting_review');
      const res = await app.request(`/decisions/${body.process_id}/cancel`, { method: 'POST' });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ status: 'cancelled' });
      const again = await app.request(`/decisions/${body.process_id}/cancel`, { method: 'POST' });
      expect(again.status).toBe(409);
      const events = await readEvents(await app.request(`/decisions/${body.process_id}/events`));
      expect(events.at(-1)!.event).toBe('decision.cancelled');
    });
  });

  describe('fork', () => {
    it('reruns only the phases from from_phase, reusing the earlier outputs (counted)', async () => {
      const source = (await (
        await app.request('/decisions?wait=60s', {
          method: 'POST',
          headers: json,
          body: JSON.stringify({ query: 'Should we fork decisions?' }),
        })
      ).json()) as View;
      const before = { ...counting.calls };
      const res = await app.request(`/decisions/${source.process_id}/fork`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ from_phase: 'generateAlternatives' }),
      });
      expect(res.status).toBe(202);
      const fork = (await res.json()) as View;
      expect(fork.forked_from).toEqual({
        process_id: source.process_id,
        from_phase: 'generateAlternatives',
      });
      const done = await waitUntil(fork.process_id, 'completed');

      const callsFor = (phase: string) => (counting.calls[phase] ?? 0) - (before[phase] ?? 0);
      const reused = PHASE_NAMES.slice(0, PHASE_NAMES.indexOf('generateAlternatives'));
      for (const phase of reused) expect(callsFor(phase), phase).toBe(0);
      for (const phase of PHASE_NAMES.slice(reused.length)) expect(callsFor(phase), phase).toBe(1);
      expect(
        done.phases.filter((p) => p.reused_from === source.process_id).map((p) => p.name),
      ).toEqual(reused);
      for (const phase of reused)
        expect(done.result!.phases[phase]).toEqual(source.result!.phases[phase]);

      const bad = await app.request(`/decisions/${source.process_id}/fork`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ from_phase: 'nowhere' }),
      });
      expect(bad.status).toBe(400);
    });
  });

  describe('a projection that missed the end', () => {
    it('reads from Temporal when a quiet running record belongs to a closed workflow', async () => {
      const done = (await (
        await app.request('/decisions?wait=60s', {
          method: 'POST',
          headers: json,
          body: JSON.stringify({ query: 'Should we trust a stale projection?' }),
        })
      ).json()) as View;
      // As if the final write had been lost: the record says running, and has for a while.
      await store.redis.hset(store.projection.recordKey(done.process_id), {
        status: 'running',
        updated_at: new Date(Date.now() - 3_600_000).toISOString(),
      });
      const read = (await (await app.request(`/decisions/${done.process_id}`)).json()) as View;
      expect(read.status).toBe('completed');
      const cancel = await app.request(`/decisions/${done.process_id}/cancel`, { method: 'POST' });
      expect(cancel.status).toBe(409);
    });
  });

  describe('retry', () => {
    it('POST /retry reruns from a named phase (admin) and 409s without one on a completed decision', async () => {
      const done = (await (
        await app.request('/decisions?wait=60s', {
          method: 'POST',
          headers: json,
          body: JSON.stringify({ query: 'Should we retry over HTTP?' }),
        })
      ).json()) as View;
      const nothing = await app.request(`/decisions/${done.process_id}/retry`, { method: 'POST' });
      expect(nothing.status).toBe(409);
      const invalid = await app.request(`/decisions/${done.process_id}/retry`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ from_phase: 'compileResult', on_current_build: 'yes' }),
      });
      expect(invalid.status).toBe(400);
      const before = counting.calls.compileResult ?? 0;
      const res = await app.request(`/decisions/${done.process_id}/retry`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ from_phase: 'compileResult' }),
      });
      expect(res.status).toBe(202);
      expect(await res.json()).toMatchObject({
        process_id: done.process_id,
        from_phase: 'compileResult',
        // This suite's worker polls without versioning: the run is pinned to no build.
        build_id: null,
      });
      await waitFor('the retried run to finish', async () => {
        const view = (await (await app.request(`/decisions/${done.process_id}`)).json()) as View;
        return view.status === 'completed' && (counting.calls.compileResult ?? 0) > before
          ? view
          : undefined;
      });
      expect(counting.calls.compileResult).toBe(before + 1);
      // The event stream now tells the new run's story: the old run's end is gone.
      const events = await readEvents(await app.request(`/decisions/${done.process_id}/events`));
      expect(events.filter((e) => e.event === 'decision.completed')).toHaveLength(1);
      expect(events.map((e) => e.event)).toContain('phase.completed');
    });
  });

  describe('auth, rate limits, CORS, docs', () => {
    const keys = parseApiKeys(
      'reader-key-1=decisions:read,writer-key-1=decisions:read+decisions:write,admin-key-1=decisions:admin',
    );
    const bearer = (key: string) => ({ Authorization: `Bearer ${key}` });

    it('answers 401 without a valid key and 403 without the scope', async () => {
      const secured = createApp({ ...base, apiKeys: keys, decisions: service() });
      expect((await secured.request('/decisions')).status).toBe(401);
      expect((await secured.request('/decisions', { headers: bearer('wrong-key-1') })).status).toBe(
        401,
      );
      expect(
        (await secured.request('/decisions', { headers: bearer('reader-key-1') })).status,
      ).toBe(200);
      const post = (key: string) =>
        secured.request('/decisions', {
          method: 'POST',
          headers: { ...json, ...bearer(key) },
          body: JSON.stringify({ query: 'Should we lock the API?' }),
        });
      const forbidden = await post('reader-key-1');
      expect(forbidden.status).toBe(403);
      expect(await forbidden.json()).toMatchObject({
        detail: 'This API key lacks the decisions:write scope',
      });
      expect((await post('writer-key-1')).status).toBe(202);
      expect((await post('admin-key-1')).status).toBe(202);
      const retry = await secured.request('/decisions/any-id/retry', {
        method: 'POST',
        headers: bearer('writer-key-1'),
      });
      expect(retry.status).toBe(403);
      expect(await retry.json()).toMatchObject({
        detail: 'This API key lacks the decisions:admin scope',
      });
      expect((await secured.request('/health')).status).toBe(200);
      expect((await secured.request('/openapi.json')).status).toBe(200);
    });

    describe('tenancy', () => {
      const tenants = parseApiKeys(
        'alice-key-0123456789=decisions:read+decisions:write@alice,' +
          'bob-key-0123456789=decisions:read+decisions:write@bob,' +
          'ops-key-0123456789=decisions:admin@ops,' +
          // Alice's rotated key and her read-only key: the same principal.
          'alice-new-key-0123456789=decisions:read+decisions:write@alice,' +
          'alice-reader-0123456789=decisions:read@alice',
      );
      let shared: ReturnType<typeof createApp>;
      let alices: string;
      let unowned: string;
      const as = (key: string, path: string, init: RequestInit = {}) =>
        shared.request(path, { ...init, headers: { ...json, ...bearer(key), ...init.headers } });

      beforeAll(async () => {
        shared = createApp({ ...base, apiKeys: tenants, decisions: service() });
        const res = await as('alice-key-0123456789', '/decisions', {
          method: 'POST',
          body: JSON.stringify({ query: 'Should Alice move billing?', review: true }),
        });
        alices = ((await res.json()) as View).process_id;
        // A decision started before owners existed: no owner at all.
        unowned = uniqueName('unowned');
        await client.workflow.start(DECISION_WORKFLOW_TYPE, {
          taskQueue,
          workflowId: unowned,
          args: [{ query: 'Whose is this?' }],
        });
      });

      it("records the owner in Temporal's memo and its DecisionOwner search attribute", async () => {
        const description = await client.workflow.getHandle(alices).describe();
        expect(description.memo).toMatchObject({ owner: 'alice' });
        expect(description.typedSearchAttributes.get(DecisionOwnerAttribute)).toBe('alice');
        const found = await waitFor('visibility to index the owner', async () => {
          const ids: string[] = [];
          for await (const run of client.workflow.list({
            query: `DecisionOwner = "alice" AND WorkflowId = "${alices}"`,
          })) {
            ids.push(run.workflowId);
          }
          return ids.length > 0 ? ids : undefined;
        });
        expect(found).toEqual([alices]);
      });

      it.each([
        ['GET', ''],
        ['GET', '/status'],
        ['GET', '/result'],
        ['GET', '/wait?timeout=1s'],
        ['GET', '/events'],
        ['POST', '/cancel'],
        ['POST', '/review'],
        ['POST', '/fork'],
      ])("answers 404 to another key's %s %s, as for an unknown id", async (method, suffix) => {
        const body =
          suffix === '/review'
            ? JSON.stringify({ approve: true })
            : suffix === '/fork'
              ? JSON.stringify({ from_phase: 'analyzeRootCause' })
              : undefined;
        // The seed's status route puts the id last.
        const path = (id: string) =>
          suffix === '/status' ? `/decisions/status/${id}` : `/decisions/${id}${suffix}`;
        const theirs = await as('bob-key-0123456789', path(alices), { method, body });
        const unknown = await as('bob-key-0123456789', path('no-such-id'), { method, body });
        expect(theirs.status).toBe(404);
        expect(unknown.status).toBe(404);
        const detail = ((await theirs.json()) as { detail: string }).detail;
        expect(detail).toBe(`No decision with id ${alices}`);
        expect(((await unknown.json()) as { detail: string }).detail).toBe(
          'No decision with id no-such-id',
        );
      });

      it('lists only the caller’s own decisions; admins see all, unowned ones only they', async () => {
        const ids = async (key: string) => {
          const res = await as(key, '/decisions?limit=100');
          return ((await res.json()) as { items: View[] }).items.map((i) => i.process_id);
        };
        // The list is the projection's, which the workflow writes once a worker runs it.
        await waitFor('the decision to be listed', async () =>
          (await ids('alice-key-0123456789')).length > 0 ? true : undefined,
        );
        expect(await ids('alice-key-0123456789')).toEqual([alices]);
        expect(await ids('bob-key-0123456789')).toEqual([]);
        const all = await ids('ops-key-0123456789');
        expect(all).toEqual(expect.arrayContaining([alices]));
        expect((await as('ops-key-0123456789', `/decisions/${alices}`)).status).toBe(200);
        expect((await as('alice-key-0123456789', `/decisions/${alices}`)).status).toBe(200);
        expect((await as('alice-key-0123456789', `/decisions/${unowned}`)).status).toBe(404);
        expect((await as('ops-key-0123456789', `/decisions/${unowned}`)).status).toBe(200);
      });

      it('lets every key of a name see and own the same decisions; a read-only one gets 403 on writes', async () => {
        const created = await as('alice-new-key-0123456789', '/decisions', {
          method: 'POST',
          body: JSON.stringify({ query: 'Should Alice rotate her key?', review: true }),
        });
        expect(created.status).toBe(202);
        const rotated = ((await created.json()) as View).process_id;
        expect((await client.workflow.getHandle(rotated).describe()).memo).toMatchObject({
          owner: 'alice',
        });
        const ids = async (key: string) => {
          const res = await as(key, '/decisions?limit=100');
          return ((await res.json()) as { items: View[] }).items.map((i) => i.process_id).sort();
        };
        const both = [alices, rotated].sort();
        // The list is the projection's, which the workflow writes once it runs.
        await waitFor('the new decision to be listed', async () =>
          (await ids('alice-key-0123456789')).length === 2 ? true : undefined,
        );
        for (const key of [
          'alice-key-0123456789',
          'alice-new-key-0123456789',
          'alice-reader-0123456789',
        ]) {
          expect(await ids(key), key).toEqual(both);
          for (const id of both) expect((await as(key, `/decisions/${id}`)).status, key).toBe(200);
        }
        expect(await ids('bob-key-0123456789')).toEqual([]);
        const me = await as('alice-reader-0123456789', '/me');
        expect(await me.json()).toMatchObject({ principal: 'alice', scopes: ['decisions:read'] });
        const refused = [
          await as('alice-reader-0123456789', '/decisions', {
            method: 'POST',
            body: JSON.stringify({ query: 'Should a reader write?' }),
          }),
          await as('alice-reader-0123456789', `/decisions/${rotated}/cancel`, { method: 'POST' }),
        ];
        expect(refused.map((r) => r.status)).toEqual([403, 403]);
        // The old key cancels what the new one created: it is the owner's as much.
        const cancelled = await as('alice-key-0123456789', `/decisions/${rotated}/cancel`, {
          method: 'POST',
        });
        expect([200, 202]).toContain(cancelled.status);
        await waitFor('the cancel to reach Temporal', async () =>
          (await client.workflow.getHandle(rotated).describe()).status.name === 'CANCELLED'
            ? true
            : undefined,
        );
      });

      it('keeps the owner on a fork: the forking key owns the fork', async () => {
        await waitUntil(alices, 'awaiting_review');
        const res = await as('alice-key-0123456789', `/decisions/${alices}/fork`, {
          method: 'POST',
          body: JSON.stringify({ from_phase: 'analyzeRootCause' }),
        });
        expect(res.status).toBe(202);
        const fork = ((await res.json()) as View).process_id;
        expect((await client.workflow.getHandle(fork).describe()).memo).toMatchObject({
          owner: 'alice',
        });
        expect((await as('bob-key-0123456789', `/decisions/${fork}`)).status).toBe(404);
        await as('alice-key-0123456789', `/decisions/${alices}/cancel`, { method: 'POST' });
        await as('alice-key-0123456789', `/decisions/${fork}/cancel`, { method: 'POST' });
      });
    });

    /** An app that refuses an address after `limit` failed attempts; requests from an address. */
    const guardedApp = (redis = store.redis, limit = 3) => {
      const guarded = createApp({
        ...base,
        redis,
        keyPrefix: `${store.prefix}${uniqueName('af')}:`,
        apiKeys: keys,
        authFailuresPerMinute: limit,
        trustProxy: true,
        decisions: service(),
      });
      return (address: string, key: string) =>
        guarded.request('/decisions', {
          headers: { ...bearer(key), 'X-Forwarded-For': `203.0.113.9, ${address}` },
        });
    };

    it("answers an address's wrong keys 429 past the limit, and never refuses a valid key", async () => {
      const from = guardedApp();
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        statuses.push((await from('198.51.100.1', `guess-${i}-xx`)).status);
      }
      expect(statuses).toEqual([401, 401, 401, 429]);
      const refused = await from('198.51.100.1', 'guess-4-xx');
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      // The address's failures are not the valid key's: it goes on working.
      expect((await from('198.51.100.1', 'reader-key-1')).status).toBe(200);
      // Another address is not held back; and the first hop, which a client writes, counts for nothing.
      expect((await from('198.51.100.2', 'guess-0-xx')).status).toBe(401);
    });

    it('counts wrong keys sent at once before answering: 300 from one address, at most the limit told 401', async () => {
      const from = guardedApp(store.redis, 20);
      const statuses = await Promise.all(
        Array.from({ length: 300 }, (_, i) =>
          Promise.resolve(from('198.51.100.3', `guess-${i}-xx`)).then((r) => r.status),
        ),
      );
      const count = (status: number) => statuses.filter((s) => s === status).length;
      expect({ 401: count(401), 429: count(429) }).toEqual({ 401: 20, 429: 280 });
      expect((await from('198.51.100.3', 'writer-key-1')).status).toBe(200);
    });

    it('counts an IPv6 address by its /64: two addresses in one share a count', async () => {
      const from = guardedApp();
      const statuses = [
        (await from('2001:db8:1:2::1', 'guess-0-xx')).status,
        (await from('2001:db8:1:2:aaaa::2', 'guess-1-xx')).status,
        (await from('2001:db8:1:2:ffff:ffff:ffff:ffff', 'guess-2-xx')).status,
        (await from('2001:db8:1:2::9', 'guess-3-xx')).status,
      ];
      expect(statuses).toEqual([401, 401, 401, 429]);
      // The next /64 has a count of its own; an IPv4-mapped address counts as its IPv4 address.
      expect((await from('2001:db8:1:3::1', 'guess-4-xx')).status).toBe(401);
      for (let i = 0; i < 3; i++) await from('198.51.100.4', `guess-${i}-xx`);
      expect((await from('::ffff:198.51.100.4', 'guess-3-xx')).status).toBe(429);
    });

    it('never asks Redis about a valid key, whatever its address did', async () => {
      const redis = new Redis(services.redisUrl, { maxRetriesPerRequest: 1 });
      const looks: string[] = [];
      const send = redis.sendCommand.bind(redis);
      redis.sendCommand = (command: Parameters<typeof send>[0]) => {
        const key = command.getKeys().find((k) => String(k).includes('authfail'));
        if (key) looks.push(`${command.name} ${String(key)}`);
        return send(command);
      };
      try {
        const from = guardedApp(redis);
        for (let i = 0; i < 3; i++) await from('198.51.100.8', `guess-${i}-xx`);
        const before = looks.length;
        expect(before).toBeGreaterThan(0);
        for (let i = 0; i < 5; i++) {
          expect((await from('198.51.100.8', 'reader-key-1')).status).toBe(200);
        }
        expect(looks.length).toBe(before);
      } finally {
        redis.disconnect();
      }
    });

    it('limits requests per key in Redis and answers 429 with Retry-After', async () => {
      const limited = createApp({
        ...base,
        keyPrefix: `${store.prefix}${uniqueName('rl')}:`,
        apiKeys: keys,
        rateLimitPerMinute: 3,
        decisions: service(),
      });
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        statuses.push(
          (await limited.request('/decisions', { headers: bearer('reader-key-1') })).status,
        );
      }
      expect(statuses).toEqual([200, 200, 200, 429]);
      const res = await limited.request('/decisions', { headers: bearer('reader-key-1') });
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      // Another key has its own budget.
      expect((await limited.request('/decisions', { headers: bearer('admin-key-1') })).status).toBe(
        200,
      );
    });

    it('answers CORS preflights for configured origins only', async () => {
      const withCors = createApp({
        ...base,
        corsOrigins: ['https://app.example'],
        decisions: service(),
      });
      const ok = await withCors.request('/decisions', {
        method: 'OPTIONS',
        headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST' },
      });
      expect(ok.headers.get('access-control-allow-origin')).toBe('https://app.example');
      const other = await withCors.request('/decisions', {
        method: 'OPTIONS',
        headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'POST' },
      });
      expect(other.headers.get('access-control-allow-origin')).toBeNull();
    });

    it('serves the docs page and its assets', async () => {
      const page = await app.request('/docs');
      expect(page.status).toBe(200);
      expect(await page.text()).toContain("url: '/openapi.json'");
      const asset = await app.request('/docs/assets/swagger-ui-bundle.js');
      expect(asset.status).toBe(200);
      expect((await asset.text()).length).toBeGreaterThan(100_000);
    });
  });
});
