import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PhaseActivity } from '../../src/activities';
import type { PhaseInput, PhaseResult } from '../../src/domain/decision';
import { ModelErrorType, retryable } from '../../src/llm/errors';
import type { LanguageModel, ModelRequest, ModelResponse } from '../../src/llm/model';
import {
  PROVIDER_LIMIT_WAIT,
  ProviderLimiter,
  withProviderLimit,
  type ProviderLimiterOptions,
  type ProviderLimits,
} from '../../src/llm/provider-limit';
import { createRegistry, providerLimitMetrics } from '../../src/observability/metrics';
import { realActivities, localOpenAIModel } from '../support/activities';
import { request, RESERVED } from '../support/budget';
import { CANNED_QUERY } from '../support/canned-outputs';
import { testProjection, waitFor } from '../support/context';
import { startFakeOpenAI } from '../support/fake-openai-server';

/** A model that records when each call reached it and answers after `delayMs`, or as told. */
class TimedModel implements LanguageModel {
  readonly name = 'timed-model';
  readonly at: number[] = [];
  constructor(
    private readonly answer: (call: number) => Promise<ModelResponse> = () =>
      Promise.resolve({
        text: '{}',
        model: 'timed-model',
        usage: { input_tokens: 10, output_tokens: 5 },
      }),
  ) {}
  generate(_request: ModelRequest): Promise<ModelResponse> {
    this.at.push(Date.now());
    return this.answer(this.at.length);
  }
}

const KEY = 'openai:api.example.com:gpt-test';

