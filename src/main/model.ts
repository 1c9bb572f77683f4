import { createOfflineModel } from '../llm/offline-model';
import type { WorkerConfig } from '../config';
import type { LanguageModel } from '../llm/model';
import { createOpenAIModel, type OpenAIModelOptions } from '../llm/openai';

/** What a provider tells the log: its own error texts, and token counts it leaves to estimates. */
export type ModelLog = Pick<OpenAIModelOptions, 'onProviderError' | 'onUsageEstimated'>;

/** The model the configuration names: `offline` (default) or any OpenAI-compatible endpoint. */
export function createModel(config: WorkerConfig, log: ModelLog = {}): LanguageModel {
  if ((config.LLM_PROVIDER ?? 'offline') === 'offline') {
    return createOfflineModel({ delayMs: config.LLM_OFFLINE_DELAY_MS });
  }
  return createOpenAIModel({
    model: config.LLM_MODEL!,
    // Local servers (Ollama, vLLM, LM Studio) take any key; the client insists on one.
    apiKey: config.LLM_API_KEY ?? 'no-key',
    baseURL: config.LLM_BASE_URL,
    timeoutMs: config.LLM_TIMEOUT_MS,
    responseFormat: config.LLM_RESPONSE_FORMAT,
    strict: config.LLM_STRICT_SCHEMA,
    tokenLimitField: config.LLM_TOKEN_LIMIT_FIELD,
    stream: config.LLM_STREAM,
    ...log,
  });
}

/**
 * The key of the configured provider and model in the provider limit: the endpoint's host names
 * the provider (its limits are an account's at that host), so that two models, or one model at
 * two endpoints, have limits of their own.
 */
export function providerLimitKey(config: WorkerConfig, model: LanguageModel): string {
  const provider = config.LLM_PROVIDER ?? 'offline';
  if (provider === 'offline') return `offline:${model.name}`;
  const host = config.LLM_BASE_URL ? new URL(config.LLM_BASE_URL).host : 'api.openai.com';
  return `${provider}:${host}:${config.LLM_MODEL ?? model.name}`;
}
