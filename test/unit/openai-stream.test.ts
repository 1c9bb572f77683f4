import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerBounds, validateAnswer } from '../../src/activities/run-agent';
import { loadWorkerConfig } from '../../src/config';
import { estimateInputTokens, withBudget } from '../../src/llm/budget';
import { toStrictSchema } from '../../src/llm/json-schema';
import { receivedUsage, type ModelRequest } from '../../src/llm/model';
import type { OpenAIModelOptions } from '../../src/llm/openai';
import { createModel } from '../../src/main/model';
import { phaseNamed } from '../../src/phases';
import type { AgentContext } from '../../src/phases/phase';
import { localOpenAIModel } from '../support/activities';
import { limits } from '../support/budget';
import { CANNED_QUERY } from '../support/canned-outputs';
import { startFakeOpenAI, type ChatRequest } from '../support/fake-openai-server';
import { STREAM_PIECE_CHARS, type StreamPlan } from '../support/local-server';
import { MemoryBudgetLedger } from '../support/memory-deps';
import { waitFor } from '../support/wait';

const phase = phaseNamed('identifyTrigger');
const ctx: AgentContext = { query: CANNED_QUERY, outputs: {} };
const schema = phase.answer(ctx);
const bounds = answerBounds(schema);

/** The identifyTrigger call runAgent makes. */
function agentRequest(extra: Partial<ModelRequest> = {}): ModelRequest {
  return {
    task: phase.name,
    system: phase.system,
    messages: [{ role: 'user', content: phase.prompt(ctx) }],
    schemaName: phase.name,
    jsonSchema: bounds.jsonSchema,
    maxOutputTokens: bounds.maxOutputTokens,
    maxAnswerChars: bounds.maxAnswerChars,
    hints: ctx,
    ...extra,
  };
}

