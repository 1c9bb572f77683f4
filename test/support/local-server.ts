import type { Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** Listens on a free loopback port; `close` ends open connections too, so it never hangs. */
export async function listenOnLoopback(
  server: Server,
): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** What a model server does instead of answering at once, as real ones sometimes do. */
export type ModelFault =
  | { kind: 'status'; status: number; headers?: Record<string, string>; message?: string }
  | { kind: 'hang' }
  | { kind: 'malformed' }
  /** Answers with this content: JSON that breaks the schema it was sent, say. */
  | { kind: 'answer'; content: string }
  /** Answers once `until` settles (to act, e.g. kill a worker, while the call is in flight). */
  | { kind: 'hold'; until: Promise<unknown> };

/**
 * Writes a status or a malformed body; a hang writes nothing. False for no fault or a hold. To a
 * request that asked for a stream (`stream`), the answer and the malformed body come as one.
 */
export function sendFault(
  res: ServerResponse,
  fault: ModelFault | undefined,
  stream?: StreamPlan,
): boolean {
  if (!fault || fault.kind === 'hold') return false;
  if (fault.kind === 'hang') return true;
  if (fault.kind === 'answer') {
    sendCompletion(
      res,
      {
        id: 'chatcmpl-fault',
        model: 'fault',
        content: fault.content,
        promptTokens: 10,
        completionTokens: Math.ceil(fault.content.length / 4),
      },
      stream,
    );
    return true;
  }
  if (fault.kind === 'malformed') {
    if (stream) {
      sendCompletion(
        res,
        { id: 'chatcmpl-x', model: 'fault', content: '{}', promptTokens: 10, completionTokens: 1 },
        { ...stream, breakAfter: { chunks: 0, then: 'malformed' } },
      );
      return true;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end('{"id": "chatcmpl-x", "choices": [ this is not JSON');
    return true;
  }
  res.writeHead(fault.status, { 'Content-Type': 'application/json', ...fault.headers });
  res.end(
    JSON.stringify({
      error: { message: fault.message ?? `status ${fault.status}`, type: 'error', code: null },
    }),
  );
  return true;
}

/** Characters of the answer one streamed chunk carries. */
export const STREAM_PIECE_CHARS = 8;

/** How a server streams its answer to a request with `stream: true`, as server-sent events. */
export interface StreamPlan {
  /** Milliseconds between chunks (default 0: all at once). */
  paceMs?: number;
  /** False: no usage chunk at the end, as servers that ignore `include_usage` do. */
  usage?: boolean;
  /** The finish_reason of the last chunk (default `stop`). */
  finishReason?: 'stop' | 'length' | 'content_filter';
  /** Streams this refusal (`delta.refusal`) instead of the answer. */
  refusal?: string;
  /**
   * After this many chunks of the answer, instead of the rest: a chunk that is not JSON, one
   * without `choices`, the end of the body with no finish_reason, or silence. Only the end closes
   * the connection: a client must stop at a bad chunk itself.
   */
  breakAfter?: { chunks: number; then: 'malformed' | 'no-choices' | 'end' | 'hang' };
  /** Called with each chunk of the answer as it is written (how far the server got). */
  onChunk?: (sent: number) => void;
}

interface Completion {
  id: string;
  model: unknown;
  content: string;
  promptTokens: number;
  completionTokens: number;
}

const usageOf = (answer: Completion) => ({
  prompt_tokens: answer.promptTokens,
  completion_tokens: answer.completionTokens,
  total_tokens: answer.promptTokens + answer.completionTokens,
});

/**
 * Answers a Chat Completions request with `content` as the assistant's message: one JSON body,
 * or with `stream`, chunks as server-sent events in the shape OpenAI sends them (a role chunk,
 * content deltas, a finish chunk, a usage chunk with no choices, `[DONE]`).
 */
export function sendCompletion(res: ServerResponse, answer: Completion, stream?: StreamPlan): void {
  if (res.destroyed) return;
  if (stream) {
    streamCompletion(res, answer, stream);
    return;
  }
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(
    JSON.stringify({
      id: answer.id,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: answer.model,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: answer.content, refusal: null },
          finish_reason: 'stop',
        },
      ],
      usage: usageOf(answer),
    }),
  );
}

function streamCompletion(res: ServerResponse, answer: Completion, plan: StreamPlan): void {
  const created = Math.floor(Date.now() / 1000);
  const chunk = (choices: unknown[], usage: unknown = null) =>
    `data: ${JSON.stringify({ id: answer.id, object: 'chat.completion.chunk', created, model: answer.model, choices, usage })}\n\n`;
  const delta = (d: object, finish: string | null = null) =>
    chunk([{ index: 0, delta: d, logprobs: null, finish_reason: finish }]);
  const text = plan.refusal ?? answer.content;
  const field = plan.refusal === undefined ? 'content' : 'refusal';
  const pieces: string[] = [];
  for (let i = 0; i < text.length; i += STREAM_PIECE_CHARS) {
    pieces.push(text.slice(i, i + STREAM_PIECE_CHARS));
  }

  // What is written, in order: a role chunk, the pieces (events 1 to pieces.length), the end. A
  // function stands for the fault that breaks the stream.
  const events: (string | (() => void))[] = [
    delta({ role: 'assistant', content: '', refusal: null }),
    ...pieces.map((piece) => delta({ [field]: piece })),
    delta({}, plan.finishReason ?? 'stop'),
    ...(plan.usage === false ? [] : [chunk([], usageOf(answer))]),
    'data: [DONE]\n\n',
  ];
  if (plan.breakAfter) {
    const { chunks, then } = plan.breakAfter;
    const fault = {
      malformed: () => void res.write('data: {"id": "chatcmpl-x", "choices": [ not JSON\n\n'),
      'no-choices': () =>
        void res.write(
          `data: ${JSON.stringify({ id: answer.id, object: 'chat.completion.chunk', created, model: answer.model })}\n\n`,
        ),
      end: () => res.end(),
      hang: () => {},
    }[then];
    events.splice(1 + chunks, events.length, fault);
  }
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
  let next = 0;
  const write = () => {
    while (next < events.length && !res.destroyed) {
      const i = next++;
      const event = events[i]!;
      if (typeof event === 'function') return event();
      res.write(event);
      if (i >= 1 && i <= pieces.length) plan.onChunk?.(i);
      if ((plan.paceMs ?? 0) > 0 && next < events.length) {
        setTimeout(write, plan.paceMs);
        return;
      }
    }
    if (!res.destroyed && !res.writableEnded) res.end();
  };
  write();
}
