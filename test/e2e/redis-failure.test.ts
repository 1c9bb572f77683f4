import { resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../src/activities';
import { createApp } from '../../src/api/app';
import { DecisionService } from '../../src/api/decision-service';
import { createHealthCheck } from '../../src/observability/health';
import type { DecisionRecord } from '../../src/domain/decision';
import { KnowledgeBase } from '../../src/knowledge/knowledge-base';
import { RedisBudgetLedger } from '../../src/llm/budget';
import { createOfflineModel } from '../../src/llm/offline-model';
import { RedisResponseStore } from '../../src/llm/response-store';
import { createRedis } from '../../src/projection/redis-client';
import { ensureLocalRedis, type LocalRedis } from '../../tools/redis-dev';
import { DecisionProjection } from '../../src/projection/redis-projection';
import type { decisionWorkflow } from '../../src/workflows';
import { services, uniqueName, waitFor } from '../support/context';
import { freePort } from '../support/ports';

Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });

/** Resolves with the value, or rejects when `ms` pass first: a hang is a failure here. */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// A Redis of the test's own, paused with SIGSTOP: it accepts connections and answers nothing,
// the way a hung server does.
describe('with Redis hung', () => {
  let local: LocalRedis;
  let redis: Redis;
  let native: NativeConnection;
  let connection: Connection;
  let client: Client;
  let worker: Worker;
  let running: Promise<void>;
  let app: ReturnType<typeof createApp>;
  let projection: DecisionProjection;
  const taskQueue = uniqueName('hung');
  const warnings: string[] = [];
  const pause = () => process.kill(local.pid!, 'SIGSTOP');
  const resume = () => process.kill(local.pid!, 'SIGCONT');

  beforeAll(async () => {
    local = await ensureLocalRedis(`redis://127.0.0.1:${await freePort()}`, null);
    redis = createRedis(local.url, 500);
    redis.on('error', () => undefined);
    projection = new DecisionProjection(redis, { prefix: 'hung:', ttlSeconds: 600 });
    native = await NativeConnection.connect({ address: services.temporalAddress });
    connection = await Connection.connect({ address: services.temporalAddress });
    client = new Client({ connection });
    worker = await Worker.create({
      connection: native,
      taskQueue,
      workflowBundle: { codePath: services.workflowBundlePath },
      activities: createActivities({
        model: createOfflineModel(),
        responses: new RedisResponseStore(redis, 'hung:llm:', 600),
        budget: new RedisBudgetLedger(redis, 'hung:budget:', 600),
        knowledge: await KnowledgeBase.load(resolve(__dirname, '../../knowledge')),
        projection,
        logger: { warn: (_obj: unknown, msg?: string) => void warnings.push(msg ?? '') },
      }),
    });
    running = worker.run();
    app = createApp({
      decisions: new DecisionService({ client, projection, taskQueue, queryTimeoutMs: 1000 }),
      health: createHealthCheck({ connection, redis, timeoutMs: 500 }),
      projection,
      redis,
      keyPrefix: 'hung:',
      apiKeys: null,
      maxQueryChars: 500,
      rateLimitPerMinute: 100,
    });
  });
  afterAll(async () => {
    if (local?.pid) resume();
    if (worker?.getState() === 'RUNNING') worker.shutdown();
    await running;
    redis?.disconnect();
    await connection?.close();
    await native?.close();
    await local?.stop();
  });

  it('reads from Temporal, creates, runs phases, and catches up when Redis returns', async () => {
    const decide = async (query: string) => {
      const res = await app.request('/decisions', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ query }),
      });
      expect(res.status).toBe(202);
      return ((await res.json()) as DecisionRecord).process_id;
    };
    const before = await decide('Should we trust Redis?');
    await client.workflow.getHandle(before).result();

    pause();
    // Reads fall back to Temporal instead of hanging.
    const read = await within(
      3000,
      'a read with Redis hung',
      Promise.resolve(app.request(`/decisions/${before}`)),
    );
    expect(read.status).toBe(200);
    expect(((await read.json()) as DecisionRecord).status).toBe('completed');
    // Creates still work: the rate limiter counts in memory meanwhile.
    const during = await within(3000, 'a create with Redis hung', decide('Should we go on?'));
    // The phases run without the response store and the budget ledger, with warnings: the
    // last one completes although every projection write fails.
    await waitFor(
      'compileResult to complete with Redis hung',
      async () => {
        const history = await client.workflow.getHandle(during).fetchHistory();
        const done = history.events!.filter((e) => e.activityTaskCompletedEventAttributes);
        return done.length >= 13 ? true : undefined;
      },
      90_000,
    );
    expect(warnings).toContain('Model response store unavailable');
    expect(warnings).toContain(
      'Budget ledger unavailable; checking the budget against what this activity knows',
    );

    resume();
    // The final write lands once Redis answers, and with it every event the failed writes held.
    const record = await client.workflow.getHandle<typeof decisionWorkflow>(during).result();
    expect(record.status).toBe('completed');
    expect(await projection.get(during)).toMatchObject({ status: 'completed' });
    const events = (await projection.readEvents(during, null)).map((e) => e.type);
    expect(events.filter((t) => t === 'phase.completed')).toHaveLength(10);
    expect(events.at(-1)).toBe('decision.completed');
  }, 150_000);
});
