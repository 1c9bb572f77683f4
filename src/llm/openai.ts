import { ApplicationFailure } from '@temporalio/common';
import OpenAI, { APIConnectionTimeoutError, APIUserAbortError } from 'openai';
import type { ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import type { TokenUsage } from '../domain/decision';
import { estimateInputTokens } from './budget';
import {
  classifyModelError,
  ModelErrorType,
  outputTooLarge,
  permanent,
  retryable,
  type ProviderErrorReport,
} from './errors';
import { toStrictSchema } from './json-schema';
import { withReceived, type LanguageModel, type ModelRequest, type ModelResponse } from './model';

export interface OpenAIModelOptions {
  model: string;
  apiKey: string;
  /** Any OpenAI-compatible Chat Completions endpoint (Azure, Ollama, vLLM, LM Studio, …). */
  baseURL?: string;
  timeoutMs: number;
  /** `json_schema` where the server supports structured outputs, else `json_object`. */
  responseFormat: 'json_schema' | 'json_object';
  /** With `json_schema`: send `strict: true` and the schema in the strict subset. */
  strict: boolean;
  /** The request field that carries the token cap; older servers know only `max_tokens`. */
  tokenLimitField: 'max_completion_tokens' | 'max_tokens';
  /** Ask for the answer as server-sent chunks, given to `onOutput` as they come. */
  stream: boolean;
  /** Where the provider's own error text goes: the log, never the decision's record. */
  onProviderError?: (report: ProviderErrorReport) => void;
  /** Told the first time a streamed answer comes without usage: its tokens are estimated. */
  onUsageEstimated?: (model: string) => void;
}

const JSON_RULES =
  'Reply with one JSON object that matches the JSON Schema below, and nothing else: no prose, ' +
  'no Markdown fences.';

/**
 * The output tokens of a streamed answer so far, which the provider counts in its last chunk only,
 * if at all: at least one a content chunk, as servers send one token a chunk (OpenAI) or more, and
 * at least a quarter of the characters (the budget's estimate of a request), for those that send
 * several.
 */
function estimateOutputTokens(chars: number, chunks: number): number {
  return Math.max(chunks, Math.ceil(chars / 4));
}

/** A model behind the Chat Completions protocol, through the official `openai` client. */
export function createOpenAIModel(options: OpenAIModelOptions): LanguageModel {
  // The SDK's own retries are off: Temporal retries the activity with its policy instead.
  const client = new OpenAI({
    apiKey: options.apiKey,
    baseURL: options.baseURL,
    maxRetries: 0,
    timeout: options.timeoutMs,
  });
  const strict = options.responseFormat === 'json_schema' && options.strict;

  const responseFormat = (request: ModelRequest) =>
    options.responseFormat === 'json_schema'
      ? {
          type: 'json_schema' as const,
          json_schema: {
            name: request.schemaName,
            schema: strict ? toStrictSchema(request.jsonSchema) : request.jsonSchema,
            strict,
          },
        }
      : { type: 'json_object' as const };

  /** The request both ways of asking share: messages, answer format, token cap. */
  const bodyOf = (request: ModelRequest): ChatCompletionCreateParamsNonStreaming => {
    // Without enforcement by the server the schema, with its limits, is part of the prompt.
    const system = strict
      ? request.system
      : `${request.system}\n\n${JSON_RULES}\n\n${JSON.stringify(request.jsonSchema)}`;
    return {
      model: options.model,
      messages: [{ role: 'system', content: system }, ...request.messages],
      response_format: responseFormat(request),
      ...(options.tokenLimitField === 'max_tokens'
        ? { max_tokens: request.maxOutputTokens }
        : { max_completion_tokens: request.maxOutputTokens }),
    };
  };

  const refused = (refusal: string | null | undefined) =>
    permanent(
      ModelErrorType.ContentRefused,
      `${options.model} refused to answer: ${(refusal || 'content filter').slice(0, 200)}`,
    );

  async function whole(request: ModelRequest): Promise<ModelResponse> {
    try {
      const completion = await client.chat.completions.create(bodyOf(request), {
        signal: request.signal,
      });
      const choice = completion.choices?.[0];
      if (!choice) {
        throw retryable(ModelErrorType.BadResponse, `${options.model} returned no choices`);
      }
      if (choice.message.refusal || choice.finish_reason === 'content_filter') {
        throw refused(choice.message.refusal);
      }
      const text = choice.message.content ?? '';
      // Checked here, before the answer is stored or parsed.
      if (text.length > request.maxAnswerChars) {
        throw outputTooLarge(request.task, options.model, {
          chars: text.length,
          maxChars: request.maxAnswerChars,
        });
      }
      if (choice.finish_reason === 'length') {
        throw outputTooLarge(request.task, options.model, {
          maxTokens: request.maxOutputTokens,
        });
      }
      const usage = completion.usage
        ? {
            input_tokens: completion.usage.prompt_tokens,
            output_tokens: completion.usage.completion_tokens,
          }
        : null;
      // The whole answer at once, so that the live view shows it too.
      request.onOutput?.(text, usage?.output_tokens ?? estimateOutputTokens(text.length, 0));
      return { text, model: completion.model || options.model, usage };
    } catch (err) {
      throw classifyModelError(err, options.model, options.onProviderError);
    }
  }

  let warnedOfEstimates = false;

  async function streamed(request: ModelRequest): Promise<ModelResponse> {
    const inputTokens = estimateInputTokens(request);
    // Messages name the model as configured; the server's own name for it is the answer's.
    let answeredBy = options.model;
    let text = '';
    let pieces = 0;
    let refusal = '';
    let finish: string | null = null;
    let usage: TokenUsage | null = null;
    const outputTokens = () => estimateOutputTokens(text.length, pieces);

    // The client's timeout stops at a streamed response's headers (openai 7.57: the silent-stream
    // test fails without this), so the deadline it keeps for an answer in one piece, the whole
    // call within LLM_TIMEOUT_MS, is kept here. It also ends a stream that falls silent.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), options.timeoutMs);
    const signal = request.signal
      ? AbortSignal.any([request.signal, deadline.signal])
      : deadline.signal;
    let begun = false;
    try {
      const stream = await client.chat.completions.create(
        { ...bodyOf(request), stream: true, stream_options: { include_usage: true } },
        { signal },
      );
      begun = true;
      // Leaving the loop by a throw aborts the request: the server sees the connection close.
      for await (const chunk of stream) {
        if (!Array.isArray(chunk.choices)) {
          throw retryable(
            ModelErrorType.BadResponse,
            `${options.model} sent a chunk without choices`,
          );
        }
        answeredBy = chunk.model || answeredBy;
        if (chunk.usage) {
          usage = {
            input_tokens: chunk.usage.prompt_tokens,
            output_tokens: chunk.usage.completion_tokens,
          };
        }
        const choice = chunk.choices[0];
        if (!choice) continue;
        refusal += choice.delta.refusal ?? '';
        const piece = choice.delta.content;
        if (piece) {
          text += piece;
          pieces += 1;
          // Checked as it comes: the rest of an answer that cannot be used is not paid for.
          if (text.length > request.maxAnswerChars) {
            throw outputTooLarge(request.task, options.model, {
              chars: text.length,
              maxChars: request.maxAnswerChars,
            });
          }
          request.onOutput?.(piece, outputTokens());
        }
        finish = choice.finish_reason ?? finish;
      }
      // An abort (the caller's or the deadline's) ends the client's loop quietly, as the answer's
      // end does.
      signal.throwIfAborted();
      if (refusal || finish === 'content_filter') throw refused(refusal);
      if (finish === 'length') {
        throw outputTooLarge(request.task, options.model, { maxTokens: request.maxOutputTokens });
      }
      if (!finish) {
        throw retryable(
          ModelErrorType.BadResponse,
          `${options.model} stopped in the middle of its answer`,
        );
      }
    } catch (err) {
      const cause =
        err instanceof ApplicationFailure
          ? err
          : request.signal?.aborted
            ? new APIUserAbortError()
            : deadline.signal.aborted
              ? new APIConnectionTimeoutError()
              : err;
      const failure = classifyModelError(cause, options.model, options.onProviderError);
      // Once the answer began, or when the call was stopped, tokens were or may have been spent:
      // the call is paid for what it had received. An error before any answer (a status, no
      // connection) was not billed.
      const stopped = request.signal?.aborted || deadline.signal.aborted;
      throw begun || stopped
        ? withReceived(
            failure,
            usage ?? { input_tokens: inputTokens, output_tokens: outputTokens() },
          )
        : failure;
    } finally {
      clearTimeout(timer);
    }
    if (usage) return { text, model: answeredBy, usage };
    if (!warnedOfEstimates) {
      warnedOfEstimates = true;
      options.onUsageEstimated?.(options.model);
    }
    return {
      text,
      model: answeredBy,
      usage: { input_tokens: inputTokens, output_tokens: outputTokens() },
      usageEstimated: true,
    };
  }

  return {
    name: options.model,
    streams: options.stream,
    generate: options.stream ? streamed : whole,
  };
}
