import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/api/app';
import { DecisionService } from '../../src/api/decision-service';
import type { DecisionRecord } from '../../src/domain/decision';
import type { WebhookBody } from '../../src/domain/webhook';
import { parseApiKeys } from '../../src/api/middleware/auth';
import type { Resolve } from '../../src/webhooks/address';
import { createResolve } from '../../src/webhooks/resolver';
import { principalSecret } from '../../src/webhooks/secret';
import { startStalledDns } from '../support/stalled-dns';
import { services, testProjection, uniqueName, waitFor } from '../support/context';
import { freePort } from '../support/ports';
import { crashRole, prebuiltBundle, startRole, stopRole } from '../support/processes';
import { startReceiver, verifySignature, type Answer } from '../support/webhook-receiver';

type View = Omit<DecisionRecord, 'seq'>;
type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
const json = { 'Content-Type': 'application/json' };
const SECRET = `whsec_${randomBytes(24).toString('base64')}`;

const bodyOf = (text: string) => JSON.parse(text) as WebhookBody;

describe('webhooks: signed deliveries by Temporal activities (API and worker processes)', () => {
  let store: ReturnType<typeof testProjection>;
  let connection: Connection;
  let client: Client;
  let baseUrl: string;
  let api: ReturnType<typeof startRole>;
  let worker: ReturnType<typeof startRole>;
  let env: Record<string, string>;
  // What the receiver answers to a decision's n-th request of a type; each test sets its own
  // before it creates its decision.
  let answer: (type: string, index: number) => Answer = () => 200;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  /** What the receiver verifies with: the secret GET /webhooks/secret gives (auth off: anonymous's). */
  let receiverSecret: string;

  const startWorker = async () => {
    const role = startRole('src/main/worker.ts', {
      ...env,
      WORKER_HTTP_PORT: 'off',
      WORKER_SDK_METRICS_ADDRESS: 'off',
    });
    await waitFor(
      'the worker to poll',
      () => (role.output().includes('Worker polling') ? true : undefined),
      90_000,
    );
    return role;
  };

  beforeAll(async () => {
    store = testProjection();
    connection = await Connection.connect({ address: services.temporalAddress });
    client = new Client({ connection });
    receiver = await startReceiver((request) => {
      const body = bodyOf(request.body);
      const mine = receiver.received.filter(
        (r) => bodyOf(r.body).decision_id === body.decision_id && bodyOf(r.body).type === body.type,
      );
      return answer(body.type, mine.length - 1);
    });
    const port = await freePort();
    baseUrl = `http://127.0.0.1:${port}`;
    env = {
      TEMPORAL_ADDRESS: services.temporalAddress,
      TEMPORAL_TASK_QUEUE: uniqueName('webhooks'),
      REDIS_URL: services.redisUrl,
      REDIS_KEY_PREFIX: store.prefix,
      LOG_LEVEL: 'info',
      LLM_PROVIDER: 'offline',
      WORKFLOW_BUNDLE_PATH: prebuiltBundle(),
      WEBHOOK_SECRET: SECRET,
      // The receiver listens on 127.0.0.1, on a port of its own: private networks do not open
      // other ports than 80 and 443, so both are allowed here.
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
      WEBHOOK_ALLOWED_PORTS: '*',
      WEBHOOK_TIMEOUT_SECONDS: '2',
      // The spacing after a 4xx, shortened from 1 and 10 minutes, yet above the backoff's 2 and
      // 4 s, so that the test sees it kept.
      WEBHOOK_REJECTED_RETRY_SECONDS: '3,6',
    };
    worker = await startWorker();
    api = startRole('src/main/api.ts', { ...env, PORT: String(port), AUTH_DISABLED: 'true' });
    await waitFor(
      'the API',
      async () => ((await fetch(`${baseUrl}/health`)).ok ? true : undefined),
      90_000,
    );
    const secret = await fetch(`${baseUrl}/webhooks/secret`);
    expect(secret.status).toBe(200);
    receiverSecret = ((await secret.json()) as { secret: string }).secret;
  }, 180_000);

  afterAll(async () => {
    await Promise.all([api, worker].filter(Boolean).map((r) => stopRole(r.child)));
    await receiver?.close();
    await store?.cleanup();
    await connection?.close();
  });

  const create = async (body: object): Promise<View> => {
    const res = await fetch(`${baseUrl}/decisions`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ ...body, webhook: { url: receiver.url } }),
    });
    expect(res.status, await res.clone().text()).toBe(202);
    return (await res.json()) as View;
  };
  const read = async (id: string) =>
    (await (await fetch(`${baseUrl}/decisions/${id}`)).json()) as View;
  const requestsOf = (id: string, type: string) =>
    receiver.received.filter((r) => {
      const body = bodyOf(r.body);
      return body.decision_id === id && body.type === type;
    });

  /** The delivery workflows a decision started, read from its own history. */
  async function deliveriesOf(id: string): Promise<string[]> {
    const history = await client.workflow.getHandle(id).fetchHistory();
    return (history.events ?? [])
      .map((e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId)
      .filter((child): child is string => Boolean(child));
  }

  /** The first delivery workflow a decision starts, once it has. */
  async function firstDeliveryOf(id: string): Promise<string> {
    const [child] = await waitFor('the delivery to start', async () => {
      const ids = await deliveriesOf(id);
      return ids.length > 0 ? ids : undefined;
    });
    return child!;
  }

  /** Waits for a delivery workflow to close, and returns its history's events. */
  async function closedDelivery(workflowId: string): Promise<HistoryEvent[]> {
    const handle = client.workflow.getHandle(workflowId);
    await waitFor(
      `delivery ${workflowId} to close`,
      async () => ((await handle.describe()).status.name !== 'RUNNING' ? true : undefined),
      60_000,
    );
    return (await handle.fetchHistory()).events ?? [];
  }

  const startedAttempts = (events: HistoryEvent[]) =>
    events
      .map((e) => e.activityTaskStartedEventAttributes?.attempt)
      .filter((a): a is number => typeof a === 'number');

  it('delivers each event once, signed; a 500 is retried with the same webhook-id', async () => {
    answer = (type, index) => (type === 'decision.completed' && index === 0 ? 500 : 200);
    const created = await create({ query: 'Should we call our callers back?', review: true });
    const id = created.process_id;
    // The default events: a review request, then the end.
    await waitFor('the review request to arrive', () =>
      requestsOf(id, 'review.requested').length > 0 ? true : undefined,
    );
    const review = await fetch(`${baseUrl}/decisions/${id}/review`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ approve: true }),
    });
    expect(review.status).toBe(200);

    const children = await waitFor(
      'two deliveries to be started',
      async () => {
        const ids = await deliveriesOf(id);
        return ids.length === 2 ? ids : undefined;
      },
      60_000,
    );
    const histories = await Promise.all(children.map(closedDelivery));

    // Every request the receiver got is signed with the secret GET /webhooks/secret gave (its
    // principal's, derived from WEBHOOK_SECRET; not WEBHOOK_SECRET itself), and checks out by its
    // own HMAC.
    const mine = receiver.received.filter((r) => bodyOf(r.body).decision_id === id);
    expect(mine.length).toBe(3);
    expect(receiverSecret).toBe(principalSecret(SECRET, 'anonymous'));
    for (const r of mine) {
      expect(verifySignature(receiverSecret, r.headers, r.body)).toBe(true);
      expect(verifySignature(SECRET, r.headers, r.body)).toBe(false);
    }
    expect(
      verifySignature(
        `whsec_${randomBytes(24).toString('base64')}`,
        mine[0]!.headers,
        mine[0]!.body,
      ),
    ).toBe(false);

    const [review1, ...reviewRest] = requestsOf(id, 'review.requested');
    expect(reviewRest).toEqual([]);
    expect(review1!.answered).toBe(200);

    const completed = requestsOf(id, 'decision.completed');
    expect(completed.map((r) => r.answered)).toEqual([500, 200]);
    expect(completed[1]!.headers['webhook-id']).toBe(completed[0]!.headers['webhook-id']);
    expect(completed[0]!.headers['webhook-id']).not.toBe(review1!.headers['webhook-id']);
    const body = bodyOf(completed[1]!.body);
    expect(body.data.status).toBe('completed');
    expect((body.data.result as View['result'])?.decision.decision).toBeTruthy();

    // Temporal's history agrees: the completion's delivery took two attempts, the review's one.
    const byId = new Map(children.map((child, i) => [child, histories[i]!]));
    const completionHistory = byId.get(String(completed[0]!.headers['webhook-id']))!;
    expect(startedAttempts(completionHistory)).toContain(2);
    expect(completionHistory.some((e) => e.workflowExecutionCompletedEventAttributes)).toBe(true);
    expect(startedAttempts(byId.get(String(review1!.headers['webhook-id']))!)).toEqual([1]);
    // The decision and its deliveries are pinned to the build of the worker that started them.
    const behavior = async (workflowId: string) =>
      (await client.workflow.getHandle(workflowId).describe()).raw.workflowExecutionInfo
        ?.versioningInfo?.behavior;
    const { VersioningBehavior } = temporal.api.enums.v1;
    expect(await behavior(id)).toBe(VersioningBehavior.VERSIONING_BEHAVIOR_PINNED);
    for (const child of children) {
      expect(await behavior(child)).toBe(VersioningBehavior.VERSIONING_BEHAVIOR_PINNED);
    }

    // And so does the status document.
    const view = await read(id);
    const delivered = view.webhook?.deliveries.find((d) => d.event === 'decision.completed');
    expect(delivered).toMatchObject({
      id: completed[0]!.headers['webhook-id'],
      state: 'delivered',
      attempts: 2,
      last_status: 200,
    });
    expect(delivered?.delivered_at).toBeTruthy();
    expect(view.webhook?.deliveries).toHaveLength(2);
  }, 120_000);

  it('delivers after the worker is killed mid-delivery, with the same webhook-id', async () => {
    // The first attempt is held open: the decision has ended and its delivery is under way.
    answer = (_type, index) => (index === 0 ? 'hold' : 200);
    const created = await create({ query: 'Should we survive a crash mid-delivery?' });
    const id = created.process_id;
    await waitFor(
      'the first delivery attempt',
      () => (requestsOf(id, 'decision.completed').length === 1 ? true : undefined),
      60_000,
    );
    expect((await read(id)).status).toBe('completed');
    await crashRole(worker);
    worker = await startWorker();

    const [child] = await deliveriesOf(id);
    const events = await closedDelivery(child!);
    const attempts = requestsOf(id, 'decision.completed');
    expect(attempts.map((r) => r.answered)).toEqual([null, 200]);
    expect(attempts[1]!.headers['webhook-id']).toBe(attempts[0]!.headers['webhook-id']);
    expect(verifySignature(receiverSecret, attempts[1]!.headers, attempts[1]!.body)).toBe(true);
    // The attempt that completed it ran on the new worker.
    const identity = /"identity":"([^"]+)"/.exec(worker.output())?.[1];
    const completedBy = events
      .map((e) => e.activityTaskCompletedEventAttributes?.identity)
      .filter(Boolean);
    expect(completedBy).toEqual([identity]);
    expect(startedAttempts(events)).toEqual([2]);
    expect((await read(id)).webhook?.deliveries[0]).toMatchObject({
      state: 'delivered',
      attempts: 2,
    });
  }, 120_000);

  it('stops at a 410 after one attempt, the decision still completes, and a reset delivers again', async () => {
    answer = () => 410;
    const created = await create({ query: 'Should we stop calling a receiver that is gone?' });
    const id = created.process_id;
    const child = await firstDeliveryOf(id);
    const events = await closedDelivery(child);
    expect(events.some((e) => e.workflowExecutionFailedEventAttributes)).toBe(true);
    expect(startedAttempts(events)).toEqual([1]);
    expect(requestsOf(id, 'decision.completed').map((r) => r.answered)).toEqual([410]);
    const view = await read(id);
    expect(view.status).toBe('completed');
    expect(view.webhook?.deliveries[0]).toMatchObject({
      state: 'gone',
      attempts: 1,
      last_status: 410,
      delivered_at: null,
    });
    expect((await client.workflow.getHandle(id).describe()).status.name).toBe('COMPLETED');

    // The operator's redelivery (docs/OPERATIONS.md): reset the delivery to its start, once the
    // receiver is back. The same event arrives with the same webhook-id.
    answer = () => 200;
    await promisify(execFile)(services.temporalCliPath, [
      ...['workflow', 'reset', '--address', services.temporalAddress],
      ...['--workflow-id', child, '--type', 'FirstWorkflowTask', '--reason', 'receiver back'],
    ]);
    await waitFor('the redelivery', async () =>
      (await read(id)).webhook?.deliveries[0]?.state === 'delivered' ? true : undefined,
    );
    const again = requestsOf(id, 'decision.completed');
    expect(again.map((r) => r.answered)).toEqual([410, 200]);
    expect(again[1]!.headers['webhook-id']).toBe(again[0]!.headers['webhook-id']);
    expect((await read(id)).webhook?.deliveries[0]).toMatchObject({
      attempts: 1,
      last_status: 200,
    });
  }, 60_000);

  it("signs each tenant's deliveries with its own secret: A's receiver verifies none of B's, even at A's URL", async () => {
    const keyA = randomBytes(16).toString('hex');
    const keyB = randomBytes(16).toString('hex');
    const readOnly = randomBytes(16).toString('hex');
    // An API process of its own with keys, on the same queue: the worker above delivers.
    const tenants = createApp({
      decisions: new DecisionService({
        client,
        projection: store.projection,
        taskQueue: env.TEMPORAL_TASK_QUEUE!,
        webhooks: {
          allowPrivateNetworks: true,
          allowedPorts: 'any',
          timeoutMs: 2000,
          retryMs: 60_000,
        },
      }),
      health: () => Promise.reject(new Error('unused')),
      projection: store.projection,
      redis: store.redis,
      keyPrefix: store.prefix,
      apiKeys: parseApiKeys(
        `${keyA}=decisions:read+decisions:write@tenant-a,${keyB}=decisions:read+decisions:write@tenant-b,${readOnly}=decisions:read@reader`,
      ),
      webhookSecretOf: (principal) => principalSecret(SECRET, principal),
      maxQueryChars: 200,
    });
    const auth = (key: string) => ({ Authorization: `Bearer ${key}` });
    const secretOf = async (key: string) => {
      const res = await tenants.request('/webhooks/secret', { headers: auth(key) });
      expect(res.status).toBe(200);
      return ((await res.json()) as { secret: string }).secret;
    };
    const [secretA, secretB] = [await secretOf(keyA), await secretOf(keyB)];
    expect(secretA).not.toBe(secretB);
    // A key that may not create webhooks does not get a secret.
    expect((await tenants.request('/webhooks/secret', { headers: auth(readOnly) })).status).toBe(
      403,
    );
    expect((await tenants.request('/webhooks/secret')).status).toBe(401);

    const receiverB = await startReceiver(() => 200);
    try {
      const createAs = async (key: string, url: string) => {
        const res = await tenants.request('/decisions', {
          method: 'POST',
          headers: { ...json, ...auth(key) },
          body: JSON.stringify({ query: 'Whose is this?', webhook: { url } }),
        });
        expect(res.status, await res.clone().text()).toBe(202);
        return ((await res.json()) as View).process_id;
      };
      const ofA = await createAs(keyA, receiver.url);
      const ofB = await createAs(keyB, receiverB.url);
      // B points its decision at A's receiver.
      const ofBatA = await createAs(keyB, receiver.url);
      const delivered = (at: typeof receiver, id: string) =>
        waitFor(
          `the delivery of ${id}`,
          () => at.received.find((r) => bodyOf(r.body).decision_id === id),
          60_000,
        );
      const [a, b, bAtA] = await Promise.all([
        delivered(receiver, ofA),
        delivered(receiverB, ofB),
        delivered(receiver, ofBatA),
      ]);
      // Each verifies with its own tenant's secret only.
      expect(verifySignature(secretA, a.headers, a.body)).toBe(true);
      expect(verifySignature(secretB, a.headers, a.body)).toBe(false);
      expect(verifySignature(secretB, b.headers, b.body)).toBe(true);
      expect(verifySignature(secretA, b.headers, b.body)).toBe(false);
      // What B sent to A's receiver is genuinely signed, but as B: A's receiver refuses it.
      expect(verifySignature(secretA, bAtA.headers, bAtA.body)).toBe(false);
      expect(verifySignature(secretB, bAtA.headers, bAtA.body)).toBe(true);
      for (const r of [a, b, bAtA]) expect(verifySignature(SECRET, r.headers, r.body)).toBe(false);
    } finally {
      await receiverB.close();
    }
  }, 120_000);

  it('ends a delivery after the third 404, spaced as WEBHOOK_REJECTED_RETRY_SECONDS says, names the failure in last_error, and Temporal agrees', async () => {
    answer = () => 404;
    const created = await create({ query: 'Should we keep calling a URL that is not ours?' });
    const id = created.process_id;
    const events = await closedDelivery(await firstDeliveryOf(id));
    expect(events.some((e) => e.workflowExecutionFailedEventAttributes)).toBe(true);
    expect(startedAttempts(events)).toEqual([3]);
    expect(requestsOf(id, 'decision.completed').map((r) => r.answered)).toEqual([404, 404, 404]);
    const at = requestsOf(id, 'decision.completed').map((r) => r.at);
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(3_000);
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(6_000);
    const view = await waitFor('the failure to be stored', async () => {
      const v = await read(id);
      return v.webhook?.deliveries[0]?.state === 'failed' ? v : undefined;
    });
    expect(view.webhook?.deliveries[0]).toMatchObject({
      state: 'failed',
      attempts: 3,
      last_status: 404,
    });
    expect(view.webhook?.deliveries[0]?.last_error).toMatch(
      'The receiver answered 404, 3 times: no more attempts',
    );
    expect(view.webhook?.deliveries[0]?.last_error).not.toMatch(new URL(receiver.url).port);
  }, 60_000);

  describe('URLs it refuses, with nothing started', () => {
    const taskQueue = uniqueName('refused');
    let app: ReturnType<typeof createApp>;
    /** The same, with a resolver that fails as DNS servers do. */
    let flakyDns: ReturnType<typeof createApp>;
    /** Decisions started on the queue by the tests before the last one. */
    let acceptedHere = 0;

    /** An API whose decisions go to a queue no worker polls: what is started stays, to count. */
    const appWith = (resolve?: Resolve, queue = taskQueue) =>
      createApp({
        decisions: new DecisionService({
          client,
          projection: store.projection,
          taskQueue: queue,
          webhooks: { allowPrivateNetworks: false, timeoutMs: 2000, retryMs: 60_000, resolve },
        }),
        health: () => Promise.reject(new Error('unused')),
        projection: store.projection,
        redis: store.redis,
        keyPrefix: store.prefix,
        apiKeys: null,
        maxQueryChars: 200,
      });

    beforeAll(() => {
      app = appWith();
      flakyDns = appWith((host) =>
        Promise.reject(
          Object.assign(new Error(`getaddrinfo failed ${host}`), {
            code: host === 'dns-down.example' ? 'EAI_AGAIN' : 'ENOTFOUND',
          }),
        ),
      );
    });

    const post = (url: string, to = app) =>
      to.request('/decisions', {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ query: 'Where do we call?', webhook: { url } }),
      });

    it.each([
      ['http://8.8.8.8:6379/', 'uses port 6379: webhooks are sent to ports 80, 443 only'],
      ['ftp://example.com/hook', 'must use http or https, not ftp'],
      ['http://10.1.2.3/hook', '10.1.2.3, a private address'],
      ['http://169.254.169.254/latest/meta-data', 'a linkLocal address'],
      ['http://[::1]/hook', '::1, a loopback address'],
      ['http://[::ffff:192.168.0.1]/hook', 'a private address'],
      ['http://localhost/hook', 'localhost resolves to a loopback address'],
      ['not a url', 'is not an absolute URL'],
    ])('refuses %s with 400', async (url, reason) => {
      const res = await post(url);
      expect(res.status).toBe(400);
      const problem = (await res.json()) as { detail: string; errors: { path: string }[] };
      expect(problem.detail).toMatch(reason);
      expect(problem.errors[0]?.path).toBe('webhook.url');
    });

    it('answers 503 when DNS fails for a while, 400 when the name does not exist', async () => {
      const unavailable = await post('https://dns-down.example/hook', flakyDns);
      expect(unavailable.status).toBe(503);
      expect(((await unavailable.json()) as { detail: string }).detail).toMatch(
        'webhook.url dns-down.example could not be resolved just now (EAI_AGAIN)',
      );
      const missing = await post('https://no-such.example/hook', flakyDns);
      expect(missing.status).toBe(400);
      expect(((await missing.json()) as { detail: string }).detail).toMatch(
        'no-such.example does not resolve (ENOTFOUND)',
      );
    });

    it('answers 503 within the DNS timeout when the DNS server stalls, and creates without a webhook go on', async () => {
      const dns = await startStalledDns();
      try {
        const stalled = appWith(
          createResolve({ servers: [dns.server], timeoutMs: 500, hostsFile: null }),
        );
        const started = performance.now();
        const [unavailable, plain] = await Promise.all([
          post('https://hooks.stalled.example/x', stalled),
          stalled.request('/decisions', {
            method: 'POST',
            headers: json,
            body: JSON.stringify({ query: 'No webhook here' }),
          }),
        ]);
        expect(unavailable.status).toBe(503);
        expect(performance.now() - started).toBeLessThan(2000);
        expect(((await unavailable.json()) as { detail: string }).detail).toMatch(
          'hooks.stalled.example could not be resolved just now (ETIMEOUT)',
        );
        expect(dns.queries).toContain('hooks.stalled.example');
        expect(plain.status).toBe(202);
        // The plain create is counted with the accepted one in the last test.
        acceptedHere++;
      } finally {
        await dns.close();
      }
    });

    it('answers a resent create with its decision even when the webhook host no longer resolves', async () => {
      // Its own queue, so that the count below stays that of refused URLs.
      let dns: 'up' | 'down' = 'up';
      const resent = appWith(
        (host) =>
          dns === 'up'
            ? Promise.resolve([{ address: '93.184.215.14', family: 4 }])
            : Promise.reject(
                Object.assign(new Error(`getaddrinfo ${host}`), { code: 'EAI_AGAIN' }),
              ),
        uniqueName('resent'),
      );
      const create = (key: string) =>
        resent.request('/decisions', {
          method: 'POST',
          headers: { ...json, 'Idempotency-Key': key },
          body: JSON.stringify({
            query: 'Who hears back?',
            webhook: { url: 'https://hooks.example/x' },
          }),
        });
      const key = uniqueName('key');
      const first = await create(key);
      expect(first.status).toBe(202);
      const { process_id } = (await first.json()) as { process_id: string };

      dns = 'down';
      const again = await create(key);
      expect(again.status).toBe(202);
      expect(((await again.json()) as { process_id: string }).process_id).toBe(process_id);
      // A new key is a new request: its URL must be checked, and now cannot be.
      expect((await create(uniqueName('key'))).status).toBe(503);
    });

    it('started no decision for any refused URL', async () => {
      // A public address passes; its decision is the only one Temporal knows on this queue.
      const accepted = await post('https://93.184.215.14/hook');
      expect(accepted.status).toBe(202);
      const count = () => client.workflow.count(`TaskQueue = "${taskQueue}"`);
      await waitFor('the accepted decisions to be visible', async () =>
        (await count()).count >= 1 + acceptedHere ? true : undefined,
      );
      expect((await count()).count).toBe(1 + acceptedHere);
    });
  });
});
