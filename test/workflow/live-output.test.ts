import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withReceived, type LanguageModel } from '../../src/llm/model';
import { estimateInputTokens } from '../../src/llm/budget';
import { createOfflineModel } from '../../src/llm/offline-model';
import { LiveChannel } from '../../src/projection/live-channel';
import { realActivities } from '../support/activities';
import { testProjection } from '../support/context';
import { connectTemporal, runDecision, type TemporalTestClients } from '../support/temporal';

Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });

const QUERY = 'Should we stream model output to the people who wait for it?';

/** The offline model as a provider that does not stream would be: the answer at the end, whole. */
function notStreaming(model: LanguageModel): LanguageModel {
  return {
    name: model.name,
    async generate(request) {
      const { onOutput, ...rest } = request;
      const response = await model.generate(rest);
      onOutput?.(response.text, response.usage?.output_tokens ?? 0);
      return response;
    },
  };
}

describe("a running phase's live output", () => {
  let t: TemporalTestClients;
  let store: ReturnType<typeof testProjection>;
  beforeAll(async () => {
    t = await connectTemporal();
    store = testProjection();
  });
  afterAll(async () => {
    await store?.cleanup();
    await t?.close();
  });

  /**
   * How many events of each type a decision's history holds, workflow tasks aside: how parallel
   * retrievals' completions fall into workflow tasks is a matter of timing, run to run.
   */
  const eventCounts = async (workflowId: string) => {
    const counts: Record<string, number> = {};
    for (const e of (await t.client.workflow.getHandle(workflowId).fetchHistory()).events ?? []) {
      const type = temporal.api.enums.v1.EventType[e.eventType!];
      if (type.startsWith('EVENT_TYPE_WORKFLOW_TASK_')) continue;
      counts[type] = (counts[type] ?? 0) + 1;
    }
    return counts;
  };

  it('never enters history: a decision has the same history events with streaming on or off', async () => {
    const streaming = createOfflineModel({ delayMs: 150 });
    const on = await runDecision(t, await realActivities(store, streaming), QUERY);
    const off = await runDecision(
      t,
      await realActivities(store, notStreaming(createOfflineModel({ delayMs: 150 })), {
        live: undefined,
      }),
      QUERY,
    );
    expect([on.error, off.error]).toEqual([null, null]);
    // Streaming was on: each phase's output reached the live channel in many pieces.
    const live = new LiveChannel(store.redis, store.prefix, { ttlSeconds: 60 });
    const deltas = await live.read(on.workflowId, null);
    expect(deltas.length).toBeGreaterThan(20);
    expect(await live.read(off.workflowId, null)).toEqual([]);
    const withLive = await eventCounts(on.workflowId);
    expect(withLive).toEqual(await eventCounts(off.workflowId));
    expect(withLive.EVENT_TYPE_ACTIVITY_TASK_COMPLETED).toBeGreaterThanOrEqual(10);
  });

  it("follows what a broken attempt streamed with phase.attempt, then the retry's own output", async () => {
    const offline = createOfflineModel();
    let broken = false;
    // defineScope's first call writes part of its answer, then breaks off as a stream can.
    const flaky: LanguageModel = {
      name: offline.name,
      streams: true,
      async generate(request) {
        if (request.task !== 'defineScope' || broken) return offline.generate(request);
        broken = true;
        request.onOutput?.('{"in_scope": ["the first', 4);
        throw withReceived(
          ApplicationFailure.retryable('the stream stopped mid-answer', 'ModelBadResponse'),
          { input_tokens: 50, output_tokens: 4 },
        );
      },
    };
    const { error, workflowId, record } = await runDecision(
      t,
      await realActivities(store, flaky),
      QUERY,
    );
    expect(error).toBeNull();
    expect(record!.phases.find((p) => p.name === 'defineScope')!.attempts).toBe(2);
    const live = new LiveChannel(store.redis, store.prefix, { ttlSeconds: 60 });
    const scope = (await live.read(workflowId, null))
      .filter((e) => (e.data as { phase: string }).phase === 'defineScope')
      .map((e) => ({ type: e.type, ...(e.data as { attempt: number; text?: string }) }));
    expect(scope[0]).toMatchObject({
      type: 'phase.delta',
      attempt: 1,
      text: '{"in_scope": ["the first',
    });
    expect(scope[1]).toMatchObject({ type: 'phase.attempt', attempt: 2 });
    const retried = scope.slice(2);
    expect(retried.length).toBeGreaterThan(0);
    expect(retried.every((e) => e.type === 'phase.delta' && e.attempt === 2)).toBe(true);
    // The retry's output is its whole answer, which the phase's output came from.
    const answer = retried.map((e) => e.text).join('');
    expect(() => {
      JSON.parse(answer);
    }).not.toThrow();
  });

  it('cuts a streamed answer at the budget: the decision fails with BudgetExceeded, having paid for what it received', async () => {
    const offline = createOfflineModel();
    // analyzeRootCause writes on and on, ten tokens every 2 ms, until it is stopped.
    const endless: LanguageModel = {
      name: offline.name,
      streams: true,
      async generate(request) {
        if (request.task !== 'analyzeRootCause') return offline.generate(request);
        let tokens = 0;
        // It reads the prompt as the budget estimates it.
        const input = estimateInputTokens(request);
        try {
          for (;;) {
            await sleep(2, undefined, { signal: request.signal });
            tokens += 10;
            request.onOutput?.('word '.repeat(10), tokens);
          }
        } catch (err) {
          throw withReceived(err, { input_tokens: input, output_tokens: tokens });
        }
      },
    };
    const first = await runDecision(t, await realActivities(store, offline), QUERY);
    const trigger = first.record!.phases[0]!.usage!;
    const firstTokens = trigger.input_tokens + trigger.output_tokens;
    // Room for the first phase, then 3000 tokens: the second call's input and part of its answer,
    // less than its worst case (its output cap alone is over 4096).
    const maxTokens = firstTokens + 3000;
    const { error, workflowId } = await runDecision(
      t,
      await realActivities(store, endless),
      QUERY,
      {
        limits: {
          budget: { max_model_calls: 60, max_tokens: maxTokens },
          model_timeout_ms: 60_000,
          payload_max_bytes: 256 * 1024,
        },
      },
    );
    expect(error).toBeInstanceOf(WorkflowFailedError);
    const cause = (error as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('BudgetExceeded');
    const cutAt = Number(/the answer was cut after (\d+) output tokens/.exec(cause.message)?.[1]);
    expect(cutAt).toBeGreaterThan(0);
    // The ledger, the source of truth of what was spent, holds what the cut call had received
    // (not its reservation: that was all that was left), past the budget by one piece at most.
    const keys = await store.redis.keys(`${store.prefix}budget:${workflowId}:*`);
    expect(keys).toHaveLength(1);
    const spent = Number(await store.redis.hget(keys[0]!, 'tokens'));
    const secondInput = spent - firstTokens - cutAt;
    expect(secondInput).toBeGreaterThan(0);
    expect(spent).toBeGreaterThan(maxTokens);
    expect(spent).toBeLessThanOrEqual(maxTokens + 10);
  });
});
