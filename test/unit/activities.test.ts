import { setTimeout as sleep } from 'node:timers/promises';
import {
  ActivityCancellationDetails,
  ApplicationFailure,
  CancelledFailure,
} from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { createActivities, type ActivityDeps, type PhaseActivity } from '../../src/activities';
import { createOfflineModel, OFFLINE_MODEL } from '../../src/llm/offline-model';
import {
  initialRecord,
  type DecisionEvent,
  type PhaseInput,
  type PhaseResult,
} from '../../src/domain/decision';
import { PHASE_OUTPUT_SCHEMAS } from '../../src/domain/outputs';
import type { WebhookMessage } from '../../src/domain/webhook';
import type { LanguageModel, ModelRequest } from '../../src/llm/model';
import { sampleKnowledge } from '../support/activities';
import { CANNED, CANNED_QUERY } from '../support/canned-outputs';
import { MemoryBudgetLedger, MemoryProjection, MemoryResponseStore } from '../support/memory-deps';

// The activities as a worker runs them, through the SDK's mocked activity context: no Temporal,
// no Redis (the response store, the budget ledger and the projection are in memory).

/** The offline model holding each answer back `delayMs` (a call's abort ends the wait), recorded. */
function slowOfflineModel(delayMs: number) {
  const offline = createOfflineModel({ delayMs });
  const requests: ModelRequest[] = [];
  let called!: () => void;
  const firstCall = new Promise<void>((resolve) => (called = resolve));
  const model: LanguageModel = {
    name: offline.name,
    generate(request) {
      requests.push(request);
      called();
      return offline.generate(request);
    },
  };
  return { model, requests, firstCall };
}

async function activitiesOn(model: LanguageModel, deps: Partial<ActivityDeps> = {}) {
  const responses = new MemoryResponseStore();
  const budget = new MemoryBudgetLedger();
  const projection = new MemoryProjection();
  const activities = createActivities({
    model,
    responses,
    budget,
    projection,
    knowledge: await sampleKnowledge(),
    ...deps,
  });
  return { activities, responses, budget, projection };
}

const RUN = { workflowId: 'decision-1', runId: 'run-1' };
/** A mocked context of the decision's activity `activityId`, at the given attempt. */
const environment = (activityId: string, attempt = 1) =>
  new MockActivityEnvironment(
    { activityId, attempt, activityType: 'identifyTrigger', workflowExecution: RUN },
    { logger: new DefaultLogger('ERROR') },
  );

/** Runs a phase activity in the mocked context (the SDK's `run` does not infer its result). */
const runPhase = (env: MockActivityEnvironment, phase: PhaseActivity, input: PhaseInput) =>
  env.run<[PhaseInput], PhaseResult, PhaseActivity>(phase, input);

const firstPhase: PhaseInput = { decision_id: RUN.workflowId, query: CANNED_QUERY, outputs: {} };

