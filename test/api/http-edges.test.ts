import { request, Agent, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createApp, type AppDeps } from '../../src/api/app';
import { DecisionService } from '../../src/api/decision-service';
import { initialRecord, type DecisionRecord } from '../../src/domain/decision';
import { createHealthCheck } from '../../src/observability/health';
import { CANNED } from '../support/canned-outputs';
import { services, testProjection, uniqueName, waitFor } from '../support/context';

/** One request on a connection of its own; resolves with the response, its body left unread. */
function send(
  port: number,
  path: string,
  init: { method?: string; headers?: Record<string, string>; agent?: Agent; body?: string } = {},
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: init.method ?? 'GET',
        headers: init.headers,
        agent: init.agent ?? false,
      },
      resolve,
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

/** Reads an SSE response to its end. */
async function readAll(res: IncomingMessage): Promise<EventSourceMessage[]> {
  const events: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (e) => events.push(e) });
  res.setEncoding('utf8');
  for await (const chunk of res) parser.feed(chunk as string);
  return events;
}

/** Opens a stream and answers with its status; a 200's socket stays open, anything else is read. */
async function openStream(port: number, path: string) {
  const res = await send(port, path);
  if (res.statusCode !== 200) res.resume();
  return res;
}

describe('HTTP edges on a real socket (Temporal and Redis, no worker)', () => {
  let connection: Connection;
  let store: ReturnType<typeof testProjection>;
  let base: Omit<AppDeps, 'decisions'>;
  const servers: ServerType[] = [];

  /** The API on a loopback port of its own. */
  const listen = async (deps: Partial<AppDeps> = {}): Promise<number> => {
    const app = createApp({
      ...base,
      decisions: new DecisionService({
        client: new Client({ connection }),
        projection: store.projection,
        taskQueue: uniqueName('edges'),
      }),
      ...deps,
    });
    const server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
    });
    servers.push(server);
    const address = server.address();
    return typeof address === 'object' && address ? address.port : 0;
  };

  /** A decision in the projection, as the workflow or a reconcile writes it. */
  const decision = async (patch: Partial<DecisionRecord> = {}) => {
    const id = uniqueName('edge');
    const now = new Date().toISOString();
    const record: DecisionRecord = {
      ...initialRecord(id, { query: 'Should streams hold slots?' }, now),
      status: 'running',
      current_phase: 'identifyTrigger',
      seq: 1,
      ...patch,
    };
    expect(await store.projection.write(record, [], 'reconcile')).toBe(true);
    return id;
  };

  beforeAll(async () => {
    connection = await Connection.connect({ address: services.temporalAddress });
    store = testProjection();
    base = {
      health: createHealthCheck({ connection, redis: store.redis }),
      projection: store.projection,
      redis: store.redis,
      keyPrefix: store.prefix,
      apiKeys: null,
      maxQueryChars: 500,
      eventBlockMs: 200,
    };
  });
  afterAll(async () => {
    for (const server of servers) {
      server.close();
      if ('closeAllConnections' in server) server.closeAllConnections();
    }
    await store?.cleanup();
    await connection?.close();
  });

  describe('event stream slots', () => {
    // The apps of this file share a key prefix, and with it the slots, as API processes sharing
    // Redis do: a test starts once the streams of the one before have given theirs back.
    beforeEach(() =>
      waitFor('the streams of earlier tests to give their slots back', async () =>
        (await store.redis.keys(`${store.prefix}{streams:*`)).length === 0 ? true : undefined,
      ),
    );

    it('answers HEAD with the headers only and holds no slot: 20 HEADs leave every stream open', async () => {
      const port = await listen({ maxStreamsPerKey: 2 });
      const id = await decision();
      const heads = await Promise.all(
        Array.from({ length: 20 }, () => send(port, `/decisions/${id}/events`, { method: 'HEAD' })),
      );
      expect(heads.map((r) => r.statusCode)).toEqual(Array(20).fill(200));
      expect(heads[0]!.headers['content-type']).toBe('text/event-stream');
      // Without auth the slots are the client address's: these all come from 127.0.0.1.
      const streams = [
        await openStream(port, `/decisions/${id}/events`),
        await openStream(port, `/decisions/${id}/events`),
      ];
      expect(streams.map((r) => r.statusCode)).toEqual([200, 200]);
      // The cap still holds, for a GET and for a HEAD, which says what a GET would be told.
      expect((await openStream(port, `/decisions/${id}/events`)).statusCode).toBe(429);
      const head = await send(port, `/decisions/${id}/events`, { method: 'HEAD' });
      expect(head.statusCode).toBe(429);
      for (const stream of streams) stream.destroy();
    });

    it("with auth off, one address's 20 streams leave another address free to open one", async () => {
      // Behind a proxy (TRUST_PROXY): the address is the last X-Forwarded-For entry.
      const port = await listen({ trustProxy: true });
      const id = await decision();
      const from = (address: string) => ({ headers: { 'X-Forwarded-For': address } });
      const open = (address: string) =>
        send(port, `/decisions/${id}/events`, from(address)).then((res) => {
          if (res.statusCode !== 200) res.resume();
          return res;
        });
      const mine = await Promise.all(Array.from({ length: 20 }, () => open('203.0.113.7')));
      try {
        expect(mine.map((r) => r.statusCode)).toEqual(Array(20).fill(200));
        expect((await open('203.0.113.7')).statusCode).toBe(429);
        // Another IPv6 address of the same /64 is the same client.
        const v6 = await Promise.all(Array.from({ length: 20 }, () => open('2001:db8::1')));
        mine.push(...v6);
        expect(v6.map((r) => r.statusCode)).toEqual(Array(20).fill(200));
        expect((await open('2001:db8::2')).statusCode).toBe(429);
        const other = await open('198.51.100.9');
        mine.push(other);
        expect(other.statusCode).toBe(200);
      } finally {
        for (const stream of mine) stream.destroy();
      }
    });

    it("frees a slot once its client closes the socket, without the stream's help", async () => {
      const port = await listen({ maxStreamsPerKey: 1 });
      const id = await decision();
      const first = await openStream(port, `/decisions/${id}/events`);
      expect(first.statusCode).toBe(200);
      expect((await openStream(port, `/decisions/${id}/events`)).statusCode).toBe(429);
      first.socket.destroy();
      const again = await waitFor('the closed stream to free its slot', async () => {
        const res = await openStream(port, `/decisions/${id}/events`);
        return res.statusCode === 200 ? res : undefined;
      });
      again.destroy();
    });

    it('frees the slot of a client that never reads, once the stream has outlived its lifetime', async () => {
      const port = await listen({ maxStreamsPerKey: 1, maxStreamMs: 1_000 });
      const id = await decision();
      // 24 MB of events to replay: more than the socket buffers hold, so the server's writes
      // wait on a client that never reads.
      const pad = 'x'.repeat(1024 * 1024);
      for (let i = 0; i < 24; i++) {
        await store.redis.xadd(
          store.projection.eventsKey(id),
          '*',
          'type',
          'phase.started',
          'data',
          JSON.stringify({ phase: 'identifyTrigger', title: 'Trigger', index: 0, pad }),
        );
      }
      const socket: Socket = connect(port, '127.0.0.1');
      socket.write(`GET /decisions/${id}/events?deltas=false HTTP/1.1\r\nHost: x\r\n\r\n`);
      const head = await new Promise<string>((resolve) =>
        socket.once('data', (chunk: Buffer) => {
          socket.pause();
          resolve(chunk.toString('latin1'));
        }),
      );
      expect(head).toMatch(/^HTTP\/1\.1 200/);
      try {
        expect((await openStream(port, `/decisions/${id}/events`)).statusCode).toBe(429);
        const started = Date.now();
        const again = await waitFor(
          'the unread stream to free its slot',
          async () => {
            const res = await openStream(port, `/decisions/${id}/events`);
            return res.statusCode === 200 ? res : undefined;
          },
          20_000,
        );
        again.destroy();
        // Its lifetime, the last wait's 200 ms and the 5 s grace; not sooner.
        expect(Date.now() - started).toBeGreaterThan(1_000);
      } finally {
        socket.destroy();
      }
    });

    it.each([['?deltas=false'], ['']])(
      'gives an end made up from the record an id that a reconnect is answered 204 for (%s)',
      async (query) => {
        const port = await listen();
        // Finished, and no event stored: as a reconcile restores a decision the projection lost.
        const id = await decision({
          status: 'completed',
          current_phase: null,
          completed_at: new Date().toISOString(),
          result: {
            query: 'Should streams hold slots?',
            decision: CANNED.compileResult,
            phases: CANNED,
            usage: { model_calls: 10, input_tokens: 100, output_tokens: 50, latency_ms: 5 },
          },
        });
        expect(await store.projection.readEvents(id, null)).toEqual([]);
        const events = await readAll(await openStream(port, `/decisions/${id}/events${query}`));
        expect(events.map((e) => e.event)).toEqual(['decision.completed']);
        // As EventSource reconnects: with the last id it saw. A 204 tells it to stop.
        const again = await send(port, `/decisions/${id}/events${query}`, {
          headers: { 'Last-Event-ID': events[0]!.id! },
        });
        again.resume();
        expect(again.statusCode).toBe(204);
      },
    );
  });

  it('answers a finished decision from its cached bytes exactly as c.json answers the same record', async () => {
    const id = await decision({
      status: 'completed',
      current_phase: null,
      // Characters of two and three bytes in UTF-8: the body's length is its bytes', not its characters'.
      query: 'Should we move billing to a managed Postgres — for Zürich’s team?',
      completed_at: new Date().toISOString(),
      result: {
        query: 'Should we move billing to a managed Postgres — for Zürich’s team?',
        decision: CANNED.compileResult,
        phases: CANNED,
        usage: { model_calls: 10, input_tokens: 100, output_tokens: 50, latency_ms: 5 },
      },
    });
    const cached = await listen();
    // The same record, but a fresh copy at each read: never frozen, so served through c.json.
    const fresh = await listen({
      decisions: new DecisionService({
        client: new Client({ connection }),
        projection: {
          ...store.projection,
          entry: async (at: string) => {
            const entry = await store.projection.entry(at);
            return entry && { ...entry, record: structuredClone(entry.record) };
          },
          list: (query) => store.projection.list(query),
          write: (...args) => store.projection.write(...args),
          expectRun: (at, run) => store.projection.expectRun(at, run),
        },
        taskQueue: uniqueName('edges'),
      }),
    });
    const read = async (port: number) => {
      const res = await send(port, `/decisions/${id}`);
      const chunks: Buffer[] = [];
      for await (const chunk of res) chunks.push(chunk as Buffer);
      const { date: _date, 'x-request-id': _id, ...headers } = res.headers;
      return { status: res.statusCode, headers, body: Buffer.concat(chunks) };
    };
    const reference = await read(fresh);
    const { seq: _seq, ...stored } = (await store.projection.get(id))!;
    expect(Object.isFrozen(stored.result)).toBe(true);
    expect(JSON.parse(reference.body.toString('utf8'))).toEqual(stored);
    // The first read keeps the record and its bytes; the second is served from them.
    for (let i = 0; i < 2; i++) expect(await read(cached)).toEqual(reference);
    expect(reference.headers['content-length']).toBe(String(reference.body.length));
  });

  it('answers 404 on every route for an id no decision can have, as for any unknown id', async () => {
    const port = await listen();
    for (const length of [256, 1001, 5000]) {
      const id = 'x'.repeat(length);
      for (const [method, path, body] of [
        ['GET', `/decisions/${id}`],
        ['GET', `/decisions/status/${id}`],
        ['GET', `/decisions/${id}/result`],
        ['GET', `/decisions/${id}/wait?timeout=1s`],
        ['GET', `/decisions/${id}/events`],
        ['HEAD', `/decisions/${id}/events`],
        ['POST', `/decisions/${id}/cancel`],
        ['POST', `/decisions/${id}/review`, JSON.stringify({ approve: true })],
        ['POST', `/decisions/${id}/fork`, JSON.stringify({ from_phase: 'analyzeRootCause' })],
        ['POST', `/decisions/${id}/retry`],
      ] as const) {
        const res = await send(port, path, {
          method,
          body,
          headers: body ? { 'Content-Type': 'application/json' } : {},
        });
        const text = await new Promise<string>((resolve) => {
          let all = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (all += chunk));
          res.on('end', () => resolve(all));
        });
        expect(`${method} ${length} ${res.statusCode}`).toBe(`${method} ${length} 404`);
        if (method !== 'HEAD') {
          expect(JSON.parse(text)).toMatchObject({ detail: `No decision with id ${id}` });
        }
      }
    }
  });

  it('reads a body sent with its length or in chunks alike; past the limit either way, a 413', async () => {
    const port = await listen();
    /** POSTs the body in two writes: without a Content-Length, Node sends it chunked. */
    const chunked = (body: string) =>
      new Promise<IncomingMessage>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            path: '/decisions',
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            agent: false,
          },
          resolve,
        );
        req.on('error', reject);
        const bytes = Buffer.from(body);
        // Split inside a character of two bytes: the body is decoded whole, not chunk by chunk.
        const cut = bytes.indexOf(Buffer.from('ü')) + 1;
        req.write(bytes.subarray(0, cut));
        req.end(bytes.subarray(cut));
      });
    const json = async (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      for await (const chunk of res) chunks.push(chunk as Buffer);
      return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    };
    const client = new Client({ connection });
    for (const [how, post] of [
      [
        'with its length',
        (body: string) =>
          send(port, '/decisions', {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body,
          }),
      ],
      ['in chunks', chunked],
    ] as const) {
      const query = `Should Zürich’s billing move ${how}?`;
      const res = await post(JSON.stringify({ query }));
      const created = await json(res);
      expect(`${how} ${res.statusCode}`).toBe(`${how} 202`);
      const described = await client.workflow.getHandle(created.process_id as string).describe();
      expect(described.memo?.query).toBe(query);
      const tooLarge = await post(JSON.stringify({ query: `ü${'x'.repeat(70 * 1024)}` }));
      expect(`${how} ${tooLarge.statusCode}`).toBe(`${how} 413`);
      expect(await json(tooLarge)).toMatchObject({ status: 413, instance: '/decisions' });
    }
  });

  it('closes the connection cleanly after a 413, so the next request on a kept-alive agent works', async () => {
    const port = await listen();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const tooLarge = await send(port, '/decisions', {
        method: 'POST',
        agent,
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ query: 'x'.repeat(1024 * 1024) }),
      });
      tooLarge.resume();
      expect(tooLarge.statusCode).toBe(413);
      for (let i = 0; i < 3; i++) {
        const next = await send(port, '/openapi.json', { agent });
        next.resume();
        expect(next.statusCode).toBe(200);
      }
      expect(tooLarge.headers.connection).toBe('close');
    } finally {
      agent.destroy();
    }
  });
});
