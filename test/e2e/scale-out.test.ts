import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecisionRecord } from '../../src/domain/decision';
import { services, testProjection, uniqueName, waitFor } from '../support/context';
import { freePort } from '../support/ports';
import { crashRole, prebuiltBundle, startRole, stopRole } from '../support/processes';

type View = Omit<DecisionRecord, 'seq'>;
const json = { 'Content-Type': 'application/json' };

/** Which worker processes started the activities of a decision (their Temporal identities). */
async function workersOf(client: Client, id: string): Promise<string[]> {
  const history = await client.workflow.getHandle(id).fetchHistory();
  return (history.events ?? [])
    .map((e) => e.activityTaskCompletedEventAttributes?.identity)
    .filter((identity): identity is string => Boolean(identity));
}

/**
 * Who has run a decision paused for review, once its pause (the review timer) is in history:
 * the workers that started its activities, and the one that ran its last workflow task, whose
 * cache holds it.
 */
function runnersOfPaused(client: Client, id: string) {
  return waitFor(`${id}'s pause in its history`, async () => {
    const events = (await client.workflow.getHandle(id).fetchHistory()).events ?? [];
    if (!events.some((e) => e.timerStartedEventAttributes)) return undefined;
    const identities = (pick: (e: (typeof events)[number]) => string | null | undefined) =>
      events.map(pick).filter((identity): identity is string => Boolean(identity));
    return {
      activities: identities((e) => e.activityTaskStartedEventAttributes?.identity),
      holder: identities((e) => e.workflowTaskCompletedEventAttributes?.identity).at(-1),
    };
  });
}

describe('scale-out: one API and two workers (the production entry points)', () => {
  let store: ReturnType<typeof testProjection>;
  let connection: Connection;
  let client: Client;
  let baseUrl: string;
  let api: ReturnType<typeof startRole>;
  const workers: ReturnType<typeof startRole>[] = [];

  beforeAll(async () => {
    store = testProjection();
    connection = await Connection.connect({ address: services.temporalAddress });
    client = new Client({ connection });
    const port = await freePort();
    baseUrl = `http://127.0.0.1:${port}`;
    const env = {
      TEMPORAL_ADDRESS: services.temporalAddress,
      TEMPORAL_TASK_QUEUE: uniqueName('scale'),
      REDIS_URL: services.redisUrl,
      REDIS_KEY_PREFIX: store.prefix,
      LOG_LEVEL: 'info',
      WORKFLOW_BUNDLE_PATH: prebuiltBundle(),
      REVIEW_TIMEOUT_SECONDS: '600',
    };
    for (let i = 0; i < 2; i++) {
      workers.push(
        startRole('src/main/worker.ts', {
          ...env,
          WORKER_HTTP_PORT: String(await freePort()),
          WORKER_SDK_METRICS_ADDRESS: `127.0.0.1:${await freePort()}`,
        }),
      );
    }
    api = startRole('src/main/api.ts', { ...env, PORT: String(port), AUTH_DISABLED: 'true' });
    for (const w of workers) {
      await waitFor(
        'both workers to poll',
        () => (w.output().includes('Worker polling') ? true : undefined),
        90_000,
      );
    }
    await waitFor('the API', async () =>
      (await fetch(`${baseUrl}/health`)).ok ? true : undefined,
    );
  }, 150_000);

  afterAll(async () => {
    await Promise.all([api, ...workers].filter(Boolean).map((r) => stopRole(r.child)));
    await store?.cleanup();
    await connection?.close();
  });

  const create = async (query: string, review = false) =>
    (await (
      await fetch(`${baseUrl}/decisions`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ query, review }),
      })
    ).json()) as View;
  const waitStatus = (id: string, status: string) =>
    waitFor(
      `${id} to be ${status}`,
      async () => {
        const view = (await (await fetch(`${baseUrl}/decisions/${id}`)).json()) as View;
        return view.status === status ? view : undefined;
      },
      60_000,
    );

  it('spreads decisions over both workers, and all complete', async () => {
    const ids = await Promise.all(
      Array.from({ length: 8 }, (_, i) => create(`Should we scale out, take ${i}?`)),
    ).then((views) => views.map((v) => v.process_id));
    for (const id of ids) await waitStatus(id, 'completed');
    const identities = new Set((await Promise.all(ids.map((id) => workersOf(client, id)))).flat());
    expect(identities.size).toBe(2);
  });

  it('lets the other worker finish the decisions of a worker that dies mid-run', async () => {
    // Decisions that pause for review are mid-run, held in the workers' caches.
    const ids = await Promise.all(
      Array.from({ length: 4 }, (_, i) => create(`Should we survive a crash, take ${i}?`, true)),
    ).then((views) => views.map((v) => v.process_id));
    for (const id of ids) await waitStatus(id, 'awaiting_review');

    const identityOf = (role: ReturnType<typeof startRole>) =>
      /"identity":"([^"]+)"/.exec(role.output())?.[1];
    const before = await Promise.all(ids.map((id) => runnersOfPaused(client, id)));
    const holds = (role: ReturnType<typeof startRole>) =>
      before.filter((r) => r.holder === identityOf(role)).length;
    // The worker killed is one that holds paused decisions (the first, unless the other holds all).
    const [dead, alive] = (holds(workers[0]!) > 0 ? workers : [...workers].reverse()) as [
      ReturnType<typeof startRole>,
      ReturnType<typeof startRole>,
    ];
    expect(identityOf(dead)).toBeDefined();
    expect(identityOf(dead)).not.toBe(identityOf(alive));
    // Temporal's history says it ran phases of these decisions and holds some of them.
    expect(holds(dead)).toBeGreaterThan(0);
    expect(before.some((r) => r.activities.includes(identityOf(dead)!))).toBe(true);
    await crashRole(dead);
    for (const id of ids) {
      const res = await fetch(`${baseUrl}/decisions/${id}/review`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ approve: true }),
      });
      expect(res.status, await res.text()).toBe(200);
    }
    for (const id of ids) await waitStatus(id, 'completed');

    for (const id of ids) {
      const identities = await workersOf(client, id);
      // The phases after the review (updateDraft, compileResult) ran on the surviving worker.
      expect(identities.slice(-2)).toEqual([identityOf(alive), identityOf(alive)]);
    }
  });
});
