import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { findOrBuildClusterBinaries } from './binaries';
import { clusterTemporalPorts, loadClusterSettings } from './config';
import { postgresTarget, startCluster } from './topology';
import { ConfigError } from '../../src/config';
import { portIsFree } from '../process/ports';
import { splitAddress, temporalAnswers } from '../temporal/dev-server';
import { newWebhookSecret } from '../../src/webhooks/deliver';
import { keptSecret, runMain } from '../../src/main/process';

const say = (line: string) => process.stderr.write(`${line}\n`);

/** API_KEYS when set; else a key of the cluster's own, kept in its data folder across starts. */
function clusterApiKeys(apiKeys: string | undefined, dataDir: string): string {
  return (
    apiKeys ??
    keptSecret(
      join(dataDir, 'api_keys.txt'),
      () =>
        `${randomBytes(24).toString('base64url')}=decisions:read+decisions:write+decisions:admin@operator`,
    )
  );
}

// `npm run cluster`: the production topology on this machine (docs/DEPLOYMENT.md);
// `--install-only` finds or builds its binaries and exits.
runMain(async () => {
  if (process.argv.includes('--install-only')) {
    const binaries = await findOrBuildClusterBinaries({ log: say });
    for (const path of Object.values(binaries)) process.stdout.write(`${path}\n`);
    process.exit(0);
  }
  const settings = loadClusterSettings();
  const { api, worker, local } = settings;
  const { host, port } = splitAddress(api.TEMPORAL_ADDRESS);
  if (!['127.0.0.1', 'localhost'].includes(host)) {
    throw new ConfigError(
      `Invalid configuration:\n  TEMPORAL_ADDRESS: the cluster's server listens on 127.0.0.1; ${host} is not this host`,
    );
  }
  if (port > 32767) {
    throw new ConfigError(
      'Invalid configuration:\n  TEMPORAL_ADDRESS: its port must be below 32768 (the server stores ports as smallint)',
    );
  }
  if (await temporalAnswers(api.TEMPORAL_ADDRESS)) {
    throw new Error(
      `A Temporal server already answers at ${api.TEMPORAL_ADDRESS} (the dev server of npm start?). Stop it, or give the cluster another TEMPORAL_ADDRESS.`,
    );
  }
  const temporalPorts = clusterTemporalPorts(settings, port);
  // Every fixed port, checked before anything starts: a service that cannot bind its port would
  // otherwise fail after the others started, or another server's answer be taken for its own.
  const ports: [string, number | null][] = [
    ['PORT (the API)', api.PORT],
    ['TEMPORAL_UI_PORT', local.TEMPORAL_UI_PORT],
    ['TEMPORAL_METRICS_PORT', settings.TEMPORAL_METRICS_PORT],
    ...(Object.keys(temporalPorts) as (keyof typeof temporalPorts)[]).map(
      (service): [string, number] => [
        `the Temporal server's ${service} port`,
        temporalPorts[service],
      ],
    ),
  ];
  const taken: string[] = [];
  for (const [name, p] of ports)
    if (p !== null && !(await portIsFree(p))) taken.push(`${p} (${name})`);
  if (taken.length > 0) {
    throw new Error(
      `Ports in use on 127.0.0.1: ${taken.join(', ')}. Stop what listens there (npm start?), or move the cluster's ports (docs/DEPLOYMENT.md lists their variables).`,
    );
  }
  const binaries = await findOrBuildClusterBinaries({ log: say });
  const apiKeys = clusterApiKeys(api.API_KEYS, settings.CLUSTER_DATA_DIR);
  const webhookSecretFile = join(settings.CLUSTER_DATA_DIR, 'webhook_secret.txt');
  const webhookSecret = api.WEBHOOK_SECRET ?? keptSecret(webhookSecretFile, newWebhookSecret);
  const cluster = await startCluster({
    binaries,
    postgres: postgresTarget(
      settings.POSTGRES_URL,
      settings.TEMPORAL_DB_NAME,
      settings.TEMPORAL_VISIBILITY_DB_NAME,
    ),
    dataDir: settings.CLUSTER_DATA_DIR,
    temporalPorts,
    temporalMetricsPort: settings.TEMPORAL_METRICS_PORT,
    uiPort: local.TEMPORAL_UI_PORT,
    apiPort: api.PORT,
    redisUrl: settings.CLUSTER_REDIS_URL,
    workers: settings.CLUSTER_WORKERS,
    namespace: api.TEMPORAL_NAMESPACE,
    retentionHours: settings.TEMPORAL_NAMESPACE_RETENTION_HOURS,
    apiKeys,
    roleEnv: {
      WEBHOOK_SECRET: webhookSecret,
      WEBHOOK_SECRET_FILE: '',
      // The decision page links to the cluster's own Web UI, unless told otherwise.
      TEMPORAL_UI_URL: process.env.TEMPORAL_UI_URL || `http://127.0.0.1:${local.TEMPORAL_UI_PORT}`,
    },
    log: say,
  });
  const keysFile = join(settings.CLUSTER_DATA_DIR, 'api_keys.txt');
  // The key itself stays out of the terminal: the example reads it from its file.
  const key = api.API_KEYS ? '<a key from API_KEYS>' : `$(cut -d= -f1 ${keysFile})`;
  const rows: [string, string][] = [
    ['API', `${cluster.apiUrl}   (docs at ${cluster.apiUrl}/docs)`],
    ['Decisions page', `${cluster.apiUrl}/ui/`],
    ['API key', api.API_KEYS ? 'from API_KEYS' : `in ${keysFile}`],
    ['Webhook secret', api.WEBHOOK_SECRET ? 'from WEBHOOK_SECRET' : `in ${webhookSecretFile}`],
    ['Temporal Web UI', cluster.uiUrl],
    [
      'Temporal',
      `${cluster.temporalAddress}, on PostgreSQL (${settings.TEMPORAL_DB_NAME}, ${settings.TEMPORAL_VISIBILITY_DB_NAME})`,
    ],
    ...(cluster.temporalMetricsUrl
      ? [['Temporal metrics', cluster.temporalMetricsUrl] as [string, string]]
      : []),
    ...cluster.workers.map((w): [string, string] => [
      w.name,
      `${w.httpUrl}/metrics (pid ${w.pid})`,
    ]),
    ['Redis', cluster.redisUrl],
    [
      'Model',
      worker.LLM_PROVIDER === 'openai'
        ? `${worker.LLM_MODEL} at ${worker.LLM_BASE_URL ?? 'OpenAI'}`
        : 'the offline stand-in (set LLM_PROVIDER=openai and LLM_MODEL for a real one)',
    ],
    ['Logs', `${join(settings.CLUSTER_DATA_DIR, 'logs')}/`],
  ];
  say('');
  for (const [name, value] of rows) say(`  ${`${name}:`.padEnd(18)}${value}`);
  say(`  Try:  curl -s -X POST ${cluster.apiUrl}/decisions -H "Authorization: Bearer ${key}" \\`);
  say(
    `          -H 'Content-Type: application/json' -d '{"query":"Should we move billing to a managed Postgres?"}'`,
  );
  say('  Ctrl-C stops everything.');
  say('');
  return () => cluster.stop();
});
