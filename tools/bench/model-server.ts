import { createServer, type ServerResponse } from 'node:http';
import { markedAnswer, markerOf } from './schema-answer';

/** Milliseconds since the epoch, to the microsecond: comparable across this machine's processes. */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

export interface ModelServerOptions {
  /** Chunks per answer (fewer where the schema's strings have no room for them). */
  chunks: number;
  /** Time between two chunks: a call lasts about `chunks × intervalMs`. */
  intervalMs: number;
  /**
   * The provider's limit: a call that would make more than this many in the trailing minute is
   * answered 429 with Retry-After (until the oldest has left it); 0 or absent: none.
   */
  limitPerMinute?: number;
}

/** Every call that reached the server since it started (`GET /bench/requests`). */
export interface ReceivedRequests {
  /** When each arrived (wallClockMs), refused ones too, in order. */
  arrivals: number[];
  /** Calls answered 429 for the limit. */
  refused: number;
}

const MINUTE_MS = 60_000;

/** What the server has sent since it was last asked: when each marker left it, and the calls. */
export interface SentMarkers {
  /** Marker → when the chunk carrying it was written (wallClockMs). */
  sent: Record<string, number>;
  calls: number;
  streamed: number;
  chunks: number;
  /** Calls whose client went away before the answer was complete. */
  aborted: number;
  /** The most calls open at once. */
  max_open: number;
}

