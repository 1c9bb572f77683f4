import { randomBytes } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterEach, describe, expect, it } from 'vitest';
import { createActivities, type ActivityDeps } from '../../src/activities';
import type { WebhookDelivery, WebhookMessage } from '../../src/domain/webhook';
import { createOfflineModel } from '../../src/llm/offline-model';
import { DecisionOwnerUnknown } from '../../src/webhooks/owner';
import { principalSecret } from '../../src/webhooks/secret';
import { sampleKnowledge } from '../support/activities';
import { MemoryBudgetLedger, MemoryProjection, MemoryResponseStore } from '../support/memory-deps';
import { startReceiver, verifySignature, type Answer } from '../support/webhook-receiver';

// deliverWebhook as a worker runs it, in the SDK's mocked activity context, against a local
// receiver: whose secret signs, when a 4xx ends a delivery, how many run at once, what
// last_error says.

const MASTER = `whsec_${randomBytes(32).toString('base64')}`;
const RUN = { workflowId: 'msg_decision-1_1_1', runId: 'run-1' };

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

async function setup(
  answer: (index: number) => Answer,
  webhooks: Partial<NonNullable<ActivityDeps['webhooks']>> = {},
) {
  const receiver = await startReceiver((_r, i) => answer(i));
  closers.push(receiver.close);
  const projection = new MemoryProjection();
  const activities = createActivities({
    model: createOfflineModel(),
    responses: new MemoryResponseStore(),
    budget: new MemoryBudgetLedger(),
    projection,
    knowledge: await sampleKnowledge(),
    webhooks: {
      secret: MASTER,
      ownerOf: (id) => Promise.resolve(id === 'decision-b' ? 'tenant-b' : 'tenant-a'),
      allowPrivateNetworks: true,
      allowedPorts: 'any',
      ...webhooks,
    },
  });
  return { receiver, projection, activities };
}

const message = (url: string, decision = 'decision-1', timeout_ms = 2000): WebhookMessage => ({
  id: `msg_${decision}_1_1`,
  decision_id: decision,
  url,
  body: {
    type: 'decision.completed',
    timestamp: new Date().toISOString(),
    decision_id: decision,
    data: { status: 'completed' },
  },
  timeout_ms,
  retry_ms: 60_000,
});

/**
 * Runs attempts of one delivery as Temporal would: each with the next attempt number and the
 * heartbeat details the one before left, until one succeeds, fails for good, or `max` ran.
 * `state` (the next attempt number, the details) goes on from where an earlier call left it.
 */
async function attempts(
  run: (m: WebhookMessage) => Promise<WebhookDelivery>,
  m: WebhookMessage,
  max: number,
  state: { attempt: number; details: unknown } = { attempt: 1, details: undefined },
) {
  const outcomes: (WebhookDelivery | ApplicationFailure)[] = [];
  for (let n = 0; n < max; n++) {
    const attempt = state.attempt++;
    let details = state.details;
    const env = new MockActivityEnvironment(
      {
        activityId: '1',
        attempt,
        activityType: 'deliverWebhook',
        workflowExecution: RUN,
        heartbeatDetails: details,
        // Later attempts are scheduled later: their reports rank above the earlier ones'.
        currentAttemptScheduledTimestampMs: Date.now() + attempt,
      },
      { logger: new DefaultLogger('ERROR') },
    );
    env.on('heartbeat', (d: unknown) => (details = state.details = d));
    const outcome: WebhookDelivery | ApplicationFailure = await env
      .run<[WebhookMessage], WebhookDelivery, typeof run>(run, m)
      .catch((err: unknown) => err as ApplicationFailure);
    outcomes.push(outcome);
    if (!(outcome instanceof ApplicationFailure) || outcome.nonRetryable) break;
  }
  return outcomes;
}

/** The delay a failed attempt asked Temporal to wait before the next (nextRetryDelay). */
const delayOf = (outcome: unknown): unknown =>
  (outcome as { nextRetryDelay?: unknown }).nextRetryDelay;