/** How a call failed: the failure, and what it was marked as having received. */
async function failureOf(call: Promise<unknown>) {
  const err = await call.then(
    () => expect.fail('the call succeeded'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return { failure: err as ApplicationFailure, received: receivedUsage(err) };
}

describe('the openai provider, streaming, against a local Chat Completions server', () => {
  let server: Awaited<ReturnType<typeof startFakeOpenAI>>;
  const model = (options: Partial<OpenAIModelOptions> = {}) =>
    localOpenAIModel(server.baseURL, options);
  /** The one request the server received since its reset. */
  const received = (): ChatRequest => {
    expect(server.requests).toHaveLength(1);
    return server.requests[0]!;
  };
  const closed = () =>
    waitFor('the client to close the connection', () => received().closedAt ?? undefined, 2000, {
      intervalMs: 5,
    });

  beforeAll(async () => {
    server = await startFakeOpenAI();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('asks for a stream with usage and the schema, gives the pieces as they come, and takes the usage of the last chunk', async () => {
    server.reset(() => undefined, { stream: { paceMs: 5 } });
    const pieces: { piece: string; tokens: number }[] = [];
    const llm = model();
    expect(llm.streams).toBe(true);
    const response = await llm.generate(
      agentRequest({ onOutput: (piece, tokens) => pieces.push({ piece, tokens }) }),
    );

    expect(validateAnswer(schema, response.text).ok).toBe(true);
    expect(response).toMatchObject({
      model: 'test-model',
      usage: { input_tokens: 100, output_tokens: 20 },
    });
    expect(response.usageEstimated).toBeUndefined();
    const sent = received();
    expect(sent.body).toMatchObject({
      stream: true,
      stream_options: { include_usage: true },
      max_completion_tokens: bounds.maxOutputTokens,
      response_format: {
        type: 'json_schema',
        json_schema: { name: phase.name, strict: true, schema: toStrictSchema(bounds.jsonSchema) },
      },
    });
    expect(sent.aborted).toBe(false);
    // One piece per chunk the server wrote, in order, with a count that grows.
    expect(pieces.map((p) => p.piece).join('')).toBe(response.text);
    expect(pieces).toHaveLength(sent.chunks);
    expect(sent.chunks).toBe(Math.ceil(response.text.length / STREAM_PIECE_CHARS));
    const counts = pieces.map((p) => p.tokens);
    expect(counts[0]).toBeGreaterThan(0);
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
  });

  it('estimates the usage of a stream that ends without any, marks it, and says so once', async () => {
    server.reset(() => undefined, { stream: { usage: false } });
    const warnings: string[] = [];
    const llm = model({ onUsageEstimated: (name) => warnings.push(name) });
    const request = agentRequest();
    const first = await llm.generate(request);
    const chunks = received().chunks;
    await llm.generate(request);

    expect(first.usageEstimated).toBe(true);
    expect(first.usage!.input_tokens).toBe(estimateInputTokens(request));
    // At least a token a chunk, and about four characters a token.
    expect(first.usage!.output_tokens).toBeGreaterThanOrEqual(chunks);
    expect(first.usage!.output_tokens).toBeGreaterThanOrEqual(Math.ceil(first.text.length / 4));
    expect(warnings).toEqual(['test-model']);
  });

  // The server breaks its stream after 3 chunks; what they carried is estimated at a quarter of
  // its characters (more than a token a chunk).
  it.each<[string, NonNullable<StreamPlan['breakAfter']>, string, RegExp, boolean]>([
    [
      'a chunk that is not JSON',
      { chunks: 3, then: 'malformed' },
      'ModelBadResponse',
      /Unusable answer/,
      true,
    ],
    [
      'a chunk without choices',
      { chunks: 3, then: 'no-choices' },
      'ModelBadResponse',
      /without choices/,
      true,
    ],
    [
      'the end of the body with no finish_reason',
      { chunks: 3, then: 'end' },
      'ModelBadResponse',
      /stopped in the middle/,
      false,
    ],
    [
      'silence with the connection held open',
      { chunks: 3, then: 'hang' },
      'ModelTimeout',
      /did not answer in time/,
      true,
    ],
  ])(
    'fails on %s as a retryable failure, paid for what it received',
    async (_name, breakAfter, type, message, closesConnection) => {
      server.reset(() => undefined, { stream: { breakAfter } });
      const request = agentRequest();
      const started = Date.now();
      const { failure, received: usage } = await failureOf(
        model({ timeoutMs: 400 }).generate(request),
      );

      expect(failure).toMatchObject({ type, nonRetryable: false });
      expect(failure.message).toMatch(message);
      expect(usage).toEqual({
        input_tokens: estimateInputTokens(request),
        output_tokens: (3 * STREAM_PIECE_CHARS) / 4,
      });
      expect(received().chunks).toBe(3);
      if (closesConnection) {
        expect(await closed()).toBeLessThan(started + 2000);
      }
      if (type === 'ModelTimeout') {
        // The call's deadline ended it, not the server.
        expect(received().closedAt! - started).toBeGreaterThanOrEqual(400);
      }
    },
  );

  it.each<[string, StreamPlan, string]>([
    ['a refusal', { refusal: 'I cannot help with that.' }, 'ModelContentRefused'],
    ['the content filter', { finishReason: 'content_filter' }, 'ModelContentRefused'],
    ['the token cap', { finishReason: 'length' }, 'OutputTooLarge'],
  ])('fails for good on %s, paid as the provider counted', async (_name, stream, type) => {
    server.reset(() => undefined, { stream });
    const { failure, received: usage } = await failureOf(model().generate(agentRequest()));
    expect(failure).toMatchObject({ type, nonRetryable: true });
    expect(usage).toEqual({ input_tokens: 100, output_tokens: 20 });
  });

  it('stops reading an answer as soon as it passes its length, and closes the connection', async () => {
    server.reset(() => undefined, { stream: { paceMs: 50 } });
    const given: string[] = [];
    const limit = 5 * STREAM_PIECE_CHARS;
    const request = agentRequest({ maxAnswerChars: limit, onOutput: (piece) => given.push(piece) });
    const { failure, received: usage } = await failureOf(model().generate(request));

    expect(failure).toMatchObject({ type: 'OutputTooLarge', nonRetryable: true });
    // Five pieces fit; the sixth passed the limit and was not given on.
    expect(failure.message).toContain(
      `${6 * STREAM_PIECE_CHARS} characters, over the phase's limit of ${limit}`,
    );
    expect(given.join('')).toHaveLength(limit);
    await closed();
    expect(received().chunks).toBeLessThan(10);
    expect(usage).toEqual({
      input_tokens: estimateInputTokens(request),
      output_tokens: (6 * STREAM_PIECE_CHARS) / 4,
    });
  });

  it('stops the HTTP request at once when the caller aborts mid-answer, paid for what it received', async () => {
    server.reset(() => undefined, { stream: { paceMs: 250 } });
    const abort = new AbortController();
    let pieces = 0;
    let abortedAt = 0;
    const request = agentRequest({
      signal: abort.signal,
      onOutput: () => {
        if (++pieces < 3) return;
        abortedAt = Date.now();
        abort.abort();
      },
    });
    const { failure, received: usage } = await failureOf(model().generate(request));

    expect(failure).toMatchObject({ type: 'ModelCallCancelled', nonRetryable: false });
    expect((await closed()) - abortedAt).toBeLessThan(200);
    // The server would have written a fourth chunk 250 ms after the third.
    expect(received().chunks).toBe(3);
    expect(usage).toEqual({
      input_tokens: estimateInputTokens(request),
      output_tokens: (3 * STREAM_PIECE_CHARS) / 4,
    });
  });

  it('stops a call aborted before its answer began, paid for its input', async () => {
    server.reset(() => undefined, { delayMs: 2000 });
    const abort = new AbortController();
    const request = agentRequest({ signal: abort.signal });
    const call = model({ timeoutMs: 10_000 }).generate(request);
    await waitFor('the request to reach the server', () => server.requests[0], 2000, {
      intervalMs: 5,
    });
    const abortedAt = Date.now();
    abort.abort();
    const { failure, received: usage } = await failureOf(call);

    expect(failure).toMatchObject({ type: 'ModelCallCancelled' });
    expect((await closed()) - abortedAt).toBeLessThan(200);
    expect(usage).toEqual({ input_tokens: estimateInputTokens(request), output_tokens: 0 });
  });

  it("is cut where it reaches the decision's budget: the request stops, BudgetExceeded", async () => {
    server.reset(() => undefined, { stream: { paceMs: 50 } });
    const request = agentRequest();
    const input = estimateInputTokens(request);
    // Room for the input and 10 output tokens: the estimate passes it at the sixth chunk.
    const budgeted = withBudget(model(), new MemoryBudgetLedger(), 'd', limits(10, input + 10));
    const { failure, received: usage } = await failureOf(budgeted.generate(request));

    expect(failure).toMatchObject({ type: 'BudgetExceeded', nonRetryable: true });
    await closed();
    expect(received().chunks).toBeLessThan(9);
    expect(usage).toEqual({ input_tokens: input, output_tokens: (6 * STREAM_PIECE_CHARS) / 4 });
  });

  it.each([
    ['unset streams', undefined, true],
    ['=false asks for the whole answer, as before', 'false', false],
  ])('LLM_STREAM %s', async (_name, LLM_STREAM, streams) => {
    server.reset(() => undefined);
    const llm = createModel(
      loadWorkerConfig({
        LLM_PROVIDER: 'openai',
        LLM_MODEL: 'test-model',
        LLM_BASE_URL: server.baseURL,
        LLM_STREAM,
      }),
    );
    const pieces: string[] = [];
    const response = await llm.generate(agentRequest({ onOutput: (p) => pieces.push(p) }));

    expect(llm.streams).toBe(streams);
    expect(validateAnswer(schema, response.text).ok).toBe(true);
    expect(response.usage).toEqual({ input_tokens: 100, output_tokens: 20 });
    const body = received().body;
    if (streams) {
      expect(body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
      expect(pieces.length).toBeGreaterThan(1);
    } else {
      expect(body).not.toHaveProperty('stream');
      expect(body).not.toHaveProperty('stream_options');
      // The live view still gets the answer: once, whole.
      expect(pieces).toEqual([response.text]);
    }
  });
});
