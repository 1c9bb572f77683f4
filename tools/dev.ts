import { clusterNodes } from '../src/projection/redis-client';
import { startApi } from '../src/api/server';
import { loadApiConfig, loadWorkerConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { installTemporalRuntime } from '../src/observability/temporal-runtime';
import { startTracing } from '../src/observability/tracing';
import { ensureLocalRedis } from './redis-dev';
import { ensureLocalTemporal } from './temporal/local';
import { startWorker } from '../src/main/start-worker';
import { DEV_BUILD_ID } from '../src/temporal/versioning';
import { newWebhookSecret } from '../src/webhooks/deliver';
import { keptSecret, runMain } from '../src/main/process';
import { loadLocalSettings } from './settings';

const say = (line: string) => process.stderr.write(`${line}\n`);
const DEV_WEBHOOK_SECRET_FILE = '.data/webhook_secret.txt';

// The all-in-one for development: Temporal dev server, Redis if none runs, one worker, the API.
runMain(async () => {
  // Webhooks work out of the box here: signed with a secret kept beside the dev data, and a
  // receiver on this machine, on any port, allowed unless the variables say otherwise.
  const env = {
    ...process.env,
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: process.env.WEBHOOK_ALLOW_PRIVATE_NETWORKS || 'true',
    WEBHOOK_ALLOWED_PORTS: process.env.WEBHOOK_ALLOWED_PORTS || '*',
    // The offline model writes its answers at a visible pace, so that a decision's page and
    // `npm run decide` show the live output without a key.
    LLM_OFFLINE_DELAY_MS: process.env.LLM_OFFLINE_DELAY_MS || '1500',
  };
  // Both roles' settings, checked before anything starts.
  const apiConfig = loadApiConfig(env);
  const workerConfig = loadWorkerConfig(env);
  const local = loadLocalSettings();
  const ownSecret = !workerConfig.WEBHOOK_SECRET;
  const webhookSecret =
    workerConfig.WEBHOOK_SECRET ?? keptSecret(DEV_WEBHOOK_SECRET_FILE, newWebhookSecret);
  const apiSettings = { ...apiConfig, WEBHOOK_SECRET: webhookSecret };
  // One build id across restarts, and always current: `npm start` is the only worker, so the
  // decisions in flight continue on the restarted code, as they did before versioning
  // (patched() and the replayed histories guard that). A build per bundle is for deploys.
  const workerSettings = {
    ...workerConfig,
    WEBHOOK_SECRET: webhookSecret,
    WORKER_BUILD_ID: workerConfig.WORKER_BUILD_ID ?? DEV_BUILD_ID,
    WORKER_PROMOTION: 'always' as const,
  };
  const logger = createLogger(workerSettings.LOG_LEVEL, 'dev', workerSettings.LOG_FORMAT);
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => say(String(err)));
  };
  try {
    // The servers run in process groups of their own: a terminal's Ctrl-C reaches only this
    // process, which stops the API and the worker first and the servers they use last.
    const temporal = await ensureLocalTemporal({ ...workerSettings, ...local }, say, {
      detached: true,
    });
    stops.push(() => temporal.stop());
    if (workerSettings.REDIS_CLUSTER_NODES) {
      // A cluster is the user's own: it is used as it is, never started here.
      const { nodes } = clusterNodes(workerSettings.REDIS_CLUSTER_NODES);
      say(`Using the Redis Cluster at ${nodes.map((n) => `${n.host}:${n.port}`).join(',')}`);
    } else {
      const redis = await ensureLocalRedis(workerSettings.REDIS_URL, local.REDIS_DATA_DIR, {
        detached: true,
      });
      stops.push(() => redis.stop());
      say(
        redis.pid === null
          ? `Using the Redis already answering at ${workerSettings.REDIS_URL}`
          : `Started redis-server (pid ${redis.pid}) at ${workerSettings.REDIS_URL}, data in ${local.REDIS_DATA_DIR}`,
      );
    }
    installTemporalRuntime(logger, workerSettings.WORKER_SDK_METRICS_ADDRESS);
    const tracing = startTracing(workerSettings.OTEL_EXPORTER_OTLP_ENDPOINT, 'decision-dev');
    const worker = await startWorker(workerSettings, logger, tracing);
    stops.push(() => worker.shutdown());
    worker.done.catch((err: unknown) => logger.fatal({ err }, 'Worker failed'));
    // The decision page links to the Web UI of the dev server started here, unless told otherwise.
    const uiUrl = (!process.env.TEMPORAL_UI_URL && temporal.uiUrl) || apiSettings.TEMPORAL_UI_URL;
    const api = await startApi({ ...apiSettings, TEMPORAL_UI_URL: uiUrl }, logger, {
      requireAuth: false,
      tracing,
    });
    stops.push(() => api.close());

    const ui = temporal.uiUrl ?? `the Web UI of the server at ${temporal.address}`;
    say('');
    say(`  API:              ${api.url}`);
    say(`  API docs:         ${api.url}/docs`);
    say(`  Decisions page:   ${api.url}/ui/`);
    say(`  Temporal Web UI:  ${ui}`);
    if (worker.httpUrl) say(`  Worker metrics:   ${worker.httpUrl}/metrics`);
    say(
      `  Webhook secret:   ${api.url}/webhooks/secret (master ${ownSecret ? `in ${DEV_WEBHOOK_SECRET_FILE}` : 'from WEBHOOK_SECRET'})${workerSettings.WEBHOOK_ALLOW_PRIVATE_NETWORKS ? ' (receivers on this machine allowed)' : ''}`,
    );
    say(`  Try:  curl -s -X POST ${api.url}/decisions -H 'Content-Type: application/json' \\`);
    say(`          -d '{"query":"Should we move billing to a managed Postgres?"}'`);
    say('  Ctrl-C stops everything.');
    say('');
  } catch (err) {
    await stopAll();
    throw err;
  }
  return stopAll;
});