describe('deliverWebhook', () => {
  it("signs with the decision owner's own secret, which another tenant's does not verify", async () => {
    const { receiver, activities } = await setup(() => 204);
    await attempts(activities.deliverWebhook, message(receiver.url, 'decision-b'), 1);
    const [got] = receiver.received;
    expect(verifySignature(principalSecret(MASTER, 'tenant-b'), got!.headers, got!.body)).toBe(
      true,
    );
    expect(verifySignature(principalSecret(MASTER, 'tenant-a'), got!.headers, got!.body)).toBe(
      false,
    );
    expect(verifySignature(MASTER, got!.headers, got!.body)).toBe(false);
  });

  it("signs with the owner's secret under the new and the previous master while it is rotated", async () => {
    const previous = `whsec_${randomBytes(32).toString('base64')}`;
    const { receiver, activities } = await setup(() => 204, { previousSecret: previous });
    await attempts(activities.deliverWebhook, message(receiver.url), 1);
    const [got] = receiver.received;
    for (const master of [MASTER, previous]) {
      expect(verifySignature(principalSecret(master, 'tenant-a'), got!.headers, got!.body)).toBe(
        true,
      );
    }
  });

  it('fails for good, unsigned and unsent, when nobody knows whose decision it is', async () => {
    const { receiver, activities } = await setup(() => 204, {
      ownerOf: () => Promise.reject(new DecisionOwnerUnknown('decision x is known nowhere')),
    });
    const [outcome] = await attempts(activities.deliverWebhook, message(receiver.url), 3);
    expect(outcome).toMatchObject({ type: 'WebhookOwnerUnknown', nonRetryable: true });
    expect(receiver.received).toEqual([]);
  });

  it('ends a delivery after the third 404, and stores it failed', async () => {
    const { receiver, activities, projection } = await setup(() => 404);
    const m = message(receiver.url);
    const outcomes = await attempts(activities.deliverWebhook, m, 10);
    expect(receiver.received.map((r) => r.answered)).toEqual([404, 404, 404]);
    expect(outcomes.map((o) => (o as ApplicationFailure).nonRetryable)).toEqual([
      false,
      false,
      true,
    ]);
    expect((await projection.readDelivery(m.decision_id, m.id))?.delivery).toMatchObject({
      state: 'failed',
      attempts: 3,
      last_status: 404,
      last_error: 'The receiver answered 404, 3 times: no more attempts',
    });
  });

  it('counts the 4xx answers, not the attempts: a 500 between them does not end it sooner', async () => {
    const script: Answer[] = [500, 404, 500, 404, 404];
    const { receiver, activities } = await setup((i) => script[i] ?? 200);
    const outcomes = await attempts(activities.deliverWebhook, message(receiver.url), 10);
    expect(receiver.received.map((r) => r.answered)).toEqual(script);
    expect(outcomes.at(-1)).toMatchObject({ nonRetryable: true });
  });

  it('spaces the 4xx that end a delivery: a minute before the 2nd, ten before the 3rd', async () => {
    const script: Answer[] = [404, 500, 401, 403];
    const { receiver, activities } = await setup((i) => script[i] ?? 200);
    const outcomes = (await attempts(
      activities.deliverWebhook,
      message(receiver.url),
      10,
    )) as ApplicationFailure[];
    expect(receiver.received.map((r) => r.answered)).toEqual(script);
    // The 500 between them waits the policy's backoff for a 2nd attempt, 4 s.
    expect(outcomes.map(delayOf)).toEqual([60_000, 4_000, 600_000, undefined]);
    expect(outcomes.map((o) => o.nonRetryable)).toEqual([false, false, false, true]);
  });

  it('takes the spacing of 4xx answers from its settings', async () => {
    const { receiver, activities } = await setup(() => 404, { rejectedRetryMs: [3_000, 7_000] });
    const outcomes = await attempts(activities.deliverWebhook, message(receiver.url), 10);
    expect(outcomes.map(delayOf)).toEqual([3_000, 7_000, undefined]);
  });

  it('counts busy attempts neither as attempts nor in the backoff of the ones made', async () => {
    const { receiver, activities, projection } = await setup((i) => (i === 0 ? 'hold' : 500), {
      perPrincipal: 1,
    });
    // One of tenant-a's in flight, held by the receiver until its 1 s timeout.
    const held = attempts(
      activities.deliverWebhook,
      { ...message(receiver.url, 'decision-1', 1000), id: 'm1' },
      1,
    );
    await waitUntil(() => receiver.received.length === 1);
    const m = message(receiver.url);
    const state = { attempt: 1, details: undefined as unknown };
    const busy = await attempts(activities.deliverWebhook, m, 3, state);
    expect(busy.map((o) => (o as ApplicationFailure).type)).toEqual(Array(3).fill('WebhookBusy'));
    await held;
    // Temporal's attempts 4 and 5 are the delivery's 1st and 2nd: reported so, and spaced as
    // the policy spaces a 1st and a 2nd (2 s, 4 s), not a 4th and a 5th (16 s, 32 s).
    const made = await attempts(activities.deliverWebhook, m, 1, state);
    expect((made[0] as ApplicationFailure).nextRetryDelay).toBe(2_000);
    expect((await projection.readDelivery(m.decision_id, m.id))?.delivery.attempts).toBe(1);
    const again = await attempts(activities.deliverWebhook, m, 1, state);
    expect((again[0] as ApplicationFailure).nextRetryDelay).toBe(4_000);
    expect((await projection.readDelivery(m.decision_id, m.id))?.delivery).toMatchObject({
      attempts: 2,
      last_status: 500,
    });
    expect(receiver.received.map((r) => r.answered)).toEqual([null, 500, 500]);
  });

  it('waits at most an hour between attempts, as the retry policy does', async () => {
    const { receiver, activities } = await setup(() => 503);
    const [outcome] = await attempts(activities.deliverWebhook, message(receiver.url), 1, {
      attempt: 13,
      details: undefined,
    });
    expect((outcome as ApplicationFailure).nextRetryDelay).toBe(3_600_000);
  });

  it.each([408, 409, 425, 429, 500, 503])('keeps retrying a %i', async (status) => {
    const { receiver, activities } = await setup(() => status);
    const outcomes = await attempts(activities.deliverWebhook, message(receiver.url), 5);
    expect(receiver.received).toHaveLength(5);
    expect(outcomes.every((o) => o instanceof ApplicationFailure && !o.nonRetryable)).toBe(true);
  });

  it('names the kind of failure in last_error, never the address or port', async () => {
    const { receiver, activities, projection } = await setup(() => 'hold');
    const held = message(receiver.url, 'decision-1', 300);
    await attempts(activities.deliverWebhook, held, 1);
    // Nothing listens there once the receiver is closed.
    const port = new URL(receiver.url).port;
    await receiver.close();
    const refused = { ...message(receiver.url), id: 'msg_decision-1_2_1' };
    await attempts(activities.deliverWebhook, refused, 1);
    const errors = await Promise.all(
      [held, refused].map(
        async (m) => (await projection.readDelivery(m.decision_id, m.id))?.delivery.last_error,
      ),
    );
    expect(errors).toEqual(['No answer: timeout', 'No answer: connection refused']);
    for (const error of errors) {
      expect(error).not.toContain('127.0.0.1');
      expect(error).not.toContain(port);
    }
  });

  it("holds a principal to its share of deliveries in flight; another's still go", async () => {
    const { receiver, activities } = await setup(() => 'hold', { perPrincipal: 2 });
    const run = (decision: string, n: number) =>
      attempts(
        activities.deliverWebhook,
        { ...message(receiver.url, decision, 1000), id: `m${n}` },
        1,
      );
    // Two of tenant-a's in flight (held by the receiver), a third refused at once, tenant-b's sent.
    const a1 = run('decision-1', 1);
    const a2 = run('decision-1', 2);
    await waitUntil(() => receiver.received.length === 2);
    const [busy] = await run('decision-1', 3);
    expect(busy).toMatchObject({ type: 'WebhookBusy', nonRetryable: false });
    expect((busy as ApplicationFailure).nextRetryDelay).toBeTruthy();
    const b = run('decision-b', 4);
    await waitUntil(() => receiver.received.length === 3);
    // The held ones time out, freeing their slots.
    await Promise.all([a1, a2, b]);
    // Their slots are free again.
    await run('decision-1', 5);
    expect(
      receiver.received.map((r) => (JSON.parse(r.body) as { decision_id: string }).decision_id),
    ).toEqual(['decision-1', 'decision-1', 'decision-b', 'decision-1']);
  });
});

async function waitUntil(condition: () => boolean, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
