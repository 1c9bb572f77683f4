import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { DecisionRecord } from '../../src/domain/decision';
import type { decisionWorkflow } from '../../src/workflows';
import { ensureLocalRedis, type LocalRedis } from '../redis-dev';
import { startDevServer, type DevServer } from '../temporal/dev-server';
import { freePort } from '../process/ports';
import { crashRole, prebuiltBundle, startRole, stopRole } from '../../test/support/processes';
import { startSchemaInstanceServer } from '../../test/support/schema-instance-server';
import { waitFor } from '../../src/process/wait';
import { activityCompletions } from '../../test/support/history';

type Role = ReturnType<typeof startRole>;

/**
 * The whole system as real processes: a Temporal dev server keeping history in a SQLite file, a
 * Redis of its own, the API, workers, and a local Chat Completions server that answers plain
 * instances of each schema and injects the faults a scenario asks for.
 */
export async function startStack(options: { temporalCli: string; workers: number }) {
  const dir = mkdtempSync(join(tmpdir(), 'chaos-'));
  const address = `127.0.0.1:${await freePort()}`;
  const dbFile = join(dir, 'temporal.sqlite');
  const startTemporal = () =>
    startDevServer({
      cliPath: options.temporalCli,
      address,
      namespace: 'default',
      uiPort: null,
      dbFile,
    });
  let temporal: DevServer = await startTemporal();
  let redis: LocalRedis = await ensureLocalRedis(`redis://127.0.0.1:${await freePort()}`, null);
  const model = await startSchemaInstanceServer();
  // The model's needs ask about "value of needs 1 question": a passage with those words makes
  // retrieval call the model too.
  const knowledge = join(dir, 'knowledge');
  mkdirSync(knowledge);
  writeFileSync(
    join(knowledge, 'needs.md'),
    '# Value of needs\n\nThe value of each need depends on the question it asks.\n',
  );
  const apiPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    TEMPORAL_ADDRESS: address,
    TEMPORAL_TASK_QUEUE: 'chaos',
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: 'chaos:',
    LLM_PROVIDER: 'openai',
    LLM_MODEL: 'chaos-model',
    LLM_BASE_URL: model.baseURL,
    LLM_TIMEOUT_MS: '3000',
    KNOWLEDGE_DIR: knowledge,
    WORKFLOW_BUNDLE_PATH: prebuiltBundle(),
    WORKER_HTTP_PORT: 'off',
    WORKER_SDK_METRICS_ADDRESS: 'off',
    AUTH_DISABLED: 'true',
    API_KEYS: '',
    RATE_LIMIT_PER_MINUTE: '0',
    PORT: String(apiPort),
    LOG_LEVEL: 'info',
  };
  // Workers deliver webhooks to the webhook scenarios' local receivers; the API takes none.
  const webhookSecret = `whsec_${randomBytes(32).toString('base64')}`;
  const workerEnv: NodeJS.ProcessEnv = {
    ...env,
    WEBHOOK_SECRET: webhookSecret,
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
    WEBHOOK_ALLOWED_PORTS: '*',
    // The webhook scenario's deliveries retry for 60 s: a 4xx is tried again after the backoff's
    // 2 s and 4 s, not the 1 and 10 minutes of production, so that the third can come.
    WEBHOOK_REJECTED_RETRY_SECONDS: '2,4',
  };
  const startWorker = async (): Promise<Role> => {
    const role = startRole('src/main/worker.ts', workerEnv);
    await waitFor(
      'a worker to poll',
      () => (role.output().includes('Worker polling') ? true : undefined),
      90_000,
    );
    return role;
  };
  const workers: Role[] = [];
  for (let i = 0; i < options.workers; i++) workers.push(await startWorker());
  const api = startRole('src/main/api.ts', env);
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  // A second API on a task queue no worker polls, for the fuzzer: what it starts never runs.
  const fuzzPort = await freePort();
  const fuzzApi = startRole('src/main/api.ts', {
    ...env,
    PORT: String(fuzzPort),
    TEMPORAL_TASK_QUEUE: 'fuzz',
    LOG_LEVEL: 'warn',
  });
  const fuzzUrl = `http://127.0.0.1:${fuzzPort}`;
  await waitFor(
    'the fuzzed API to answer',
    async () => ((await fetch(`${fuzzUrl}/health`)).ok ? true : undefined),
    60_000,
  );
  await waitFor(
    'the API to answer',
    async () => ((await fetch(`${apiUrl}/health`)).ok ? true : undefined),
    60_000,
  );
  let connection = await Connection.connect({ address });
  let client = new Client({ connection });

  return {
    model,
    /** What the API processes run with, for a scenario that starts one of its own. */
    env,
    /** The master the workers sign webhook deliveries with. */
    webhookSecret,
    get redisUrl() {
      return redis.url;
    },
    /** SIGSTOP, so that Redis holds connections and answers nothing, until `resumeRedis`. */
    pauseRedis: () => process.kill(redis.pid!, 'SIGSTOP'),
    resumeRedis: () => process.kill(redis.pid!, 'SIGCONT'),
    /** Stops Redis and starts it again on the same port, empty (it keeps nothing on disk). */
    async restartRedis(): Promise<void> {
      await redis.stop();
      redis = await ensureLocalRedis(redis.url, null);
    },
    apiUrl,
    fuzzUrl,
    get client() {
      return client;
    },
    workers,
    /**
     * Another API process on the stack's Temporal, Redis and task queue, with settings of its own
     * (API_KEYS, say); `stop` ends it.
     */
    async startApi(
      settings: NodeJS.ProcessEnv,
    ): Promise<{ url: string; stop: () => Promise<void> }> {
      const port = await freePort();
      const role = startRole('src/main/api.ts', { ...env, ...settings, PORT: String(port) });
      const url = `http://127.0.0.1:${port}`;
      await waitFor(
        'the API to answer',
        async () => ((await fetch(`${url}/health`)).ok ? true : undefined),
        60_000,
      );
      return { url, stop: () => stopRole(role.child).then(() => undefined) };
    },
    /** Asks a question over HTTP; the decision's id. */
    async decide(query: string): Promise<string> {
      const res = await fetch(`${apiUrl}/decisions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ query }),
      });
      if (res.status !== 202)
        throw new Error(`POST /decisions answered ${res.status}: ${await res.text()}`);
      return ((await res.json()) as DecisionRecord).process_id;
    },
    /** How a decision ended, from Temporal. */
    async outcome(id: string): Promise<{ status: string; error: string | null }> {
      return client.workflow
        .getHandle<typeof decisionWorkflow>(id)
        .result()
        .then(
          (record) => ({ status: record.status, error: null }),
          (err: unknown) => ({
            status: 'failed',
            error: err instanceof Error ? err.message : String(err),
          }),
        );
    },
    /** Completed activities per activity type in the decision's history. */
    async completedPhases(id: string): Promise<Record<string, number>> {
      const history = await client.workflow.getHandle(id).fetchHistory();
      return activityCompletions(history.events ?? []).counts;
    },
    /** SIGKILLs every worker (whichever holds a call), then starts as many again. */
    async killWorkers(): Promise<void> {
      await Promise.all(workers.map((role) => crashRole(role)));
      for (let i = 0; i < workers.length; i++) workers[i] = await startWorker();
    },
    /** SIGSTOP: the dev server holds its connections and answers nothing, until `resumeTemporal`. */
    pauseTemporal: () => process.kill(temporal.process.pid!, 'SIGSTOP'),
    resumeTemporal: () => process.kill(temporal.process.pid!, 'SIGCONT'),
    /** SIGKILLs the dev server and starts it again on the same port and SQLite file. */
    async restartTemporal(): Promise<void> {
      temporal.process.kill('SIGKILL');
      await new Promise<void>((done) => temporal.process.once('exit', () => done()));
      temporal = await startTemporal();
      await connection.close().catch(() => undefined);
      connection = await Connection.connect({ address });
      client = new Client({ connection });
    },
    async stop(): Promise<void> {
      await Promise.all([api, fuzzApi, ...workers].map((role) => stopRole(role.child)));
      await connection.close().catch(() => undefined);
      await model.close();
      await redis.stop();
      await temporal.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export type Stack = Awaited<ReturnType<typeof startStack>>;
