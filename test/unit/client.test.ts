import { describe, expect, it } from 'vitest';
import { problem } from '../../src/api/problem';
import {
  DecisionApiError,
  DecisionProtocolError,
  DecisionStreamLostError,
  createDecisionClient,
  type DecisionEvent,
  type Reconnect,
} from '../../src/client';

// The client's own rules, with answers made here instead of a server's: what the API does is
// tested against a real one (test/api/client.test.ts); the reconnects by the decide tests.

/** A client whose fetch answers each request with the next of `answers`, recording requests. */
function clientAnswering(...answers: (Response | Error)[]) {
  const requests: Request[] = [];
  const client = createDecisionClient({
    baseUrl: 'http://api.test/',
    apiKey: 'key-1',
    fetch: (request) => {
      requests.push(request);
      const answer = answers.shift();
      if (!answer) throw new Error(`no answer left for ${request.method} ${request.url}`);
      return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
    },
  });
  return { client, requests };
}

const problemAnswer = (status: number, detail: string, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(problem(status, detail)), {
    status,
    headers: { 'Content-Type': 'application/problem+json', ...headers },
  });

const sse = (text: string) =>
  new Response(text, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });

const STARTED = { process_id: 'd1', query: 'q?', created_at: '2026-01-01T00:00:00.000Z' };
const CANCELLED = { status: 'cancelled' };

async function collect(events: AsyncIterable<DecisionEvent>): Promise<DecisionEvent[]> {
  const out: DecisionEvent[] = [];
  for await (const event of events) out.push(event);
  return out;
}

