import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findOrBuildClusterBinaries, type ClusterBinaries } from '../../tools/cluster/binaries';
import { DEFAULT_POSTGRES_URL } from '../../tools/cluster/config';
import {
  dropTemporalDatabases,
  freeTemporalPorts,
  postgresTarget,
  startCluster,
  type Cluster,
  type PostgresTarget,
} from '../../tools/cluster/topology';
import type { DecisionRecord } from '../../src/domain/decision';
import { PHASE_NAMES } from '../../src/domain/phases';
import { temporalAnswers } from '../../tools/temporal/dev-server';
import { portIsFree } from '../../tools/process/ports';
import { activityCompletions, eachPhaseOnce } from '../support/history';
import { freePort } from '../support/ports';
import { holdFirstCall, startSchemaInstanceServer } from '../support/schema-instance-server';
import { startInOwnGroup } from '../support/processes';
import { waitFor } from '../support/wait';

// `npm run cluster`'s topology, as it runs in production: temporal-server on PostgreSQL (history
// and SQL visibility), the Web UI server, two built workers, the built API with keys, and Redis
// with an append-only file. Its model is a local Chat Completions server that answers each call
// with a plain instance of the schema it was sent. The databases are the test's own, dropped after.

const root = resolve(__dirname, '../..');
const KEY = 'cluster-test-key-0123456789abcdef';
const FAIL_MARKER = '[refused by the model provider]';
const log = (line: string) => process.stderr.write(`[cluster test] ${line}\n`);

let binaries: ClusterBinaries;
let postgres: PostgresTarget;
let cluster: Cluster;
let client: Client;
let dataDir: string;
let model: Awaited<ReturnType<typeof startSchemaInstanceServer>>;

/** Every request that carried the marker is refused with a 401: its decision fails at once. */
const refuseMarked = () =>
  model.reset({
    fault: (request) =>
      JSON.stringify(request.body.messages ?? []).includes(FAIL_MARKER)
        ? { kind: 'status', status: 401, message: 'invalid api key' }
        : undefined,
  });

async function ask(query: string): Promise<string> {
  const res = await fetch(`${cluster.apiUrl}/decisions`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ query }),
  });
  expect(res.status, await res.clone().text()).toBe(202);
  return ((await res.json()) as DecisionRecord).process_id;
}

async function apiRecord(id: string): Promise<{ status: number; record: DecisionRecord }> {
  const res = await fetch(`${cluster.apiUrl}/decisions/${id}`, {
    headers: { Authorization: `Bearer ${KEY}` },
  });
  return { status: res.status, record: (await res.json()) as DecisionRecord };
}

/** The workflow's own result, from Temporal. */
const result = (id: string) => client.workflow.getHandle(id).result() as Promise<DecisionRecord>;

/** How many times each activity type completed in the decision's history, and its events. */
async function completions(id: string) {
  const events = (await client.workflow.getHandle(id).fetchHistory()).events ?? [];
  return { ...activityCompletions(events), events };
}

/** `npm run decisions -- <args>` as an operator runs it against the cluster (the built CLI). */
function decisionsCli(args: string[]) {
  const run = spawnSync(process.execPath, ['dist/cli/decisions.js', ...args, '--json'], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, TEMPORAL_ADDRESS: cluster.temporalAddress, REDIS_URL: cluster.redisUrl },
    timeout: 120_000,
  });
  return { code: run.status, out: run.stdout, err: run.stderr };
}

