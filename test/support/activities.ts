import { resolve } from 'node:path';
import { createActivities, type ActivityDeps } from '../../src/activities';
import { KnowledgeBase } from '../../src/knowledge/knowledge-base';
import { RedisBudgetLedger } from '../../src/llm/budget';
import type { LanguageModel } from '../../src/llm/model';
import { createOpenAIModel, type OpenAIModelOptions } from '../../src/llm/openai';
import { RedisResponseStore } from '../../src/llm/response-store';
import { LiveChannel } from '../../src/projection/live-channel';
import type { testProjection } from './context';

/** The sample knowledge base in knowledge/. */
export const sampleKnowledge = () => KnowledgeBase.load(resolve(__dirname, '../../knowledge'));

/**
 * The real activities on `model`, with the response store, the budget ledger and the projection
 * under the test's own Redis prefix; `deps` replaces any of them (the sample knowledge base by
 * default).
 */
export async function realActivities(
  store: ReturnType<typeof testProjection>,
  model: LanguageModel,
  deps: Partial<ActivityDeps> = {},
) {
  return createActivities({
    model,
    responses: new RedisResponseStore(store.redis, `${store.prefix}llm:`, 3600),
    budget: new RedisBudgetLedger(store.redis, `${store.prefix}budget:`, 3600),
    knowledge: deps.knowledge ?? (await sampleKnowledge()),
    projection: store.projection,
    live: new LiveChannel(store.redis, store.prefix, { ttlSeconds: 3600 }),
    ...deps,
  });
}

/** The `openai` provider against a local server, with the defaults the project ships. */
export function localOpenAIModel(baseURL: string, options: Partial<OpenAIModelOptions> = {}) {
  return createOpenAIModel({
    model: 'test-model',
    apiKey: 'test-key',
    baseURL,
    timeoutMs: 1000,
    responseFormat: 'json_schema',
    strict: true,
    tokenLimitField: 'max_completion_tokens',
    stream: true,
    ...options,
  });
}
