import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DecisionRecord } from '../../src/domain/decision';
import { PHASE_NAMES } from '../../src/domain/phases';
import { DECISION_WORKFLOW_TYPE, reviewUpdate } from '../../src/domain/workflow-api';
import { lastPhaseFailure } from '../../src/operations/history';
import { DecisionService } from '../../src/api/decision-service';
import { DecisionReads } from '../../src/projection/decision-reads';
import { reconcile } from '../../src/operations/reconcile';
import { replayHistories } from '../../src/operations/replay';
import { retryDecision, RetryError } from '../../src/operations/retry';
import { recordFromHistory } from '../../src/temporal/history-record';
import type { decisionWorkflow } from '../../src/workflows';
import { services, testProjection, uniqueName, waitFor } from '../support/context';
import { scriptedOfflineModel, startOfflineWorker } from '../support/offline-worker';

Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });

const root = resolve(__dirname, '../..');

describe('operations: retry from a phase, replay, reconcile', () => {
  let native: NativeConnection;
  let connection: Connection;
  let client: Client;
  let worker: Awaited<ReturnType<typeof startOfflineWorker>>;
  let store: ReturnType<typeof testProjection>;
  let taskQueue: string;
  const scripted = scriptedOfflineModel();
  const calls = scripted.calls;

  beforeAll(async () => {
    native = await NativeConnection.connect({ address: services.temporalAddress });
    connection = await Connection.connect({ address: services.temporalAddress });
    client = new Client({ connection });
    store = testProjection();
    worker = await startOfflineWorker(native, store, scripted.model);
    taskQueue = worker.taskQueue;
  });
  afterAll(async () => {
    await worker?.stop();
    await store?.cleanup();
    await connection?.close();
    await native?.close();
  });

  async function decide(query: string): Promise<{ id: string; error: unknown }> {
    const id = uniqueName('ops');
    const handle = await client.workflow.start<typeof decisionWorkflow>(DECISION_WORKFLOW_TYPE, {
      taskQueue,
      workflowId: id,
      args: [{ query }],
      memo: { query },
    });
    return {
      id,
      error: await handle.result().then(
        () => null,
        (e: unknown) => e,
      ),
    };
  }
  /** The operators' command, against this suite's Temporal and Redis (and key prefix). */
  const cli = (...args: string[]) =>
    spawnSync(resolve(root, 'node_modules/.bin/tsx'), ['src/cli/decisions.ts', ...args], {
      cwd: root,
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: services.temporalAddress,
        REDIS_URL: services.redisUrl,
        REDIS_KEY_PREFIX: store.prefix,
      },
      encoding: 'utf8',
    });
  const snapshot = () => ({ ...calls });
  const delta = (before: Record<string, number>) =>
    Object.fromEntries(PHASE_NAMES.map((p) => [p, (calls[p] ?? 0) - (before[p] ?? 0)]));

  it('retries a decision that failed in phase 7 from phase 7: phases 1–6 are not run again', async () => {
    scripted.failIn('generateAlternatives');
    const { id, error } = await decide('Should we move billing to a managed Postgres?');
    scripted.failIn(null);
    expect(error).not.toBeNull();
    const failure = lastPhaseFailure(await client.workflow.getHandle(id).fetchHistory());
    expect(failure).toEqual({
      phase: 'generateAlternatives',
      type: 'ModelAuthenticationError',
      message: 'the model provider rejected the API key',
      attempts: 1,
    });
    const failed = (await store.projection.get(id))!;
    expect(failed.status).toBe('failed');
    // The same record, rebuilt from the failed run's history by the reducer: no worker asked.
    const history = await client.workflow.getHandle(id).fetchHistory();
    expect(recordFromHistory(id, history)).toEqual(failed);

    const before = snapshot();
    const retried = await retryDecision(client, id);
    expect(retried).toMatchObject({ process_id: id, from_phase: 'generateAlternatives' });
    expect(retried.new_run_id).not.toBe(retried.old_run_id);
    const record: DecisionRecord = await client.workflow
      .getHandle<typeof decisionWorkflow>(id)
      .result();

    expect(record.status).toBe('completed');
    const rerun = delta(before);
    for (const p of PHASE_NAMES.slice(0, 6)) expect(rerun[p], p).toBe(0);
    for (const p of PHASE_NAMES.slice(6)) expect(rerun[p], p).toBe(1);
    expect(await store.projection.get(id)).toMatchObject({ status: 'completed', error: null });
    // The earlier phases keep the timings of the first run: they come from its history.
    const timings = (r: DecisionRecord) =>
      r.phases.slice(0, 6).map((p) => [p.status, p.started_at, p.completed_at, p.duration_ms]);
    expect(timings(record)).toEqual(timings(failed));
    expect(timings(record).every(([status, started]) => status === 'completed' && started)).toBe(
      true,
    );
  });

  it('retries a completed decision from a named phase', async () => {
    const { id } = await decide('Should we retry compiled results?');
    const before = snapshot();
    await retryDecision(client, id, { fromPhase: 'compileResult' });
    const record: DecisionRecord = await client.workflow
      .getHandle<typeof decisionWorkflow>(id)
      .result();
    expect(record.status).toBe('completed');
    expect(delta(before)).toEqual({
      ...Object.fromEntries(PHASE_NAMES.map((p) => [p, 0])),
      compileResult: 1,
    });
  });

  it('refuses to retry a completed decision without --from-phase, saying why', async () => {
    const { id } = await decide('Should we refuse retries?');
    await expect(retryDecision(client, id)).rejects.toThrow(RetryError);
    await expect(retryDecision(client, id)).rejects.toThrow(/no failed phase.*--from-phase/);
  });

  it('replays a retried history cleanly against the current code', async () => {
    const { id } = await decide('Should we replay retried decisions?');
    await retryDecision(client, id, { fromPhase: 'draftDecision' });
    await client.workflow.getHandle(id).result();
    const histories = [
      { workflowId: id, history: await client.workflow.getHandle(id).fetchHistory() },
    ];
    const outcomes = await replayHistories(histories, {
      workflowBundle: { codePath: services.workflowBundlePath },
    });
    expect(outcomes).toEqual([expect.objectContaining({ workflowId: id, ok: true, error: null })]);
  });

  it('reconcile restores a flushed projection from Temporal, and a second run changes nothing', async () => {
    const ids = [
      (await decide('Should we reconcile one?')).id,
      (await decide('Should we reconcile two?')).id,
    ];
    const expected = await Promise.all(ids.map((id) => store.projection.get(id)));
    await store.redis.del(...ids.map((id) => store.projection.recordKey(id)));
    expect(await store.projection.get(ids[0]!)).toBeNull();

    const run = () =>
      reconcile({
        client,
        reads: new DecisionReads({ client, projection: store.projection }),
        since: new Date(Date.now() - 3_600_000),
        filter: `TaskQueue = "${taskQueue}"`,
      });
    const first = await waitForVisibility(ids, run);
    expect(first.restored).toEqual(expect.arrayContaining(ids));
    expect(first.failed).toEqual([]);
    expect(await Promise.all(ids.map((id) => store.projection.get(id)))).toEqual(expected);

    const second = await run();
    expect(second.restored).toEqual([]);
    expect(second.updated).toEqual([]);
    expect(second.unchanged).toBe(second.checked);
  });

  it('reconcile run in a loop during a decision leaves exactly one event of each kind', async () => {
    const id = uniqueName('ops-loop');
    const handle = await client.workflow.start<typeof decisionWorkflow>(DECISION_WORKFLOW_TYPE, {
      taskQueue,
      workflowId: id,
      args: [{ query: 'Should we reconcile while it runs?', review: { timeout_ms: 60_000 } }],
      memo: { query: 'Should we reconcile while it runs?' },
    });
    const runs: number[] = [];
    let done = false;
    const finished = handle.result().finally(() => (done = true));
    const loop = (async () => {
      while (!done) {
        const report = await reconcile({
          client,
          reads: new DecisionReads({ client, projection: store.projection }),
          since: new Date(Date.now() - 600_000),
          filter: `WorkflowId = "${id}"`,
        });
        runs.push(report.checked);
      }
    })();
    await waitFor('the review to be requested', async () => {
      const r = await store.projection.get(id);
      return r?.status === 'awaiting_review' ? r : undefined;
    });
    await handle.executeUpdate(reviewUpdate, { args: [{ approve: true }] });
    await finished;
    await loop;
    expect(runs.filter((checked) => checked > 0).length).toBeGreaterThan(1);
    const counts: Record<string, number> = {};
    for (const e of await store.projection.readEvents(id, null)) {
      counts[e.type] = (counts[e.type] ?? 0) + 1;
    }
    expect(counts).toEqual({
      'decision.started': 1,
      'phase.started': 10,
      'phase.completed': 10,
      'review.requested': 1,
      'review.received': 1,
      'decision.completed': 1,
    });
  });

  it('shows a retried decision running at once, from the API and after the decisions command, and lists it once', async () => {
    // A worker of its own, stopped once its decisions have failed: the retried runs cannot write
    // to the projection, which still holds the failures, until a worker polls again.
    const own = await startOfflineWorker(native, store, scripted.model);
    scripted.failIn('generateAlternatives');
    const failed = await Promise.all(
      [
        'Should we retry from the API?',
        'Should we retry from the command?',
        'Should we leave this one failed?',
      ].map(async (query) => {
        const id = uniqueName('ops-ryw');
        const handle = await client.workflow.start<typeof decisionWorkflow>(
          DECISION_WORKFLOW_TYPE,
          { taskQueue: own.taskQueue, workflowId: id, args: [{ query }], memo: { query } },
        );
        await handle.result().catch(() => undefined);
        return id;
      }),
    );
    scripted.failIn(null);
    await own.stop();
    // The third stays failed: the control that the command lists failed decisions at all.
    const [viaApi, viaCli, stays] = failed as [string, string, string];
    const retriedIds = [viaApi, viaCli];
    const service = new DecisionService({
      client,
      projection: store.projection,
      taskQueue: own.taskQueue,
      queryTimeoutMs: 300,
    });
    const caller = { principal: 'operator', admin: true };
    const status = async (id: string) => (await service.get({ id, caller })).status;
    expect([await status(viaApi), await status(viaCli)]).toEqual(['failed', 'failed']);

    await service.retry({ id: viaApi, caller });
    expect(await status(viaApi)).toBe('running');
    const retried = cli('retry', viaCli);
    expect(retried.status, retried.stderr).toBe(0);
    expect(await status(viaCli)).toBe('running');
    // The projection still holds the old runs' failures: what the reads showed came from Temporal.
    expect((await store.projection.get(viaApi))!.status).toBe('failed');

    // One row per decision, its latest run; the old runs' failures are not listed as failed.
    const list = (...args: string[]) => {
      const out = cli('list', '--since', '1h', '--limit', '1000', '--json', ...args);
      expect(out.status, out.stderr).toBe(0);
      return JSON.parse(out.stdout) as { process_id: string; status: string }[];
    };
    await waitFor('visibility to list the new runs', () => {
      const rows = list().filter((r) => retriedIds.includes(r.process_id));
      return Promise.resolve(
        rows.length === 2 && rows.every((r) => r.status === 'running') ? rows : undefined,
      );
    });
    const listedFailed = list('--status', 'failed').map((r) => r.process_id);
    expect(listedFailed).toContain(stays);
    expect(listedFailed.filter((id) => retriedIds.includes(id))).toEqual([]);
    // The old runs are still in visibility as failed: the command, not the index, leaves them out.
    const runs: string[] = [];
    const query = `WorkflowId = "${viaApi}" AND DecisionStatus = "failed"`;
    for await (const run of client.workflow.list({ query })) runs.push(run.runId);
    expect(runs).toHaveLength(1);
  });

  it('the decisions command shows a failure in plain words and replays with exit code 0', async () => {
    scripted.failIn('generateAlternatives');
    const { id } = await decide('Should we show failures?');
    scripted.failIn(null);
    const show = cli('show', id);
    expect(show.status).toBe(0);
    expect(show.stdout).toContain('FAILED');
    expect(show.stdout).toContain(
      'Failed in generateAlternatives after 1 attempt: ModelAuthenticationError',
    );
    expect(show.stdout).toContain(`decisions retry ${id}`);
    const replay = cli('replay', id);
    expect(replay.stdout).toContain(`ok      ${id}`);
    expect(replay.status).toBe(0);
    const failed = cli('replay', '--failed', '--since', '1h');
    expect(failed.status, failed.stdout + failed.stderr).toBe(0);
    expect(failed.stdout).toContain(`ok      ${id}`);
    // Every saved history, as the deploy gate in docs/OPERATIONS.md replays them: each under the
    // workflow id it ran with (a webhook delivery's child id carries it).
    const saved = readdirSync(resolve(root, 'test/histories')).map((f) => `test/histories/${f}`);
    const files = cli('replay', '--file', ...saved);
    expect(files.status, files.stdout + files.stderr).toBe(0);
    expect(files.stdout).toContain('ok      2e39a69e-485e-4647-b01a-b73766a2eca1');
    const missing = cli('show', 'no-such-decision');
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('No decision with id no-such-decision');
    const help = cli('retry', '--help');
    expect(help.stdout).toContain('--from-phase');
  });
});

/** Visibility is eventually consistent: run again until every id has been restored once. */
async function waitForVisibility<T extends { restored: string[]; failed: unknown[] }>(
  ids: string[],
  run: () => Promise<T>,
): Promise<{ restored: string[]; failed: unknown[] }> {
  const restored = new Set<string>();
  const failed: unknown[] = [];
  return waitFor('reconcile to see every decision', async () => {
    const report = await run();
    report.restored.forEach((id) => restored.add(id));
    failed.push(...report.failed);
    return ids.every((id) => restored.has(id)) ? { restored: [...restored], failed } : undefined;
  });
}
