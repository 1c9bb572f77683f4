import OpenAI from 'openai';
import { classifyModelError, ModelErrorType, permanent, retryable } from './errors';
import type { LanguageModel, ModelRequest, ModelResponse } from './model';

export interface OpenAIModelOptions {
  model: string;
  apiKey: string;
  /** Any OpenAI-compatible Chat Completions endpoint (Azure, Ollama, vLLM, LM Studio, …). */
  baseURL?: string;
  timeoutMs: number;
  /** `json_schema` where the server supports structured outputs, else `json_object`. */
  responseFormat: 'json_schema' | 'json_object';
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
  return {
    name: options.model,
    async generate(request: ModelRequest): Promise<ModelResponse> {
      try {
        const completion = await client.chat.completions.create(
          {
            model: options.model,
            messages: [{ role: 'system', content: request.system }, ...request.messages],
            response_format:
              options.responseFormat === 'json_schema'
                ? {
                    type: 'json_schema',
                    json_schema: {
                      name: request.schemaName,
                      schema: request.jsonSchema,
                      strict: false,
                    },
                  }
                : { type: 'json_object' },
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
            `${options.model} refused to answer: ${choice.message.refusal ?? 'content filter'}`,
          );
        }
        return {
          text: choice.message.content ?? '',
          model: completion.model || options.model,
          usage: completion.usage
            ? {
                input_tokens: completion.usage.prompt_tokens,
                output_tokens: completion.usage.completion_tokens,
              }
            : null,
        };
      } catch (err) {
        throw classifyModelError(err, options.model);
      }
    },
  };
}