describe('the client', () => {
  it('sends the key as a bearer token, to the route under the base URL', async () => {
    const { client, requests } = clientAnswering(
      new Response(JSON.stringify({ process_id: 'a b' }), { status: 200 }),
    );
    await client.get('a b');
    expect(requests[0]?.url).toBe('http://api.test/decisions/a%20b');
    expect(requests[0]?.headers.get('authorization')).toBe('Bearer key-1');
  });

  it("throws the API's problem as a DecisionApiError with its status and Retry-After", async () => {
    const { client } = clientAnswering(
      problemAnswer(429, 'Too many requests', { 'Retry-After': '7' }),
    );
    const err = await client.get('d1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DecisionApiError);
    const apiErr = err as DecisionApiError;
    expect(apiErr.status).toBe(429);
    expect(apiErr.problem).toEqual(problem(429, 'Too many requests'));
    expect(apiErr.retryAfter).toBe(7);
    expect(apiErr.message).toBe('429 Too many requests: Too many requests');
  });

  it('reads Retry-After given as a date', async () => {
    const at = new Date(Date.now() + 30_000).toUTCString();
    const { client } = clientAnswering(problemAnswer(503, 'later', { 'Retry-After': at }));
    const err = (await client.get('d1').catch((e: unknown) => e)) as DecisionApiError;
    expect(err.retryAfter).toBeGreaterThanOrEqual(28);
    expect(err.retryAfter).toBeLessThanOrEqual(30);
  });

  it('makes an about:blank problem of an answer that carries none, keeping its text', async () => {
    const { client } = clientAnswering(
      new Response('<html>upstream down</html>', { status: 502, statusText: 'Bad Gateway' }),
    );
    const err = (await client.get('d1').catch((e: unknown) => e)) as DecisionApiError;
    expect(err).toBeInstanceOf(DecisionApiError);
    expect(err.problem).toEqual({
      type: 'about:blank',
      title: 'Bad Gateway',
      status: 502,
      detail: '<html>upstream down</html>',
    });
    expect(err.body).toBe('<html>upstream down</html>');
    expect(err.retryAfter).toBeUndefined();
  });

  it('lets a network failure through as it is, no problem made of it', async () => {
    const failure = new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED') });
    const { client } = clientAnswering(failure);
    await expect(client.get('d1')).rejects.toBe(failure);
  });

  it('refuses a success whose body is not JSON', async () => {
    const { client } = clientAnswering(new Response('<html>', { status: 200 }));
    await expect(client.get('d1')).rejects.toThrow(DecisionProtocolError);
  });

  it('follows next_cursor page by page, asking for the next page only when it is read', async () => {
    const page = (ids: string[], next: string | null) =>
      new Response(
        JSON.stringify({ items: ids.map((process_id) => ({ process_id })), next_cursor: next }),
      );
    const { client, requests } = clientAnswering(page(['a', 'b'], 'c1'), page(['c'], null));
    const listing = client.list({ status: 'completed', limit: 2 });
    expect((await listing.next()).value).toEqual({ process_id: 'a' });
    expect(requests).toHaveLength(1);
    const rest: string[] = [];
    for await (const item of listing) rest.push(item.process_id);
    expect(rest).toEqual(['b', 'c']);
    expect(requests.map((r) => new URL(r.url).search)).toEqual([
      '?status=completed&limit=2',
      '?status=completed&limit=2&cursor=c1',
    ]);
  });
});

describe("the client's event stream", () => {
  it('types each event by its type, skips unknown types, and ends after the end', async () => {
    const { client, requests } = clientAnswering(
      sse(
        `id: 1-0\nevent: decision.started\ndata: ${JSON.stringify(STARTED)}\n\n` +
          `id: 2-0\nevent: phase.progress\ndata: {}\n\n` +
          `id: 3-0\nevent: decision.cancelled\ndata: ${JSON.stringify(CANCELLED)}\n\n` +
          `id: 4-0\nevent: decision.started\ndata: ${JSON.stringify(STARTED)}\n\n`,
      ),
    );
    const events = await collect(client.events('d1', { deltas: false }));
    expect(events).toEqual([
      { type: 'decision.started', id: '1-0', data: STARTED },
      { type: 'decision.cancelled', id: '3-0', data: CANCELLED },
    ]);
    expect(new URL(requests[0]!.url).search).toBe('?deltas=false');
    expect(requests[0]?.headers.get('accept')).toBe('text/event-stream');
    expect(requests[0]?.headers.get('last-event-id')).toBeNull();
  });

  it('ends with nothing more when the API answers 204 to a resume (the end was seen)', async () => {
    const { client, requests } = clientAnswering(new Response(null, { status: 204 }));
    expect(await collect(client.events('d1', { lastEventId: '3-0' }))).toEqual([]);
    expect(requests[0]?.headers.get('last-event-id')).toBe('3-0');
  });

  it('waits as long as Retry-After says before it reconnects, and resumes after the last id', async () => {
    const reconnects: Reconnect[] = [];
    const slept: number[] = [];
    const { client, requests } = clientAnswering(
      sse(`id: 1-0\nevent: decision.started\ndata: ${JSON.stringify(STARTED)}\n\n`),
      problemAnswer(503, 'Event streams are unavailable for a moment', { 'Retry-After': '5' }),
      sse(`id: 3-0\nevent: decision.cancelled\ndata: ${JSON.stringify(CANCELLED)}\n\n`),
    );
    const events = await collect(
      client.events('d1', {
        onReconnect: (r) => reconnects.push(r),
        sleep: (ms) => {
          slept.push(ms);
          return Promise.resolve();
        },
      }),
    );
    expect(events.map((e) => e.type)).toEqual(['decision.started', 'decision.cancelled']);
    expect(
      reconnects.map(({ attempt, reason, delayMs }) => ({ attempt, reason, delayMs })),
    ).toEqual([
      { attempt: 1, reason: 'the server closed the stream', delayMs: 250 },
      { attempt: 2, reason: 'HTTP 503', delayMs: 5000 },
    ]);
    expect(slept).toEqual([250, 5000]);
    expect(requests.map((r) => r.headers.get('last-event-id'))).toEqual([null, '1-0', '1-0']);
  });

  it('gives up after its retries with DecisionStreamLostError, the last failure as its cause', async () => {
    const failure = new TypeError('fetch failed');
    const { client } = clientAnswering(failure, failure, failure);
    const err = await collect(
      client.events('d1', { retries: 2, sleep: () => Promise.resolve() }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DecisionStreamLostError);
    expect((err as Error).message).toBe(
      'lost the event stream (fetch failed); gave up after 2 retries',
    );
    expect((err as Error).cause).toBe(failure);
  });

  it('refuses a problem that is not worth a retry (404) at once', async () => {
    const { client, requests } = clientAnswering(problemAnswer(404, 'No decision with id d1'));
    const err = await collect(client.events('d1')).catch((e: unknown) => e);
    expect((err as DecisionApiError).status).toBe(404);
    expect(requests).toHaveLength(1);
  });

  it('passes over live data that is not JSON, but refuses a durable event whose data is not', async () => {
    const live = sse(
      `id: 1-0_1-1\nevent: phase.delta\ndata: {"text":\n\n` +
        `id: 2-0_1-1\nevent: decision.cancelled\ndata: ${JSON.stringify(CANCELLED)}\n\n`,
    );
    expect((await collect(clientAnswering(live).client.events('d1'))).map((e) => e.id)).toEqual([
      '2-0_1-1',
    ]);
    const durable = sse(`id: 1-0\nevent: decision.started\ndata: {"process_id":\n\n`);
    await expect(collect(clientAnswering(durable).client.events('d1'))).rejects.toThrow(
      new DecisionProtocolError('The server sent a decision.started event whose data is not JSON'),
    );
  });

  it('closes the connection when the loop stops reading', async () => {
    let cancelled = false;
    const client = createDecisionClient({
      baseUrl: 'http://api.test',
      fetch: () => {
        const body = new ReadableStream<Uint8Array>({
          start(stream) {
            const started = `id: 1-0\nevent: decision.started\ndata: ${JSON.stringify(STARTED)}\n\n`;
            stream.enqueue(new TextEncoder().encode(started));
          },
          cancel() {
            cancelled = true;
          },
        });
        return Promise.resolve(new Response(body, { status: 200 }));
      },
    });
    for await (const event of client.events('d1')) {
      expect(event.type).toBe('decision.started');
      break;
    }
    expect(cancelled).toBe(true);
  });

  it('stops at once when aborted, without a reconnect', async () => {
    const controller = new AbortController();
    const reconnects: Reconnect[] = [];
    // One stream that sends decision.started and stays open, as while a phase runs.
    const client = createDecisionClient({
      baseUrl: 'http://api.test',
      fetch: (request) => {
        const body = new ReadableStream<Uint8Array>({
          start(stream) {
            const started = `id: 1-0\nevent: decision.started\ndata: ${JSON.stringify(STARTED)}\n\n`;
            stream.enqueue(new TextEncoder().encode(started));
            request.signal.addEventListener('abort', () => stream.error(request.signal.reason));
          },
        });
        return Promise.resolve(new Response(body, { status: 200 }));
      },
    });
    const events = client.events('d1', {
      signal: controller.signal,
      onReconnect: (r) => reconnects.push(r),
    });
    expect((await events.next()).value).toMatchObject({ type: 'decision.started' });
    controller.abort();
    await expect(events.next()).rejects.toThrow(/abort/i);
    expect(reconnects).toEqual([]);
  });
});
