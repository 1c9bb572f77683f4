import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/api/app';
import { DecisionService } from '../../src/api/decision-service';
import { answerBounds } from '../../src/activities/run-agent';
import { loadWorkerConfig } from '../../src/config';
import { estimateInputTokens } from '../../src/llm/budget';
import { workerOptions } from '../../src/main/start-worker';
import { createHealthCheck } from '../../src/observability/health';
import { phaseNamed } from '../../src/phases';
import { localOpenAIModel, realActivities } from '../support/activities';
import { services, testProjection, uniqueName, waitFor } from '../support/context';
import { startFakeOpenAI } from '../support/fake-openai-server';
import { STREAM_PIECE_CHARS } from '../support/local-server';

Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });

const QUERY = 'Should we stop paying for a model call nobody will read?';

describe('cancelling a decision while its model streams', () => {
  let native: NativeConnection;
  let connection: Connection;
  let store: ReturnType<typeof testProjection>;
  let server: Awaited<ReturnType<typeof startFakeOpenAI>>;
  beforeAll(async () => {
    native = await NativeConnection.connect({ address: services.temporalAddress });
    connection = await Connection.connect({ address: services.temporalAddress });
    store = testProjection();
    server = await startFakeOpenAI();
  });
  afterAll(async () => {
    await server?.close();
    await store?.cleanup();
    await connection?.close();
    await native?.close();
  });

  it('aborts the model request within 2 seconds, and pays for what it had received only', async () => {
    // A chunk every 250 ms: the first phase's answer takes many seconds.
    server.reset(() => undefined, { stream: { paceMs: 250 } });
    const taskQueue = uniqueName('cancel-stream');
    // The heartbeat throttle the worker runs with: cancellation reaches an activity with the
    // answer to a heartbeat.
    const { maxHeartbeatThrottleInterval } = workerOptions(loadWorkerConfig({}), {
      connection: native,
      workflowCode: '',
      version: { deploymentName: 'x', buildId: 'y' },
      plugins: [],
    });
    const worker = await Worker.create({
      connection: native,
      taskQueue,
      workflowBundle: { codePath: services.workflowBundlePath },
      maxHeartbeatThrottleInterval,
      activities: await realActivities(
        store,
        localOpenAIModel(server.baseURL, { timeoutMs: 120_000 }),
      ),
    });
    const client = new Client({ connection });
    const app = createApp({
      decisions: new DecisionService({ client, projection: store.projection, taskQueue }),
      health: createHealthCheck({ connection, redis: store.redis }),
      projection: store.projection,
      redis: store.redis,
      keyPrefix: store.prefix,
      apiKeys: null,
      maxQueryChars: 500,
    });
    await worker.runUntil(async () => {
      const created = await app.request('/decisions', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ query: QUERY }),
      });
      const { process_id: id } = (await created.json()) as { process_id: string };
      // The first phase's answer is streaming: a few chunks are out.
      const call = await waitFor('the model to stream a few chunks', () => {
        const request = server.requests.find((r) => r.task === 'identifyTrigger');
        return request && request.chunks >= 3 ? request : undefined;
      });
      const cancelled = Date.now();
      const res = await app.request(`/decisions/${id}/cancel`, { method: 'POST' });
      expect(res.status).toBe(200);
      await waitFor('the model request to be closed', () => call.closedAt ?? undefined);
      // The model server, which saw the connection close, is the judge.
      expect(call.closedAt! - cancelled).toBeLessThan(2000);
      const received = call.chunks;
      const whole = server.requests.filter((r) => r.task === 'identifyTrigger');
      expect(whole).toHaveLength(1);

      // What the decision spent, by its ledger: the call's input and the output received up
      // to the abort; not its reservation (the worst case: input and the whole token cap).
      const agent = phaseNamed('identifyTrigger');
      const ctx = { query: QUERY, outputs: {}, context: null, review: null };
      const bounds = answerBounds(agent.answer(ctx));
      const input = estimateInputTokens({
        task: agent.name,
        system: agent.system,
        messages: [{ role: 'user', content: agent.prompt(ctx) }],
        schemaName: agent.name,
        jsonSchema: bounds.jsonSchema,
        maxOutputTokens: bounds.maxOutputTokens,
        maxAnswerChars: bounds.maxAnswerChars,
      });
      const ledger = await waitFor('the ledger to be settled', async () => {
        const [key] = await store.redis.keys(`${store.prefix}budget:${id}:*`);
        const tokens = key ? Number(await store.redis.hget(key, 'tokens')) : NaN;
        return tokens < input + bounds.maxOutputTokens ? tokens : undefined;
      });
      const output = ledger - input;
      expect(output).toBeGreaterThan(0);
      // A chunk is at least a token, and its text at most STREAM_PIECE_CHARS characters.
      expect(output).toBeLessThanOrEqual(
        Math.max(received, Math.ceil((received * STREAM_PIECE_CHARS) / 4)),
      );
      const record = await waitFor('the decision to be cancelled', async () => {
        const view = (await (await app.request(`/decisions/${id}`)).json()) as { status: string };
        return view.status === 'cancelled' ? view : undefined;
      });
      expect(record.status).toBe('cancelled');
    });
  });
});
