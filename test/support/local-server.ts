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

/** Writes a status or a malformed body; a hang writes nothing. False for no fault or a hold. */
export function sendFault(res: ServerResponse, fault: ModelFault | undefined): boolean {
  if (!fault || fault.kind === 'hold') return false;
  if (fault.kind === 'hang') return true;
  if (fault.kind === 'answer') {
    sendCompletion(res, {
      id: 'chatcmpl-fault',
      model: 'fault',
      content: fault.content,
      promptTokens: 10,
      completionTokens: Math.ceil(fault.content.length / 4),
    });
    return true;
  }
  if (fault.kind === 'malformed') {
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

/** Answers a Chat Completions request with `content` as the assistant's message. */
export function sendCompletion(
  res: ServerResponse,
  answer: {
    id: string;
    model: unknown;
    content: string;
    promptTokens: number;
    completionTokens: number;
  },
): void {
  if (res.destroyed) return;
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
      usage: {
        prompt_tokens: answer.promptTokens,
        completion_tokens: answer.completionTokens,
        total_tokens: answer.promptTokens + answer.completionTokens,
      },
    }),
  );
}
