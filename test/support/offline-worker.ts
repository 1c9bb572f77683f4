import { resolve } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { Worker, type NativeConnection } from '@temporalio/worker';
import { createActivities } from '../../src/activities';
import { KnowledgeBase } from '../../src/knowledge/knowledge-base';
import type { LanguageModel } from '../../src/llm/model';
import { createOfflineModel } from '../../src/llm/offline';
import { RedisBudgetLedger } from '../../src/llm/budget';
import { RedisResponseStore } from '../../src/llm/response-store';
import { services, uniqueName, type testProjection } from './context';

/**
 * The offline model, counting the calls each phase makes, and refusing one phase with a
 * permanent error (as a provider that rejects the API key would) while `failIn` names it.
 */
export function scriptedOfflineModel() {
  const offline = createOfflineModel();
  const calls: Record<string, number> = {};
  let failing: string | null = null;
  const model: LanguageModel = {
    name: offline.name,
    generate(request) {
      calls[request.task] = (calls[request.task] ?? 0) + 1;
      if (request.task === failing) {
        return Promise.reject(
          ApplicationFailure.create({
            type: 'ModelAuthenticationError',
            message: 'the model provider rejected the API key',
            nonRetryable: true,
          }),
        );
      }
      return offline.generate(request);
    },
  };
  return {
    model,
    calls,
    failIn(phase: string | null) {
      failing = phase;
    },
  };
}

/** A worker with the real activities (model given, sample knowledge base, test projection). */
export async function startOfflineWorker(
  connection: NativeConnection,
  store: ReturnType<typeof testProjection>,
  model: LanguageModel,
) {
  const taskQueue = uniqueName('worker');
  const worker = await Worker.create({
    connection,
    taskQueue,
    workflowBundle: { codePath: services.workflowBundlePath },
    activities: createActivities({
      model,
      responses: new RedisResponseStore(store.redis, `${store.prefix}llm:`, 3600),
      budget: new RedisBudgetLedger(store.redis, `${store.prefix}budget:`, 3600),
      knowledge: await KnowledgeBase.load(resolve(__dirname, '../../knowledge')),
      projection: store.projection,
    }),
  });
  const running = worker.run();
  return {
    taskQueue,
    worker,
    async stop() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
    },
  };
}
