import OpenAI from 'openai';
import {
  classifyModelError,
  ModelErrorType,
  outputTooLarge,
  permanent,
  retryable,
  type ProviderErrorReport,
} from './errors';
import { toStrictSchema } from './json-schema';
import type { LanguageModel, ModelRequest, ModelResponse } from './model';

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
  /** Where the provider's own error text goes: the log, never the decision's record. */
  onProviderError?: (report: ProviderErrorReport) => void;
}

const JSON_RULES =
  'Reply with one JSON object that matches the JSON Schema below, and nothing else: no prose, ' +
  'no Markdown fences.';

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

  return {
    name: options.model,
    async generate(request: ModelRequest): Promise<ModelResponse> {
      // Without enforcement by the server the schema, with its limits, is part of the prompt.
      const system = strict
        ? request.system
        : `${request.system}\n\n${JSON_RULES}\n\n${JSON.stringify(request.jsonSchema)}`;
      try {
        const completion = await client.chat.completions.create(
          {
            model: options.model,
            messages: [{ role: 'system', content: system }, ...request.messages],
            response_format: responseFormat(request),
            ...(options.tokenLimitField === 'max_tokens'
              ? { max_tokens: request.maxOutputTokens }
              : { max_completion_tokens: request.maxOutputTokens }),
          },
          { signal: request.signal },
        );
        const choice = completion.choices?.[0];
        if (!choice) {
          throw retryable(ModelErrorType.BadResponse, `${options.model} returned no choices`);
        }
        if (choice.message.refusal || choice.finish_reason === 'content_filter') {
          throw permanent(
            ModelErrorType.ContentRefused,
            `${options.model} refused to answer: ${(choice.message.refusal ?? 'content filter').slice(0, 200)}`,
          );
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
        return {
          text,
          model: completion.model || options.model,
          usage: completion.usage
            ? {
                input_tokens: completion.usage.prompt_tokens,
                output_tokens: completion.usage.completion_tokens,
              }
            : null,
        };
      } catch (err) {
        throw classifyModelError(err, options.model, options.onProviderError);
      }
    },
  };
}
