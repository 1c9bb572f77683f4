import { realActivities } from './activities';
import { ApplicationFailure } from '@temporalio/common';
import { Worker, type NativeConnection } from '@temporalio/worker';
import type { LanguageModel } from '../../src/llm/model';
import { createOfflineModel } from '../../src/llm/offline-model';
import { services, uniqueName, type testProjection } from './context';

/**
 * The offline model, counting the calls each phase makes, and refusing one phase with a
 * permanent error (as a provider that rejects the API key would) while `failIn` names it.
 */
export function scriptedOfflineModel() {
  const offline = createOfflineModel();
  const calls: Record<string, number> = {};
  // What each call was asked: its phase and its prompt as a remote model would read it.
  const prompts: { task: string; text: string }[] = [];
  // What each call answered, with its prompt.
  const answers: { task: string; prompt: string; text: string }[] = [];
  let failing: string | null = null;
  const model: LanguageModel = {
    name: offline.name,
    streams: offline.streams,
    generate(request) {
      calls[request.task] = (calls[request.task] ?? 0) + 1;
      const prompt = [request.system, ...request.messages.map((m) => m.content)].join('\n');
      prompts.push({ task: request.task, text: prompt });
      if (request.task === failing) {
        return Promise.reject(
          ApplicationFailure.create({
            type: 'ModelAuthenticationError',
            message: 'the model provider rejected the API key',
            nonRetryable: true,
          }),
        );
      }
      return offline.generate(request).then((response) => {
        answers.push({ task: request.task, prompt, text: response.text });
        return response;
      });
    },
  };
  return {
    model,
    calls,
    prompts,
    answers,
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
    activities: await realActivities(store, model),
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