describe('the production topology (npm run cluster)', () => {
  beforeAll(async () => {
    // `.ci/run` builds these first (npm run cluster:install); on a fresh machine this takes minutes.
    binaries = await findOrBuildClusterBinaries({ log });
    postgres = postgresTarget(
      process.env.POSTGRES_URL ?? DEFAULT_POSTGRES_URL,
      `temporal_test_${process.pid}`,
      `temporal_visibility_test_${process.pid}`,
    );
    model = await startSchemaInstanceServer();
    dataDir = mkdtempSync(join(tmpdir(), 'cluster-test-'));
    try {
      cluster = await startCluster({
        binaries,
        postgres,
        dataDir,
        temporalPorts: await freeTemporalPorts(),
        temporalMetricsPort: null,
        uiPort: await freePort(),
        apiPort: await freePort(),
        redisUrl: `redis://127.0.0.1:${await freePort()}`,
        workers: 2,
        namespace: 'default',
        retentionHours: 24,
        apiKeys: `${KEY}=decisions:read+decisions:write@cluster-test`,
        roleEnv: {
          LLM_PROVIDER: 'openai',
          LLM_MODEL: 'schema-instance',
          LLM_BASE_URL: model.baseURL,
          LOG_LEVEL: 'warn',
        },
        log,
      });
    } catch (err) {
      throw new Error(
        `The cluster test needs PostgreSQL at ${postgres.host}:${postgres.port} (POSTGRES_URL) and could not start the cluster: ${String(err)}`,
        { cause: err },
      );
    }
    client = new Client({
      connection: await Connection.connect({ address: cluster.temporalAddress }),
    });
  }, 15 * 60_000);

  afterAll(async () => {
    await client?.connection.close().catch(() => undefined);
    await cluster?.stop();
    await model?.close();
    if (postgres && binaries) dropTemporalDatabases(binaries, postgres);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }, 120_000);

  let completedId: string;
  let failedId: string;

  it('completes a decision asked over the API, each phase once in its PostgreSQL history, every answer from the model server', async () => {
    model.reset();
    completedId = await ask('Should we move billing to a managed Postgres?');
    expect((await result(completedId)).status).toBe('completed');
    const { counts } = await completions(completedId);
    expect(eachPhaseOnce(counts), JSON.stringify(counts)).toBe(true);
    // Every phase's call reached the model server: the schema names it was sent are the phases.
    expect(new Set(model.requests.map((r) => r.task))).toEqual(new Set(PHASE_NAMES));
    const { status, record } = await waitFor('the API to show it completed', async () => {
      const got = await apiRecord(completedId);
      return got.record.status === 'completed' ? got : undefined;
    });
    expect(status).toBe(200);
    expect(record.result).not.toBeNull();
  });

  it('serves the decision in the Web UI server, read from this Temporal', async () => {
    const res = await fetch(`${cluster.uiUrl}/api/v1/namespaces/default/workflows/${completedId}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { workflowExecutionInfo?: { status?: string } };
    expect(body.workflowExecutionInfo?.status).toBe('WORKFLOW_EXECUTION_STATUS_COMPLETED');
  });

  it('loses nothing when the worker running a phase is SIGKILLed: the other worker completes it', async () => {
    const { inFlight, release } = holdFirstCall(model, 'defineScope');
    const id = await ask('Should we survive a worker crash mid-decision?');
    await inFlight;
    const pending = await waitFor('the held phase to show as pending', async () => {
      const described = await client.workflow.getHandle(id).describe();
      return described.raw.pendingActivities?.[0]?.lastWorkerIdentity ?? undefined;
    });
    const holder = cluster.workers.find((w) => pending === `${w.pid}@${pending.split('@')[1]}`);
    expect(holder, `no cluster worker has the identity ${pending}`).toBeDefined();
    const survivor = cluster.workers.find((w) => w !== holder)!;
    process.kill(holder!.pid, 'SIGKILL');
    release();

    expect((await result(id)).status).toBe('completed');
    const { counts, events, types } = await completions(id);
    expect(eachPhaseOnce(counts), JSON.stringify(counts)).toBe(true);
    // The phase was started again after the heartbeat timeout, on the worker that survived.
    const started = events.find(
      (e) =>
        e.activityTaskStartedEventAttributes &&
        types.get(String(e.activityTaskStartedEventAttributes.scheduledEventId)) === 'defineScope',
    )!.activityTaskStartedEventAttributes!;
    expect(started.attempt).toBeGreaterThanOrEqual(2);
    expect(started.identity).toBe(`${survivor.pid}@${pending.split('@')[1]}`);
    await cluster.startWorker();
  }, 180_000);

  it('loses nothing when the Temporal server is SIGKILLed and restarted mid-decision; the API serves from Redis meanwhile', async () => {
    const { inFlight, release } = holdFirstCall(model, 'draftDecision');
    const id = await ask('Should we survive a Temporal server crash?');
    await inFlight;
    await cluster.temporal.stop('SIGKILL');
    expect(await temporalAnswers(cluster.temporalAddress)).toBe(false);
    const served = await apiRecord(id);
    expect(served.status).toBe(200);
    expect(served.record.status).toBe('running');
    await cluster.temporal.start();
    release();

    expect((await result(id)).status).toBe('completed');
    const { counts } = await completions(id);
    expect(eachPhaseOnce(counts), JSON.stringify(counts)).toBe(true);
    // The held call's answer reached the restarted server: the phase was not run a second time.
    expect(model.requests.filter((r) => r.task === 'draftDecision')).toHaveLength(1);
  }, 180_000);

  it('finds the failed decision, and only it, with DecisionStatus="failed" in SQL visibility', async () => {
    refuseMarked();
    failedId = await ask(`Should we trust a provider that refuses us? ${FAIL_MARKER}`);
    // The workflow fails with the provider's refusal: a 401 is not retried.
    await expect(result(failedId)).rejects.toThrow('Workflow execution failed');
    const described = await client.workflow.getHandle(failedId).describe();
    expect(described.status.name).toBe('FAILED');
    const failed = await waitFor('visibility to list the failed decision', async () => {
      const ids: string[] = [];
      for await (const w of client.workflow.list({ query: 'DecisionStatus = "failed"' })) {
        ids.push(w.workflowId);
      }
      return ids.includes(failedId) ? ids : undefined;
    });
    expect(failed).toEqual([failedId]);
    const listed = decisionsCli(['list', '--status', 'completed']);
    expect(listed.code, listed.err).toBe(0);
    const completedIds = (JSON.parse(listed.out) as { process_id: string }[]).map(
      (r) => r.process_id,
    );
    expect(completedIds).toContain(completedId);
    expect(completedIds).not.toContain(failedId);
  });

  it('replays the failed and the completed history from this server with `decisions replay`', () => {
    const replay = decisionsCli(['replay', completedId, '--failed']);
    expect(replay.code, replay.err).toBe(0);
    const outcomes = JSON.parse(replay.out) as { workflowId: string; ok: boolean }[];
    expect(outcomes.map((o) => o.workflowId).sort()).toEqual([completedId, failedId].sort());
    expect(outcomes.every((o) => o.ok)).toBe(true);
  });

  it('runs the failed decision again to completion with `decisions retry`', async () => {
    model.reset();
    const retry = decisionsCli(['retry', failedId]);
    expect(retry.code, retry.err).toBe(0);
    const record = await waitFor(
      'the retried run to complete',
      async () => {
        const r = await result(failedId);
        return r.status === 'completed' ? r : undefined;
      },
      60_000,
    );
    expect(record.process_id).toBe(failedId);
    const { status, record: shown } = await waitFor('the API to show it completed', async () => {
      const got = await apiRecord(failedId);
      return got.record.status === 'completed' ? got : undefined;
    });
    expect(status).toBe(200);
    expect(shown.result).not.toBeNull();
  });
});

describe('npm run cluster itself', () => {
  it('starts everything, says where, and stops every process it started on one Ctrl-C', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cluster-main-'));
    const temporal = await freeTemporalPorts();
    const ports = {
      PORT: await freePort(),
      TEMPORAL_UI_PORT: await freePort(),
      redis: await freePort(),
    };
    const target = postgresTarget(
      process.env.POSTGRES_URL ?? DEFAULT_POSTGRES_URL,
      `temporal_main_test_${process.pid}`,
      `temporal_visibility_main_test_${process.pid}`,
    );
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      POSTGRES_URL: process.env.POSTGRES_URL ?? DEFAULT_POSTGRES_URL,
      TEMPORAL_DB_NAME: target.database,
      TEMPORAL_VISIBILITY_DB_NAME: target.visibilityDatabase,
      TEMPORAL_ADDRESS: `127.0.0.1:${temporal.frontend}`,
      FRONTEND_HTTP_PORT: String(temporal.frontendHttp),
      FRONTEND_MEMBERSHIP_PORT: String(temporal.frontendMembership),
      HISTORY_GRPC_PORT: String(temporal.history),
      HISTORY_MEMBERSHIP_PORT: String(temporal.historyMembership),
      MATCHING_GRPC_PORT: String(temporal.matching),
      MATCHING_MEMBERSHIP_PORT: String(temporal.matchingMembership),
      WORKER_GRPC_PORT: String(temporal.worker),
      WORKER_MEMBERSHIP_PORT: String(temporal.workerMembership),
      TEMPORAL_METRICS_PORT: 'off',
      PORT: String(ports.PORT),
      TEMPORAL_UI_PORT: String(ports.TEMPORAL_UI_PORT),
      CLUSTER_REDIS_URL: `redis://127.0.0.1:${ports.redis}`,
      CLUSTER_DATA_DIR: dir,
      API_KEYS: '',
      LLM_PROVIDER: '',
      LOG_LEVEL: 'warn',
    };
    // In a process group of its own, as in a terminal: Ctrl-C reaches tsx and the entry point.
    const started = startInOwnGroup('tools/cluster/run.ts', env);
    const main = started.child;
    try {
      await started.summary(180_000);
      const out = started.output();
      for (const line of [
        `API:              http://127.0.0.1:${ports.PORT}`,
        `Temporal Web UI:  http://127.0.0.1:${ports.TEMPORAL_UI_PORT}`,
        `on PostgreSQL (${target.database}, ${target.visibilityDatabase})`,
        `Redis:            redis://127.0.0.1:${ports.redis}`,
        'Model:            the offline stand-in',
      ]) {
        expect(out).toContain(line);
      }
      // The key it made for itself, readable by its owner only, lets a client in.
      const keysFile = join(dir, 'api_keys.txt');
      expect(statSync(keysFile).mode & 0o777).toBe(0o600);
      const key = readFileSync(keysFile, 'utf8').split('=')[0]!;
      const res = await fetch(`http://127.0.0.1:${ports.PORT}/decisions`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ query: 'Should the cluster answer its own key?' }),
      });
      expect(res.status).toBe(202);

      process.kill(-main.pid!, 'SIGINT');
      expect(await started.exited).toBe(0);
      expect(started.output()).not.toContain('exiting without waiting');
      // Nothing it started still listens: API, Web UI, every Temporal port, Redis.
      for (const port of [
        ports.PORT,
        ports.TEMPORAL_UI_PORT,
        ports.redis,
        ...(Object.keys(temporal) as (keyof typeof temporal)[]).map((k) => temporal[k]),
      ]) {
        expect(await portIsFree(port), `port ${port} is still in use`).toBe(true);
      }
    } finally {
      if (main.exitCode === null) process.kill(-main.pid!, 'SIGKILL');
      dropTemporalDatabases(binaries, target);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