interface ChatBody {
  model?: string;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  messages?: { content?: unknown }[];
  response_format?: { json_schema?: { schema?: unknown } };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

/**
 * A Chat Completions server for the bench: it answers every call with JSON valid for the schema
 * in its `response_format` (see markedAnswer), streamed as Server-Sent Events when the request
 * says `stream: true` (a chunk every `intervalMs`, each carrying a marker whose send time it
 * records), else in one response after the same time. `GET /bench/markers` hands over what was
 * sent and forgets it; `GET /bench/requests`, when every call arrived. With a limit, it answers a
 * call over it 429, as a provider does.
 */
export function createModelServer(options: ModelServerOptions) {
  let markers = 0;
  let open = 0;
  const fresh = (): SentMarkers => ({
    sent: {},
    calls: 0,
    streamed: 0,
    chunks: 0,
    aborted: 0,
    max_open: open,
  });
  let record = fresh();
  const received: ReceivedRequests = { arrivals: [], refused: 0 };
  // The calls answered within the trailing minute, oldest first from `oldest`.
  const answered: number[] = [];
  let oldest = 0;
  /** Ms until the call arriving `at` fits the limit; 0 when it does (and it is then counted). */
  const overLimit = (at: number): number => {
    const limit = options.limitPerMinute ?? 0;
    if (limit <= 0) return 0;
    while (oldest < answered.length && answered[oldest]! <= at - MINUTE_MS) oldest += 1;
    if (answered.length - oldest >= limit) return answered[oldest]! + MINUTE_MS - at;
    answered.push(at);
    return 0;
  };

  const answer = (res: ServerResponse, body: ChatBody) => {
    const schema = body.response_format?.json_schema?.schema;
    if (typeof schema !== 'object' || schema === null) {
      sendJson(res, 400, {
        error: { message: 'the bench model server needs response_format json_schema' },
      });
      return;
    }
    const { chunks, markers: carried } = markedAnswer(
      schema as Record<string, unknown>,
      options.chunks,
      () => markerOf(markers++),
    );
    const content = chunks.join('');
    const promptChars = (body.messages ?? []).reduce(
      (sum, m) => sum + (typeof m.content === 'string' ? m.content.length : 0),
      0,
    );
    const usage = {
      prompt_tokens: Math.ceil(promptChars / 4),
      completion_tokens: Math.ceil(content.length / 4),
      total_tokens: Math.ceil(promptChars / 4) + Math.ceil(content.length / 4),
    };
    const id = `chatcmpl-bench-${record.calls}`;
    const created = Math.floor(Date.now() / 1000);
    const model = body.model ?? 'bench';
    const started = performance.now();
    let closed = false;
    open += 1;
    record.max_open = Math.max(record.max_open, open);
    res.on('close', () => {
      open -= 1;
      if (!res.writableEnded) {
        closed = true;
        record.aborted += 1;
      }
    });
    record.calls += 1;

    if (body.stream !== true) {
      setTimeout(() => {
        if (closed) return;
        const at = wallClockMs();
        for (const marker of carried) record.sent[marker] = at;
        sendJson(res, 200, {
          id,
          object: 'chat.completion',
          created,
          model,
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content, refusal: null },
              finish_reason: 'stop',
            },
          ],
          usage,
        });
      }, chunks.length * options.intervalMs);
      return;
    }

    record.streamed += 1;
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
    });
    const event = (delta: object, finish: string | null, extra: object = {}) =>
      `data: ${JSON.stringify({
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        choices: [{ index: 0, delta, finish_reason: finish }],
        ...extra,
      })}\n\n`;
    res.write(event({ role: 'assistant', content: '' }, null));
    let next = 0;
    const tick = () => {
      if (closed) return;
      const chunk = chunks[next]!;
      const marker = carried[next];
      if (marker !== undefined) record.sent[marker] = wallClockMs();
      res.write(event({ content: chunk }, null));
      record.chunks += 1;
      next += 1;
      if (next < chunks.length) {
        // Paced from the start, so that a late tick does not push every later one back.
        setTimeout(
          tick,
          Math.max(0, started + (next + 1) * options.intervalMs - performance.now()),
        );
        return;
      }
      res.write(event({}, 'stop'));
      if (body.stream_options?.include_usage) {
        res.write(
          `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [], usage })}\n\n`,
        );
      }
      res.end('data: [DONE]\n\n');
    };
    setTimeout(tick, options.intervalMs);
  };

  const server = createServer((req, res) => {
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    const url = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && url === '/bench/markers') {
      const taken = record;
      record = fresh();
      sendJson(res, 200, taken);
      return;
    }
    if (req.method === 'GET' && url === '/bench/requests') {
      sendJson(res, 200, received);
      return;
    }
    if (req.method !== 'POST' || url !== '/v1/chat/completions') {
      sendJson(res, 404, { error: { message: `no route ${req.method} ${req.url}` } });
      return;
    }
    const at = wallClockMs();
    received.arrivals.push(at);
    const waitMs = overLimit(at);
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (raw += chunk));
    req.on('end', () => {
      if (waitMs > 0) {
        received.refused += 1;
        res.writeHead(429, {
          'Content-Type': 'application/json',
          'Retry-After': String(Math.ceil(waitMs / 1000)),
        });
        res.end(JSON.stringify({ error: { message: 'Rate limit reached for requests' } }));
        return;
      }
      let body: ChatBody;
      try {
        body = JSON.parse(raw) as ChatBody;
      } catch {
        sendJson(res, 400, { error: { message: 'the request body is not JSON' } });
        return;
      }
      answer(res, body);
    });
  });
  return server;
}

// Run as its own process by the bench (node --import tsx tools/bench/model-server.ts <port>
// <chunks> <interval ms> [<limit per minute>]), so that its timers do not share an event loop
// with the clients.
if (require.main === module) {
  const [port, chunks, intervalMs, limitPerMinute = 0] = process.argv.slice(2).map(Number);
  if (![port, chunks, intervalMs, limitPerMinute].every((n) => Number.isInteger(n) && n! >= 0)) {
    process.stderr.write(
      'usage: model-server.ts <port> <chunks per answer> <interval in ms> [<limit per minute>]\n',
    );
    process.exit(2);
  }
  const server = createModelServer({ chunks: chunks!, intervalMs: intervalMs!, limitPerMinute });
  server.keepAliveTimeout = 60_000;
  server.listen(port, '127.0.0.1', () =>
    process.stdout.write(`Model server listening on http://127.0.0.1:${port}\n`),
  );
  process.once('SIGTERM', () => process.exit(0));
}
