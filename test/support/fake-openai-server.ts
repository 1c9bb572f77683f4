import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import {
  listenOnLoopback,
  sendCompletion,
  sendFault,
  type ModelFault,
  type StreamPlan,
} from './local-server';
import { phaseNamed } from '../../src/phases';
import type { PromptPassage } from '../../src/phases/phase';
import { PHASE_NAMES } from '../../src/domain/phases';
import { cannedAnswer } from './fake-model';

export interface ChatRequest {
  /** The phase, from the structured-output schema name. */
  task: string;
  body: {
    model: string;
    messages: { role: string; content: string }[];
    stream?: boolean;
    stream_options?: { include_usage?: boolean };
    response_format?: { type: string; json_schema?: { name?: string; schema?: object } };
  };
  at: number;
  /** The client closed the connection before an answer was sent (an aborted call). */
  aborted: boolean;
  /** When the client closed it, if it did before the answer's end. */
  closedAt: number | null;
  /** Chunks of the answer a streamed reply has written so far. */
  chunks: number;
}

/** What the server does with a request: answer, or fail in one of the ways real servers do. */
export type Fault = Exclude<ModelFault, { kind: 'hold' }>;

/** The phase whose system prompt opens the request (json_object mode sends no schema name). */
function phaseOfSystemPrompt(messages: { role: string; content: string }[]): string {
  const system = messages.find((m) => m.role === 'system')?.content ?? '';
  return PHASE_NAMES.find((phase) => system.startsWith(phaseNamed(phase).system)) ?? 'unknown';
}

/** Recovers the need and passages a retrieval prompt carries, as the canned answer needs them. */
function retrievalContext(prompt: string) {
  const need = /Information need (N\d+): (.*)/.exec(prompt);
  const passages: PromptPassage[] = [...prompt.matchAll(/^\[(P\d+)\] source: (.*?) — (.*)$/gm)].map(
    (m) => ({ ref: m[1]!, source: m[2]!, heading: m[3]!, id: '', text: '' }),
  );
  return {
    need: need ? { id: need[1]!, question: need[2]!, why: '' } : undefined,
    passages,
  };
}

/**
 * A local server speaking the Chat Completions protocol: it answers with canned, schema-valid
 * outputs and reports token usage, unless `fault` returns a fault for the request. A request with
 * `stream: true` gets its answer as server-sent events, as `stream` plans them.
 */
export async function startFakeOpenAI() {
  const requests: ChatRequest[] = [];
  let fault: (request: ChatRequest, sameTask: number) => Fault | undefined = () => undefined;
  let delayMs = 0;
  let plan: StreamPlan = {};

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let raw = '';
    req.on('data', (chunk: Buffer) => (raw += chunk.toString()));
    req.on('end', () => {
      const body = JSON.parse(raw) as ChatRequest['body'];
      const request: ChatRequest = {
        task: body.response_format?.json_schema?.name ?? phaseOfSystemPrompt(body.messages),
        body,
        at: Date.now(),
        aborted: false,
        closedAt: null,
        chunks: 0,
      };
      requests.push(request);
      res.on('close', () => {
        if (res.writableEnded) return;
        request.aborted = true;
        request.closedAt = Date.now();
      });
      const stream = body.stream
        ? { ...plan, onChunk: (sent: number) => (request.chunks = sent) }
        : undefined;
      const sameTask = requests.filter((r) => r.task === request.task).length;
      const injected = fault(request, sameTask);
      if (sendFault(res, injected, stream)) return;
      const prompt = body.messages.find((m) => m.role === 'user')?.content ?? '';
      const content = JSON.stringify(cannedAnswer(request.task, retrievalContext(prompt)));
      const id = `chatcmpl-${requests.length}`;
      const answer = () =>
        sendCompletion(
          res,
          { id, model: body.model, content, promptTokens: 100, completionTokens: 20 },
          stream,
        );
      if (delayMs > 0) setTimeout(answer, delayMs);
      else answer();
    });
  });
  const { port, close } = await listenOnLoopback(server);

  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    requests,
    /**
     * Sets the fault injector, how long each answer takes to begin and how streamed answers
     * come, and forgets earlier requests.
     */
    reset(next: typeof fault, options: { delayMs?: number; stream?: StreamPlan } = {}) {
      fault = next;
      delayMs = options.delayMs ?? 0;
      plan = options.stream ?? {};
      requests.length = 0;
    },
    close,
  };
}