describe('the phase activities in a mocked activity context', () => {
  it('answers a phase from the model, and a retry of the same activity reuses the stored answer', async () => {
    const slow = slowOfflineModel(0);
    const { activities, responses, budget } = await activitiesOn(slow.model);

    const first = await runPhase(environment('1'), activities.identifyTrigger, firstPhase);
    expect(PHASE_OUTPUT_SCHEMAS.identifyTrigger.safeParse(first.output).success).toBe(true);
    expect(first).toMatchObject({ model: OFFLINE_MODEL, model_calls: 1, attempt: 1 });
    expect(slow.requests).toHaveLength(1);
    expect(responses.data.size).toBe(1);
    expect(budget.spent.get(`${RUN.workflowId}:${RUN.runId}`)?.model_calls).toBe(1);

    // The attempt was lost after the model answered; Temporal runs attempt 2 of the activity.
    const retried = await runPhase(environment('1', 2), activities.identifyTrigger, firstPhase);
    expect(retried).toMatchObject({ output: first.output, model_calls: 0, attempt: 2 });
    expect(slow.requests).toHaveLength(1);
  });

  it('heartbeats while the model call is in flight, and stops once the phase is done', async () => {
    const slow = slowOfflineModel(300);
    const { activities } = await activitiesOn(slow.model, { heartbeatIntervalMs: 20 });
    const env = environment('1');
    let beats = 0;
    env.on('heartbeat', () => (beats += 1));

    const result = await runPhase(env, activities.identifyTrigger, firstPhase);
    // The offline model's 300 ms timer runs on the event loop's millisecond clock, which may fire
    // a fraction of a millisecond early by performance.now()'s.
    expect(result.latency_ms).toBeGreaterThanOrEqual(295);
    // About fifteen in 300 ms; a loaded machine may fire fewer.
    expect(beats).toBeGreaterThanOrEqual(3);
    const done = beats;
    await sleep(200);
    expect(beats).toBe(done);
  });

  it('aborts the model call when the activity is cancelled, and ends as cancelled', async () => {
    // An answer a minute away: only the abort ends the call within the test's time.
    const slow = slowOfflineModel(60_000);
    const { activities, responses } = await activitiesOn(slow.model);
    const env = environment('1');

    const running = runPhase(env, activities.identifyTrigger, firstPhase);
    await slow.firstCall;
    const cancelledAt = Date.now();
    env.cancel();
    const err: unknown = await running.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CancelledFailure);
    expect((err as CancelledFailure).message).toBe('identifyTrigger was cancelled');
    expect(Date.now() - cancelledAt).toBeLessThan(5000);
    expect(slow.requests[0]!.signal?.aborted).toBe(true);
    expect(responses.data.size).toBe(0);
  });

  it("fails the attempt, to be retried, when the worker shuts down: that is not the decision's cancellation", async () => {
    const slow = slowOfflineModel(60_000);
    const { activities } = await activitiesOn(slow.model);
    const env = environment('1');

    const running = runPhase(env, activities.identifyTrigger, firstPhase);
    await slow.firstCall;
    env.cancel('WORKER_SHUTDOWN', new ActivityCancellationDetails({ workerShutdown: true }));
    const err: unknown = await running.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(CancelledFailure);
    // Retried: not a failure that tells Temporal to give up.
    expect(err instanceof ApplicationFailure ? err.nonRetryable : false).toBe(false);
    expect(slow.requests[0]!.signal?.aborted).toBe(true);
  });

  it('writes the projection with the run id of the workflow that asked', async () => {
    const { activities, projection } = await activitiesOn(slowOfflineModel(0).model);
    const record = initialRecord(RUN.workflowId, { query: CANNED_QUERY }, new Date().toISOString());
    const events: DecisionEvent[] = [
      { type: 'decision.started', data: { process_id: RUN.workflowId, status: 'running' }, n: 1 },
    ];
    await environment('local').run(
      (...args: Parameters<typeof activities.projectDecision>) =>
        activities.projectDecision(...args),
      record,
      events,
    );
    expect(projection.writes).toEqual([{ record, events, runId: RUN.runId }]);
  });

  it('stores a webhook delivery as failed, for good, when the worker has no secret to sign it', async () => {
    const { activities, projection } = await activitiesOn(slowOfflineModel(0).model);
    const message: WebhookMessage = {
      id: 'msg_decision-1_1_1',
      decision_id: RUN.workflowId,
      url: 'https://example.com/hooks',
      body: {
        type: 'decision.completed',
        timestamp: new Date().toISOString(),
        decision_id: RUN.workflowId,
        data: {},
      },
      timeout_ms: 1000,
      retry_ms: 1000,
    };
    const err: unknown = await environment('deliver')
      .run(activities.deliverWebhook, message)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: 'WebhookNotConfigured', nonRetryable: true });
    expect(await projection.readDelivery(RUN.workflowId, message.id)).toMatchObject({
      delivery: { state: 'failed', attempts: 1 },
    });
  });

  it('gives a retrieval its share of what is left of the budget while the ledger is away', async () => {
    const down = {
      reserve: () => Promise.reject(new Error('Redis is down')),
      settle: () => Promise.reject(new Error('Redis is down')),
    };
    const need = CANNED.identifyInformationNeeds.needs[0]!;
    // One model call left: two retrievals at once get half a call each, that is none.
    const input = (parallel: number): PhaseInput => ({
      ...firstPhase,
      need,
      parallel,
      budget: { max_model_calls: 5, max_tokens: 400_000, spent: { model_calls: 4, tokens: 0 } },
    });
    const slow = slowOfflineModel(0);
    const { activities } = await activitiesOn(slow.model, { budget: down });
    await expect(
      runPhase(environment('6'), activities.retrieveInformation, input(2)),
    ).rejects.toMatchObject({ type: 'BudgetExceeded' });
    expect(slow.requests).toHaveLength(0);
    // On its own, it may spend the call.
    await runPhase(environment('6'), activities.retrieveInformation, input(1));
    expect(slow.requests).toHaveLength(1);
  });
});