describe('the provider limit in Redis', () => {
  let store: ReturnType<typeof testProjection>;
  let n = 0;
  beforeAll(() => {
    store = testProjection();
  });
  afterAll(() => store?.cleanup());

  /** A limiter as one worker has it, on the test's Redis, with windows of `windowSeconds`. */
  const limiterOn = (
    prefix: string,
    limits: Partial<ProviderLimits>,
    windowSeconds = 1,
    redis: Redis = store.redis,
    options: ProviderLimiterOptions = {},
  ) =>
    new ProviderLimiter(
      redis,
      `${store.prefix}${prefix}:`,
      { requestsPerMinute: 0, tokensPerMinute: 0, ...limits },
      { windowSeconds, ...options },
    );
  const fresh = () => `limit${++n}`;

  it('with a limit of 3 requests a window, 5 calls at once: 3 go at once, 2 wait for the next window', async () => {
    const prefix = fresh();
    const model = new TimedModel();
    const registry = createRegistry('worker');
    const metrics = providerLimitMetrics(registry);
    const limiter = limiterOn(prefix, { requestsPerMinute: 3 }, 1, store.redis, {
      onWaited: (key, ms) => metrics.waited(key, ms),
    });
    const limited = withProviderLimit(model, limiter, KEY);
    const started = Date.now();
    await Promise.all(Array.from({ length: 5 }, () => limited.generate(request)));
    const times = [...model.at].sort((a, b) => a - b).map((t) => t - started);
    expect(times.slice(0, 3).every((t) => t < 500)).toBe(true);
    // The window of 1 s began with the first call.
    expect(times.slice(3).every((t) => t >= 900)).toBe(true);
    // The new window counted the two that waited, in Redis.
    expect(await store.redis.get(`${store.prefix}${prefix}:requests:${KEY}`)).toBe('2');
    // The metric counts the five calls, and the two waits of about a second each.
    const text = await registry.metrics();
    const of = (name: string) =>
      Number(new RegExp(`^${name}\\{[^}]*limit="${KEY}"[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1]);
    expect(of('llm_provider_limit_wait_seconds_count')).toBe(5);
    expect(of('llm_provider_limit_wait_seconds_sum')).toBeGreaterThanOrEqual(1.8);
  });

  it('counts every worker on one Redis against one limit: two limiters, 3 calls each, a limit of 3', async () => {
    const prefix = fresh();
    const model = new TimedModel();
    const workerA = withProviderLimit(model, limiterOn(prefix, { requestsPerMinute: 3 }), KEY);
    const workerB = withProviderLimit(model, limiterOn(prefix, { requestsPerMinute: 3 }), KEY);
    const started = Date.now();
    await Promise.all([
      ...Array.from({ length: 3 }, () => workerA.generate(request)),
      ...Array.from({ length: 3 }, () => workerB.generate(request)),
    ]);
    const times = [...model.at].sort((a, b) => a - b).map((t) => t - started);
    expect(times.filter((t) => t < 500)).toHaveLength(3);
    expect(times.filter((t) => t >= 900)).toHaveLength(3);
  });

  it('gives two models limits of their own', async () => {
    const prefix = fresh();
    const model = new TimedModel();
    const limiter = limiterOn(prefix, { requestsPerMinute: 1 }, 30);
    const started = Date.now();
    await withProviderLimit(model, limiter, `${KEY}-a`).generate(request);
    await withProviderLimit(model, limiter, `${KEY}-b`).generate(request);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(model.at).toHaveLength(2);
    // The first model's window is spent: its next call would wait for it.
    await expect(
      withProviderLimit(model, limiter, `${KEY}-a`, { deadline: Date.now() + 1000 }).generate(
        request,
      ),
    ).rejects.toMatchObject({ type: PROVIDER_LIMIT_WAIT });
    expect(model.at).toHaveLength(2);
  });

  it("holds back another worker's calls after a 429 with Retry-After, until then", async () => {
    const prefix = fresh();
    const refused = new TimedModel(() =>
      Promise.reject(
        retryable(ModelErrorType.RateLimited, 'gpt-test answered HTTP 429: rate limited', 2000),
      ),
    );
    const other = new TimedModel();
    const workerA = withProviderLimit(refused, limiterOn(prefix, { requestsPerMinute: 100 }), KEY);
    const limiterB = limiterOn(prefix, { requestsPerMinute: 100 });
    const workerB = withProviderLimit(other, limiterB, KEY);

    await expect(workerA.generate(request)).rejects.toMatchObject({
      type: ModelErrorType.RateLimited,
    });
    const heldAt = Date.now();
    const ttl = await store.redis.pttl(`${store.prefix}${prefix}:hold:${KEY}`);
    expect(ttl).toBeGreaterThan(1000);
    expect(ttl).toBeLessThanOrEqual(2000);
    // A call whose attempt ends sooner is not sent, and says why.
    await expect(
      withProviderLimit(other, limiterB, KEY, { deadline: Date.now() + 200 }).generate(request),
    ).rejects.toMatchObject({
      type: PROVIDER_LIMIT_WAIT,
      message: expect.stringContaining("held back after the provider's 429") as unknown,
    });
    expect(other.at).toHaveLength(0);
    await workerB.generate(request);
    expect(other.at[0]! - heldAt).toBeGreaterThanOrEqual(ttl - 100);
  });

  it("counts tokens: a call takes its worst case, corrected to the provider's count after", async () => {
    const prefix = fresh();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const model = new TimedModel(async (call) => {
      if (call === 1) await held;
      return { text: '{}', model: 'timed-model', usage: { input_tokens: 10, output_tokens: 5 } };
    });
    // Room for one call's worst case (its input estimate and output cap), not two.
    const limited = withProviderLimit(
      model,
      limiterOn(prefix, { tokensPerMinute: RESERVED + 10 }, 2),
      KEY,
    );
    const tokens = () => store.redis.get(`${store.prefix}${prefix}:tokens:${KEY}`);
    const started = Date.now();
    const first = limited.generate(request);
    await waitFor('the first call', () => (model.at.length === 1 ? true : undefined), 5000, {
      intervalMs: 10,
    });
    expect(await tokens()).toBe(String(RESERVED));
    const second = limited.generate(request);
    await new Promise((resolve) => setTimeout(resolve, 200));
    // The second does not fit beside the first's worst case: not sent.
    expect(model.at).toHaveLength(1);
    release();
    await first;
    await second;
    // It waited for the next window, where the usage it reported (15 tokens) is what counts.
    expect(model.at[1]! - started).toBeGreaterThanOrEqual(1800);
    expect(await tokens()).toBe('15');
  });

  it("fails a call at once, retryably and unsent, when its wait would outlast the attempt's deadline", async () => {
    const prefix = fresh();
    const model = new TimedModel();
    const limiter = limiterOn(prefix, { requestsPerMinute: 1 }, 30);
    await withProviderLimit(model, limiter, KEY).generate(request);
    const started = Date.now();
    const err: unknown = await withProviderLimit(model, limiter, KEY, {
      deadline: Date.now() + 5000,
    })
      .generate(request)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    const failure = err as ApplicationFailure;
    expect(failure.type).toBe(PROVIDER_LIMIT_WAIT);
    expect(failure.nonRetryable).toBe(false);
    expect(failure.message).toContain('past the end of this attempt');
    expect(failure.nextRetryDelay).toBeGreaterThan(25_000);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(model.at).toHaveLength(1);
  });

  it('lets calls go on, limited by this worker alone, while Redis does not answer', async () => {
    // Nothing listens on port 1: the client is never ready, and queues nothing.
    const away = new Redis('redis://127.0.0.1:1', {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
    });
    const errors: unknown[] = [];
    try {
      const model = new TimedModel();
      const limited = withProviderLimit(
        model,
        limiterOn(fresh(), { requestsPerMinute: 2 }, 1, away, {
          onStoreError: (err) => errors.push(err),
        }),
        KEY,
      );
      const started = Date.now();
      await Promise.all(Array.from({ length: 3 }, () => limited.generate(request)));
      const times = [...model.at].sort((a, b) => a - b).map((t) => t - started);
      expect(times.filter((t) => t < 500)).toHaveLength(2);
      expect(times[2]).toBeGreaterThanOrEqual(900);
      expect(errors.length).toBeGreaterThan(0);
    } finally {
      away.disconnect();
    }
  });

  describe('through the phase activity', () => {
    const input: PhaseInput = { decision_id: 'decision-1', query: CANNED_QUERY, outputs: {} };
    const environment = (activityId: string, startToCloseTimeoutMs = 60_000) =>
      new MockActivityEnvironment(
        {
          activityId,
          attempt: 1,
          activityType: 'identifyTrigger',
          workflowExecution: { workflowId: `decision-${activityId}`, runId: 'run-1' },
          startToCloseTimeoutMs,
          scheduleToCloseTimeoutMs: 0,
        },
        { logger: new DefaultLogger('ERROR') },
      );
    const runPhase = (env: MockActivityEnvironment, phase: PhaseActivity) =>
      env.run<[PhaseInput], PhaseResult, PhaseActivity>(phase, input);

    it('heartbeats while it waits for the limit, and a cancelled decision stops the wait', async () => {
      const prefix = fresh();
      const limiter = limiterOn(prefix, { requestsPerMinute: 1 }, 30);
      const model = new TimedModel();
      // The window's one request is taken.
      await withProviderLimit(model, limiter, KEY).generate(request);
      const activities = await realActivities(store, model, {
        providerLimit: { limiter, key: KEY },
        heartbeatIntervalMs: 20,
      });
      const env = environment('wait');
      let beats = 0;
      env.on('heartbeat', () => (beats += 1));
      const running = runPhase(env, activities.identifyTrigger);
      await waitFor('three heartbeats', () => (beats >= 3 ? true : undefined), 5000, {
        intervalMs: 10,
      });
      expect(model.at).toHaveLength(1);
      const cancelledAt = Date.now();
      env.cancel();
      const err: unknown = await running.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CancelledFailure);
      expect(Date.now() - cancelledAt).toBeLessThan(2000);
      expect(model.at).toHaveLength(1);
    });

    it("holds back the other worker's calls after the provider's 429 with Retry-After (fake OpenAI server)", async () => {
      const server = await startFakeOpenAI();
      try {
        const prefix = fresh();
        server.reset((_request, sameTask) =>
          sameTask === 1
            ? { kind: 'status', status: 429, headers: { 'retry-after': '2' } }
            : undefined,
        );
        const model = localOpenAIModel(server.baseURL, { timeoutMs: 10_000 });
        const [workerA, workerB] = await Promise.all(
          [1, 2].map(() =>
            realActivities(store, model, {
              providerLimit: {
                limiter: limiterOn(prefix, { requestsPerMinute: 100 }, 60),
                key: KEY,
              },
            }),
          ),
        );
        await expect(
          runPhase(environment('refused'), workerA!.identifyTrigger),
        ).rejects.toMatchObject({ type: ModelErrorType.RateLimited });
        await runPhase(environment('after'), workerB!.identifyTrigger);
        const [refused, after] = server.requests;
        expect(server.requests).toHaveLength(2);
        expect(after!.at - refused!.at).toBeGreaterThanOrEqual(1500);
      } finally {
        await server.close();
      }
    });

    it('sends no more calls to the provider than the limit in a window (fake OpenAI server)', async () => {
      const server = await startFakeOpenAI();
      try {
        const prefix = fresh();
        const model = localOpenAIModel(server.baseURL, { timeoutMs: 10_000 });
        // Two workers, each with its own limiter, on one Redis: 2 requests a window of 2 s.
        const workers = await Promise.all(
          [1, 2].map(() =>
            realActivities(store, model, {
              providerLimit: { limiter: limiterOn(prefix, { requestsPerMinute: 2 }, 2), key: KEY },
            }),
          ),
        );
        const results = await Promise.all(
          [0, 1, 2, 3, 4].map((i) =>
            runPhase(environment(`fake-${i}`), workers[i % 2]!.identifyTrigger),
          ),
        );
        expect(results.every((r) => r.model_calls === 1)).toBe(true);
        const times = server.requests.map((r) => r.at).sort((a, b) => a - b);
        expect(times).toHaveLength(5);
        // Never a third request within a window of the first of two before it.
        for (let i = 2; i < times.length; i++) {
          expect(times[i]! - times[i - 2]!).toBeGreaterThanOrEqual(1800);
        }
      } finally {
        await server.close();
      }
    });
  });
});
