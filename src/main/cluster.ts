import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findOrBuildClusterBinaries } from '../cluster/binaries';
import { loadClusterSettings } from '../cluster/config';
import { DEFAULT_TEMPORAL_PORTS, postgresTarget, startCluster } from '../cluster/topology';
import { ConfigError } from '../config';
import { splitAddress, temporalAnswers } from '../temporal/dev-server';
import { runMain } from './process';

const say = (line: string) => process.stderr.write(`${line}\n`);

/** API_KEYS when set; else a key of the cluster's own, kept in its data folder across starts. */
function clusterApiKeys(apiKeys: string | undefined, dataDir: string): string {
  if (apiKeys) return apiKeys;
  const file = join(dataDir, 'api_keys.txt');
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true });
    const key = randomBytes(24).toString('base64url');
    writeFileSync(file, `${key}=decisions:read+decisions:write+decisions:admin@operator\n`, {
      mode: 0o600,
    });
  }
  return readFileSync(file, 'utf8').trim();
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
  const { config } = settings;
  const { host, port } = splitAddress(config.TEMPORAL_ADDRESS);
  if (!['127.0.0.1', 'localhost'].includes(host)) {
    throw new ConfigError(
      `Invalid configuration:\n  TEMPORAL_ADDRESS: the cluster's server listens on 127.0.0.1; ${host} is not this host`,
    );
  }
  if (await temporalAnswers(config.TEMPORAL_ADDRESS)) {
    throw new Error(
      `A Temporal server already answers at ${config.TEMPORAL_ADDRESS} (the dev server of npm start?). Stop it, or give the cluster another TEMPORAL_ADDRESS.`,
    );
  }
  const binaries = await findOrBuildClusterBinaries({ log: say });
  const apiKeys = clusterApiKeys(config.API_KEYS, settings.CLUSTER_DATA_DIR);
  const cluster = await startCluster({
    binaries,
    postgres: postgresTarget(
      settings.POSTGRES_URL,
      settings.TEMPORAL_DB_NAME,
      settings.TEMPORAL_VISIBILITY_DB_NAME,
    ),
    dataDir: settings.CLUSTER_DATA_DIR,
    temporalPorts: { ...DEFAULT_TEMPORAL_PORTS, frontend: port },
    temporalMetricsPort: settings.TEMPORAL_METRICS_PORT,
    uiPort: config.TEMPORAL_UI_PORT,
    apiPort: config.PORT,
    redisUrl: settings.CLUSTER_REDIS_URL,
    workers: settings.CLUSTER_WORKERS,
    namespace: config.TEMPORAL_NAMESPACE,
    retentionHours: settings.TEMPORAL_NAMESPACE_RETENTION_HOURS,
    apiKeys,
    log: say,
  });
  const keysFile = join(settings.CLUSTER_DATA_DIR, 'api_keys.txt');
  // The key itself stays out of the terminal: the example reads it from its file.
  const key = config.API_KEYS ? '<a key from API_KEYS>' : `$(cut -d= -f1 ${keysFile})`;
  const rows: [string, string][] = [
    ['API', `${cluster.apiUrl}   (docs at ${cluster.apiUrl}/docs)`],
    ['API key', config.API_KEYS ? 'from API_KEYS' : `in ${keysFile}`],
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
