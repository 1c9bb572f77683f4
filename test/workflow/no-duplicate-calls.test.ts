import { realActivities } from '../support/activities';
import { resolve } from 'node:path';
import { Context } from '@temporalio/activity';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Activities } from '../../src/activities';
import type { PhaseInput } from '../../src/domain/decision';
import { KnowledgeBase } from '../../src/knowledge/knowledge-base';
import { RedisResponseStore, type ResponseStore } from '../../src/llm/response-store';
import { CANNED_QUERY } from '../support/canned-outputs';
import { testProjection } from '../support/context';
import { FakeModel } from '../support/fake-model';
import { connectTemporal, runDecision, type TemporalTestClients } from '../support/temporal';

Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });

describe('no duplicate paid calls', () => {
  let t: TemporalTestClients;
  let store: ReturnType<typeof testProjection>;
  let knowledge: KnowledgeBase;

  beforeAll(async () => {
    t = await connectTemporal();
    store = testProjection();
    knowledge = await KnowledgeBase.load(resolve(__dirname, '../../knowledge'));
  });
  afterAll(async () => {
    await store?.cleanup();
    await t?.close();
  });

  /**
   * Real activities on a counting fake model, except that the first attempt of analyzeRootCause
   * is lost after the model answered: the worker "dies" before Temporal records the result.
   */
  async function decideLosingOneResult(responses: ResponseStore) {
    const model = new FakeModel();
    const real = await realActivities(store, model, { responses, knowledge });
    const activities: Activities = {
      ...real,
      async analyzeRootCause(input: PhaseInput) {
        const result = await real.analyzeRootCause(input);
        if (Context.current().info.attempt === 1) {
          throw new Error('worker lost after the model answered, before reporting the result');
        }
        return result;
      },
    };
    const outcome = await runDecision(t, activities, CANNED_QUERY);
    return { model, outcome };
  }

  it('reuses the stored answer when an attempt is retried after the model answered', async () => {
    const responses = new RedisResponseStore(store.redis, `${store.prefix}llm:`, 3600);
    const { model, outcome } = await decideLosingOneResult(responses);

    expect(outcome.error).toBeNull();
    const phase = outcome.record!.phases.find((p) => p.name === 'analyzeRootCause')!;
    expect(phase.attempts).toBe(2);
    expect(model.calls('analyzeRootCause')).toHaveLength(1);
    // The second attempt made no call of its own: its answer came from the store.
    expect(phase.model_calls).toBe(0);
    const keys = await store.redis.keys(`${store.prefix}llm:${outcome.workflowId}:*`);
    expect(keys.length).toBeGreaterThanOrEqual(10);
  });

  it('would pay twice without the store (the control)', async () => {
    const forgetful: ResponseStore = {
      get: () => Promise.resolve(null),
      put: () => Promise.resolve(),
      delete: () => Promise.resolve(),
    };
    const { model, outcome } = await decideLosingOneResult(forgetful);

    expect(outcome.error).toBeNull();
    expect(model.calls('analyzeRootCause')).toHaveLength(2);
  });
});
