import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type { Redis } from 'ioredis';
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
import { redisAway, testProjection, waitFor } from '../support/context';
import { startFakeOpenAI } from '../support/fake-openai-server';
import { mostInWindow } from '../../tools/bench/measure';

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

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the provider limit in Redis', () => {
  let store: ReturnType<typeof testProjection>;
  let n = 0;
  beforeAll(async () => {
    store = testProjection();
    // Connected: a limiter counts in memory while its client is not ready.
    await store.redis.ping();
  });
  afterAll(() => store?.cleanup());

  /**
   * A limiter as one worker has it, on the test's Redis, with windows of `windowSeconds`, each
   * call counted 100 ms past its window (calls share two busy cores with other tests).
   */
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
      { windowSeconds, marginMs: 100, ...options },
    );
  const fresh = () => `limit${++n}`;
  /** The Redis keys of limit `KEY` under `prefix`: its one hash tag is the limit's key. */
  const keysOf = (prefix: string, key = KEY) => {
    const tag = `${store.prefix}${prefix}:{${key}}`;
    return { log: `${tag}:log`, tokens: `${tag}:tokens`, hold: `${tag}:hold` };
  };

  it('with a limit of 3 requests a window, 5 calls at once: 3 go at once, 2 once the first have left the window', async () => {
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
    // A second (and its margin of 100 ms) after the first grants.
    expect(times.slice(3).every((t) => t >= 1000 && t < 1500)).toBe(true);
    // Redis's log holds the window's grants: the first three had left it when the two were taken.
    const log = await store.redis.zrange(keysOf(prefix).log, 0, -1, 'WITHSCORES');
    expect(log).toHaveLength(4);
    // Scored by Redis's clock (ms), within the test's idea of when they went.
    const scores = [Number(log[1]), Number(log[3])];
    for (const score of scores) expect(Math.abs(score - (started + times[3]!))).toBeLessThan(250);
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

  /**
   * Two workers, a limit of 4 calls in 2 s: one call, three more 1.5 s later, then four more
   * just past the first call's window. Fixed windows of 2 s (from the first call) let the four
   * through at once: seven calls within 2 s. A sliding log lets one through, and three more only
   * once the three of the burst have left the window.
   */
  async function burstAtTheTurn(workerA: LanguageModel, workerB: LanguageModel, model: TimedModel) {
    await workerA.generate(request);
    const first = model.at[0]!;
    await pause(first + 1500 - Date.now());
    await Promise.all([workerA, workerA, workerB].map((w) => w.generate(request)));
    await pause(first + 2300 - Date.now());
    await Promise.all([workerA, workerB, workerA, workerB].map((w) => w.generate(request)));
    const times = [...model.at].sort((a, b) => a - b);
    expect(times).toHaveLength(8);
    // The claim: no 2 s, wherever they start, hold more than the limit.
    expect(mostInWindow(times, 2000)).toBeLessThanOrEqual(4);
    // And no call waited longer than it had to: one went at once, the last three as soon as the
    // three of the burst had left (2 s and the margin of 100 ms after them).
    const burst = times[3]!;
    expect(times[4]! - first).toBeLessThan(2800);
    for (const t of times.slice(5)) {
      expect(t - burst).toBeGreaterThanOrEqual(2000);
      expect(t - burst).toBeLessThan(2600);
    }
  }

  it('never lets more than the limit through in any window: two workers, a burst at the turn of a window', async () => {
    const prefix = fresh();
    const model = new TimedModel();
    const errors: unknown[] = [];
    const limiter = () =>
      limiterOn(prefix, { requestsPerMinute: 4 }, 2, store.redis, {
        onStoreError: (err) => errors.push(err),
      });
    await burstAtTheTurn(
      withProviderLimit(model, limiter(), KEY),
      withProviderLimit(model, limiter(), KEY),
      model,
    );
    // Counted in Redis, not in each limiter's memory.
    expect(errors).toEqual([]);
  });

  it('never lets more than the limit through in any window: two workers, calls at random times', async () => {
    const prefix = fresh();
    const model = new TimedModel();
    const errors: unknown[] = [];
    const workers = [1, 2].map(() =>
      withProviderLimit(
        model,
        limiterOn(prefix, { requestsPerMinute: 5 }, 1, store.redis, {
          onStoreError: (err) => errors.push(err),
        }),
        KEY,
      ),
    );
    const started = Date.now();
    await Promise.all(
      Array.from({ length: 24 }, async (_, i) => {
        await pause(Math.random() * 2500);
        await workers[i % 2]!.generate(request);
      }),
    );
    expect(model.at).toHaveLength(24);
    expect(errors).toEqual([]);
    expect(mostInWindow(model.at, 1000)).toBeLessThanOrEqual(5);
    // Busy from the start: 24 calls at 5 a second end within five windows of the first.
    expect(Math.max(...model.at) - started).toBeLessThan(5 * 1100 + 500);
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

  it('keeps each limit in keys of one hash tag, the limit key: one slot in Redis Cluster', async () => {
    const prefix = fresh();
    const limiter = limiterOn(prefix, { requestsPerMinute: 5, tokensPerMinute: 10_000 }, 30);
    for (const key of [KEY, `${KEY}-b`]) {
      await (await limiter.take(key, 100)).settle(50);
      await limiter.hold(key, 5000);
    }
    const keys = (await store.redis.keys(`${store.prefix}${prefix}:*`)).sort();
    expect(keys).toEqual(
      [keysOf(prefix), keysOf(prefix, `${KEY}-b`)].flatMap((k) => [k.hold, k.log, k.tokens]).sort(),
    );
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
    const ttl = await store.redis.pttl(keysOf(prefix).hold);
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
    // The refused call was not billed: it gave its request back.
    expect(await store.redis.zcard(keysOf(prefix).log)).toBe(1);
  });

  it('counts tokens: a call takes its worst case, and what the provider counted stays until it leaves the window', async () => {
    const prefix = fresh();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const model = new TimedModel(async (call) => {
      if (call === 1) await held;
      return { text: '{}', model: 'timed-model', usage: { input_tokens: 10, output_tokens: 5 } };
    });
    // Room for one call's worst case (its input estimate and output cap), not two, nor for a
    // worst case beside a call's real usage.
    const limited = withProviderLimit(
      model,
      limiterOn(prefix, { tokensPerMinute: RESERVED + 10 }, 2),
      KEY,
    );
    const tokens = async () => (await store.redis.hvals(keysOf(prefix).tokens)).sort();
    const first = limited.generate(request);
    await waitFor('the first call', () => (model.at.length === 1 ? true : undefined), 5000, {
      intervalMs: 10,
    });
    expect(await tokens()).toEqual([String(RESERVED)]);
    const second = limited.generate(request);
    await pause(200);
    // The second does not fit beside the first's worst case: not sent.
    expect(model.at).toHaveLength(1);
    release();
    await first;
    expect(await tokens()).toEqual(['15']);
    await second;
    // Nor beside its 15 tokens: it waited for the first to leave the window, 2 s after its grant.
    expect(model.at[1]! - model.at[0]!).toBeGreaterThanOrEqual(1950);
    expect(await tokens()).toEqual(['15']);
  });

  it("counts tokens: a call corrected to the provider's count makes room at once", async () => {
    const prefix = fresh();
    const model = new TimedModel();
    // Room for a worst case beside 15 tokens, not beside another worst case.
    const limited = withProviderLimit(
      model,
      limiterOn(prefix, { tokensPerMinute: RESERVED + 20 }, 30),
      KEY,
    );
    await limited.generate(request);
    await limited.generate(request);
    expect(model.at[1]! - model.at[0]!).toBeLessThan(500);
    expect((await store.redis.hvals(keysOf(prefix).tokens)).sort()).toEqual(['15', '15']);
  });

  it('gives back the request of a call the provider did not bill', async () => {
    const prefix = fresh();
    const model = new TimedModel((call) =>
      call === 1
        ? Promise.reject(retryable(ModelErrorType.Unavailable, 'gpt-test answered HTTP 503'))
        : Promise.resolve({ text: '{}', model: 'timed-model', usage: null }),
    );
    const limited = withProviderLimit(
      model,
      limiterOn(prefix, { requestsPerMinute: 1 }, 30),
      KEY,
      // Not a second to wait: the refused call's request must be back.
      { deadline: Date.now() + 1000 },
    );
    await expect(limited.generate(request)).rejects.toMatchObject({
      type: ModelErrorType.Unavailable,
    });
    expect(await store.redis.zcard(keysOf(prefix).log)).toBe(0);
    await limited.generate(request);
    expect(model.at).toHaveLength(2);
    expect(await store.redis.zcard(keysOf(prefix).log)).toBe(1);
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

  it('fails a call waiting behind another of its worker at its deadline, and a stopped wait takes nothing', async () => {
    const prefix = fresh();
    const model = new TimedModel();
    const limiter = limiterOn(prefix, { requestsPerMinute: 1 }, 30);
    await withProviderLimit(model, limiter, KEY).generate(request);
    // The first waits without a deadline; the second waits behind it, until its deadline.
    const stop = new AbortController();
    const first = withProviderLimit(model, limiter, KEY, { signal: stop.signal })
      .generate(request)
      .catch((e: unknown) => e);
    const started = Date.now();
    await expect(
      withProviderLimit(model, limiter, KEY, { deadline: started + 300 }).generate(request),
    ).rejects.toMatchObject({ type: PROVIDER_LIMIT_WAIT, nonRetryable: false });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(Date.now() - started).toBeLessThan(1500);
    stop.abort();
    expect(await first).toBeInstanceOf(Error);
    expect(model.at).toHaveLength(1);
    expect(await store.redis.zcard(keysOf(prefix).log)).toBe(1);
  });

  describe('while Redis does not answer', () => {
    it('lets calls go on, limited by this worker alone', async () => {
      const away = redisAway();
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
        expect(times[2]).toBeGreaterThanOrEqual(1000);
        expect(errors.length).toBeGreaterThan(0);
      } finally {
        away.disconnect();
      }
    });

    it('counts a sliding window in memory too: a burst at the turn of a window', async () => {
      const away = redisAway();
      try {
        const model = new TimedModel();
        const limited = withProviderLimit(
          model,
          limiterOn(fresh(), { requestsPerMinute: 4 }, 2, away, { onStoreError: () => undefined }),
          KEY,
        );
        await burstAtTheTurn(limited, limited, model);
      } finally {
        away.disconnect();
      }
    });

    it('holds calls back after a 429 in memory too', async () => {
      const away = redisAway();
      try {
        const limiter = limiterOn(fresh(), { requestsPerMinute: 100 }, 1, away, {
          onStoreError: () => undefined,
        });
        await limiter.hold(KEY, 1000);
        const model = new TimedModel();
        const started = Date.now();
        await withProviderLimit(model, limiter, KEY).generate(request);
        expect(model.at[0]! - started).toBeGreaterThanOrEqual(950);
      } finally {
        away.disconnect();
      }
    });
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
