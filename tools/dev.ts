import { startApi } from '../src/api/server';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { installTemporalRuntime } from '../src/observability/temporal-runtime';
import { startTracing } from '../src/observability/tracing';
import { ensureLocalRedis } from './redis-dev';
import { ensureLocalTemporal } from './temporal/local';
import { startWorker } from '../src/main/start-worker';
import { newWebhookSecret } from '../src/webhooks/deliver';
import { keptSecret, runMain } from '../src/main/process';

const say = (line: string) => process.stderr.write(`${line}\n`);
const DEV_WEBHOOK_SECRET_FILE = '.data/webhook_secret.txt';

// The all-in-one for development: Temporal dev server, Redis if none runs, one worker, the API.
runMain(async () => {
  const loaded = loadConfig();
  // Webhooks work out of the box here: signed with a secret kept beside the dev data, and a
  // receiver on this machine allowed unless WEBHOOK_ALLOW_PRIVATE_NETWORKS says otherwise.
  const config = {
    ...loaded,
    WEBHOOK_SECRET: loaded.WEBHOOK_SECRET ?? keptSecret(DEV_WEBHOOK_SECRET_FILE, newWebhookSecret),
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: process.env.WEBHOOK_ALLOW_PRIVATE_NETWORKS
      ? loaded.WEBHOOK_ALLOW_PRIVATE_NETWORKS
      : true,
  };
  const logger = createLogger(config.LOG_LEVEL, 'dev', config.LOG_FORMAT);
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => say(String(err)));
  };
  try {
    // The servers run in process groups of their own: a terminal's Ctrl-C reaches only this
    // process, which stops the API and the worker first and the servers they use last.
    const temporal = await ensureLocalTemporal(config, say, { detached: true });
    stops.push(() => temporal.stop());
    const redis = await ensureLocalRedis(config.REDIS_URL, config.REDIS_DATA_DIR, {
      detached: true,
    });
    stops.push(() => redis.stop());
    say(
      redis.pid === null
        ? `Using the Redis already answering at ${config.REDIS_URL}`
        : `Started redis-server (pid ${redis.pid}) at ${config.REDIS_URL}, data in ${config.REDIS_DATA_DIR}`,
    );
    installTemporalRuntime(logger, config.WORKER_SDK_METRICS_ADDRESS);
    const tracing = startTracing(config.OTEL_EXPORTER_OTLP_ENDPOINT, 'decision-dev');
    // One build id across restarts, and always current: `npm start` is the only worker, so the
    // decisions in flight continue on the restarted code, as they did before versioning
    // (patched() and the replayed histories guard that). A build per bundle is for deploys.
    const worker = await startWorker(
      { ...config, WORKER_BUILD_ID: config.WORKER_BUILD_ID ?? 'dev', WORKER_PROMOTION: 'always' },
      logger,
      tracing,
    );
    stops.push(() => worker.shutdown());
    worker.done.catch((err: unknown) => logger.fatal({ err }, 'Worker failed'));
    const api = await startApi(config, logger, { requireAuth: false, tracing });
    stops.push(() => api.close());

    const ui = temporal.uiUrl ?? `the Web UI of the server at ${temporal.address}`;
    say('');
    say(`  API:              ${api.url}`);
    say(`  API docs:         ${api.url}/docs`);
    say(`  Temporal Web UI:  ${ui}`);
    if (worker.httpUrl) say(`  Worker metrics:   ${worker.httpUrl}/metrics`);
    say(
      `  Webhook secret:   ${loaded.WEBHOOK_SECRET ? 'from WEBHOOK_SECRET' : `in ${DEV_WEBHOOK_SECRET_FILE}`}${config.WEBHOOK_ALLOW_PRIVATE_NETWORKS ? ' (receivers on this machine allowed)' : ''}`,
    );
    say(
      `  Try:  curl -s -X POST ${api.url}/decisions/start -H 'Content-Type: application/json' \\`,
    );
    say(`          -d '{"decision_query":"Should we move billing to a managed Postgres?"}'`);
    say('  Ctrl-C stops everything.');
    say('');
  } catch (err) {
    await stopAll();
    throw err;
  }
  return stopAll;
});
