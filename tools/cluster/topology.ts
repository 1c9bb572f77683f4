import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, type WriteStream } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { startChildService, stopChild, type ChildService } from '../process/child-service';
import { freePort, freePortBelow32768 } from '../process/ports';
import { ensureLocalRedis, type LocalRedis } from '../redis-dev';
import { temporalAnswers } from '../temporal/dev-server';
import type { ClusterBinaries } from './binaries';

/** The repository: this file is tools/cluster/topology.ts, which tsx runs from source. */
const root = resolve(__dirname, '../..');
/** The one source of the Temporal server's and Web UI's config and setup, shared with compose. */
const TEMPORAL_DIR = join(root, 'temporal');

export interface PostgresTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  /** History (the default store). */
  database: string;
  /** SQL visibility: search attributes and list queries. */
  visibilityDatabase: string;
}

/** A PostgreSQL server from a postgres:// URL (user and password in it, or `postgres`/none). */
export function postgresTarget(
  url: string,
  database: string,
  visibilityDatabase: string,
): PostgresTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`POSTGRES_URL is not a URL: it must look like postgres://user@host:5432`);
  }
  if (!['postgres:', 'postgresql:'].includes(parsed.protocol) || !parsed.hostname) {
    throw new Error('POSTGRES_URL must be postgres://[user[:password]@]host[:port]');
  }
  return {
    host: parsed.hostname.replace(/^\[|\]$/g, ''),
    port: Number(parsed.port || 5432),
    user: decodeURIComponent(parsed.username) || 'postgres',
    password: decodeURIComponent(parsed.password),
    database,
    visibilityDatabase,
  };
}

/** The Temporal server's ports: each service's gRPC port and its membership (ringpop) port. */
export interface TemporalPorts {
  frontend: number;
  frontendHttp: number;
  frontendMembership: number;
  history: number;
  historyMembership: number;
  matching: number;
  matchingMembership: number;
  worker: number;
  workerMembership: number;
}

/** Temporal's own defaults, as temporal/server/production.yaml has them. */
export const DEFAULT_TEMPORAL_PORTS: TemporalPorts = {
  frontend: 7233,
  frontendHttp: 7243,
  frontendMembership: 6933,
  history: 7234,
  historyMembership: 6934,
  matching: 7235,
  matchingMembership: 6935,
  worker: 7239,
  workerMembership: 6939,
};

/** Free ports for every Temporal service (below 32768: the server stores them as smallint). */
export async function freeTemporalPorts(): Promise<TemporalPorts> {
  const ports = {} as TemporalPorts;
  const taken = new Set<number>();
  for (const key of Object.keys(DEFAULT_TEMPORAL_PORTS) as (keyof TemporalPorts)[]) {
    let port = await freePortBelow32768();
    while (taken.has(port)) port = await freePortBelow32768();
    taken.add(port);
    ports[key] = port;
  }
  return ports;
}

export interface ClusterOptions {
  binaries: ClusterBinaries;
  postgres: PostgresTarget;
  /** Logs, Redis's append-only file, the workflow bundle. */
  dataDir: string;
  temporalPorts: TemporalPorts;
  /** The Temporal server's Prometheus endpoint; null for none. */
  temporalMetricsPort: number | null;
  uiPort: number;
  apiPort: number;
  /** A Redis to use, or one to start (with persistence, in dataDir/redis) when none answers. */
  redisUrl: string;
  workers: number;
  namespace: string;
  retentionHours: number;
  /** API_KEYS for the API: `<key>=<scopes>[@<name>],…`. */
  apiKeys: string;
  /** More settings for the workers and the API (model, limits, log level). */
  roleEnv?: NodeJS.ProcessEnv;
  log: (line: string) => void;
}

export interface ClusterRole extends ChildService {
  name: string;
  pid: number;
  /** The role's health and metrics server. */
  httpUrl: string;
}

const HOST = '127.0.0.1';

/** The variables temporal/setup-schema.sh reads, as the compose services set them. */
export function postgresEnvironment(postgres: PostgresTarget): Record<string, string> {
  return {
    POSTGRES_SEEDS: postgres.host,
    DB_PORT: String(postgres.port),
    POSTGRES_USER: postgres.user,
    POSTGRES_PWD: postgres.password,
    DBNAME: postgres.database,
    VISIBILITY_DBNAME: postgres.visibilityDatabase,
  };
}

/** The variables temporal/server/production.yaml reads, for a server on this host. */
export function temporalServerEnvironment(
  postgres: PostgresTarget,
  ports: TemporalPorts,
  metricsPort: number | null,
): Record<string, string> {
  return {
    ...postgresEnvironment(postgres),
    LOG_LEVEL: process.env.TEMPORAL_LOG_LEVEL ?? 'info',
    BIND_ON_IP: HOST,
    FRONTEND_GRPC_PORT: String(ports.frontend),
    FRONTEND_HTTP_PORT: String(ports.frontendHttp),
    FRONTEND_MEMBERSHIP_PORT: String(ports.frontendMembership),
    HISTORY_GRPC_PORT: String(ports.history),
    HISTORY_MEMBERSHIP_PORT: String(ports.historyMembership),
    MATCHING_GRPC_PORT: String(ports.matching),
    MATCHING_MEMBERSHIP_PORT: String(ports.matchingMembership),
    WORKER_GRPC_PORT: String(ports.worker),
    WORKER_MEMBERSHIP_PORT: String(ports.workerMembership),
    PROMETHEUS_ENDPOINT: metricsPort === null ? '' : `${HOST}:${metricsPort}`,
    DYNAMIC_CONFIG_FILE_PATH: join(TEMPORAL_DIR, 'dynamicconfig/production-sql.yaml'),
  };
}

/** Log files for child processes: dir/<name>.log, appended to. */
export function processLogs(dir: string) {
  mkdirSync(dir, { recursive: true });
  const files: WriteStream[] = [];
  return {
    to: (name: string): ((chunk: string) => void) => {
      const file = createWriteStream(join(dir, `${name}.log`), { flags: 'a' });
      files.push(file);
      return (chunk) => void file.write(chunk);
    },
    close: () => Promise.all(files.map((f) => new Promise((done) => f.end(done)))),
  };
}

/** Runs one of temporal/'s setup scripts with `sh`, as the compose services do. */
function runSetupScript(script: string, env: NodeJS.ProcessEnv, output: (chunk: string) => void) {
  return new Promise<void>((done, fail) => {
    let tail = '';
    const child = spawn('sh', [join(TEMPORAL_DIR, script)], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (chunk: Buffer) => {
      tail = (tail + chunk.toString()).slice(-6000);
      output(chunk.toString());
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), SETUP_SCRIPT_TIMEOUT_MS);
    child.once('error', fail);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return done();
      const why = signal
        ? `did not finish within ${SETUP_SCRIPT_TIMEOUT_MS / 1000} s`
        : `failed (exit ${code})`;
      fail(new Error(`temporal/${script} ${why}:\n${tail}`));
    });
  });
}

const SETUP_SCRIPT_TIMEOUT_MS = 5 * 60_000;

export interface TemporalOnPostgresOptions {
  binaries: ClusterBinaries;
  postgres: PostgresTarget;
  temporalPorts: TemporalPorts;
  temporalMetricsPort: number | null;
  namespace: string;
  retentionHours: number;
  /** Where each process's output goes, by name. */
  logTo: (name: string) => (chunk: string) => void;
  log: (line: string) => void;
}

/**
 * The Temporal part of the topology, as compose runs it: the schema (temporal/setup-schema.sh),
 * the server (temporal/server/production.yaml), then the namespace and search attributes
 * (temporal/setup.sh). The server can be stopped and started again on the same databases.
 */
export async function startTemporalOnPostgres(options: TemporalOnPostgresOptions) {
  const { binaries, postgres, log, logTo } = options;
  const address = `${HOST}:${options.temporalPorts.frontend}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...temporalServerEnvironment(postgres, options.temporalPorts, options.temporalMetricsPort),
  };
  let server: ChildService | null = null;
  const start = async () => {
    server = await startChildService({
      name: `temporal-server at ${address}`,
      command: binaries.server,
      args: [
        ...['--root', TEMPORAL_DIR, '--config', 'server', '--env', 'production'],
        // No authorizer: the frontend listens on this host only, as in compose's network.
        '--allow-no-auth',
        'start',
      ],
      env,
      answers: () => temporalAnswers(address, 1000),
      timeoutMs: 120_000,
      output: logTo('temporal-server'),
      detached: true,
    });
    const started = server;
    started.process.once('exit', (code, signal) => {
      // Not stopped on purpose: say so, since nothing else will.
      if (server === started)
        log(`temporal-server exited (${signal ?? `code ${code}`}); see its log`);
    });
  };
  /** SIGTERM as an operator stops it, or SIGKILL as a crash would. */
  const stop = async (signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM') => {
    const running = server;
    server = null;
    if (!running) return;
    if (signal === 'SIGTERM') return running.stop();
    const gone = new Promise((done) => running.process.once('exit', done));
    running.process.kill('SIGKILL');
    await gone;
  };

  log(
    `PostgreSQL at ${postgres.host}:${postgres.port}: setting up databases ${postgres.database} and ${postgres.visibilityDatabase} (temporal/setup-schema.sh)`,
  );
  const setupLog = logTo('setup');
  await runSetupScript(
    'setup-schema.sh',
    { ...postgresEnvironment(postgres), TEMPORAL_SQL_TOOL: binaries.sqlTool },
    setupLog,
  );
  log(`Starting the Temporal server at ${address} (temporal/server/production.yaml)`);
  await start();
  try {
    log(`Creating namespace ${options.namespace} and its search attributes (temporal/setup.sh)`);
    await runSetupScript(
      'setup.sh',
      {
        TEMPORAL_ADDRESS: address,
        TEMPORAL_NAMESPACE: options.namespace,
        TEMPORAL_NAMESPACE_RETENTION_HOURS: String(options.retentionHours),
        TEMPORAL_CLI: binaries.temporalCli,
      },
      setupLog,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    address,
    /** The server's process id while it runs, else null. */
    get pid(): number | null {
      return server?.process.pid ?? null;
    },
    start,
    stop,
  };
}

/** Drops the server's two databases (a test's or a bench's own), with Temporal's SQL tool. */
export function dropTemporalDatabases(binaries: ClusterBinaries, postgres: PostgresTarget): void {
  for (const database of [postgres.database, postgres.visibilityDatabase]) {
    const run = spawnSync(
      binaries.sqlTool,
      [
        ...['--plugin', 'postgres12', '--ep', postgres.host, '-p', String(postgres.port)],
        ...['-u', postgres.user, '--db', database, 'drop-database', '--defaultdb', 'postgres'],
        '--force',
      ],
      { encoding: 'utf8', env: { ...process.env, SQL_PASSWORD: postgres.password } },
    );
    if (run.status !== 0) throw new Error(`dropping database ${database} failed:\n${run.stderr}`);
  }
}

/**
 * The production topology on this machine, from the same files as docker-compose.yml: the schema
 * set up in PostgreSQL (temporal/setup-schema.sh), the Temporal server on it
 * (temporal/server/production.yaml), the namespace and search attributes (temporal/setup.sh), the
 * Web UI server (temporal/ui-server/production.yaml), Redis with an append-only file, and the
 * built worker and API processes. Each process logs to dataDir/logs/<name>.log.
 */
export async function startCluster(options: ClusterOptions) {
  const { binaries, log } = options;
  const dataDir = resolve(options.dataDir);
  // Built before anything starts: a compile error stops here, with nothing to stop.
  log('Building the worker and the API (npm run build) and the workflow bundle');
  const bundle = buildProduction(join(dataDir, 'workflow-bundle.js'));
  const logs = processLogs(join(dataDir, 'logs'));
  const logTo = logs.to;
  const stops: (() => Promise<void>)[] = [];
  let stopping = false;
  /** Says when a service ends that nobody stopped: nothing else would. */
  const watch = (name: string, service: ChildService) =>
    service.process.once('exit', (code, signal) => {
      if (!stopping) log(`${name} exited (${signal ?? `code ${code}`}); see its log`);
    });
  const stopAll = async () => {
    stopping = true;
    for (const stop of stops.splice(0).reverse()) {
      await stop().catch((err: unknown) => log(`while stopping: ${String(err)}`));
    }
    await logs.close();
  };
  let temporalAddress = '';

  const roles: ClusterRole[] = [];
  let workersStarted = 0;
  const startRole = async (name: string, entry: string, env: NodeJS.ProcessEnv) => {
    const httpPort = Number(env.PORT ?? env.WORKER_HTTP_PORT);
    const httpUrl = `http://${HOST}:${httpPort}`;
    const service = await startChildService({
      name,
      command: process.execPath,
      args: [entry],
      cwd: root,
      env: {
        ...process.env,
        NODE_ENV: 'production',
        HOST,
        TEMPORAL_ADDRESS: temporalAddress,
        TEMPORAL_NAMESPACE: options.namespace,
        REDIS_URL: redis!.url,
        // The cluster gives these; a file named in this environment must not override them.
        REDIS_URL_FILE: '',
        API_KEYS_FILE: '',
        ...options.roleEnv,
        ...env,
      },
      answers: () =>
        fetch(`${httpUrl}/ready`, { signal: AbortSignal.timeout(2000) }).then(
          (res) => res.ok,
          () => false,
        ),
      timeoutMs: 90_000,
      output: logTo(name),
      detached: true,
    });
    const role: ClusterRole = { ...service, name, pid: service.process.pid!, httpUrl };
    watch(name, service);
    roles.push(role);
    return role;
  };
  const startWorker = async (env: NodeJS.ProcessEnv = {}) =>
    startRole(`worker-${++workersStarted}`, 'dist/main/worker.js', {
      WORKFLOW_BUNDLE_PATH: bundle,
      // Its workers are replaced in place at every start, as npm start's are: one build id keeps
      // the decisions in flight served after a change (docs/OPERATIONS.md, in development).
      WORKER_BUILD_ID: process.env.WORKER_BUILD_ID || 'cluster',
      WORKER_HTTP_PORT: String(await freePort()),
      WORKER_SDK_METRICS_ADDRESS: `${HOST}:${await freePort()}`,
      ...env,
    });

  let redis: LocalRedis | null = null;
  try {
    // Started first and stopped last: the workers write to it until they have drained.
    redis = await ensureLocalRedis(options.redisUrl, join(dataDir, 'redis'), {
      detached: true,
    });
    stops.push(() => redis!.stop());
    log(
      redis.pid === null
        ? `Using the Redis already answering at ${redis.url}`
        : `Started redis-server at ${redis.url} with an append-only file in ${join(dataDir, 'redis')}`,
    );

    const temporal = await startTemporalOnPostgres({ ...options, logTo });
    stops.push(() => temporal.stop());
    temporalAddress = temporal.address;

    const uiUrl = `http://${HOST}:${options.uiPort}`;
    log(`Starting the Web UI server at ${uiUrl} (temporal/ui-server/production.yaml)`);
    const ui = await startChildService({
      name: `ui-server at ${uiUrl}`,
      command: binaries.uiServer,
      args: ['--root', TEMPORAL_DIR, '--config', 'ui-server', '--env', 'production', 'start'],
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: temporalAddress,
        TEMPORAL_UI_IP: HOST,
        TEMPORAL_UI_PORT: String(options.uiPort),
        TEMPORAL_DEFAULT_NAMESPACE: options.namespace,
        // Compose's switch, with the UI's own sense (see docker-compose.yml).
        TEMPORAL_DISABLE_WRITE_ACTIONS: process.env.TEMPORAL_UI_DISABLE_WRITE_ACTIONS || 'true',
      },
      answers: () =>
        fetch(uiUrl, { signal: AbortSignal.timeout(2000) }).then(
          (res) => res.ok,
          () => false,
        ),
      timeoutMs: 30_000,
      output: logTo('ui-server'),
      detached: true,
    });
    watch('ui-server', ui);
    stops.push(() => ui.stop());

    // Stopped in reverse: the API first (no new decisions), then the workers, which drain.
    const stopRoles = (which: (role: ClusterRole) => boolean) => async () => {
      await Promise.all(roles.filter(which).map((role) => stopChild(role.process, 45_000)));
    };
    stops.push(stopRoles((role) => role.name !== 'api'));
    for (let i = 0; i < options.workers; i++) await startWorker();
    stops.push(stopRoles((role) => role.name === 'api'));
    const api = await startRole('api', 'dist/main/api.js', {
      PORT: String(options.apiPort),
      API_KEYS: options.apiKeys,
    });
    log(`Started ${options.workers} workers and the API`);

    return {
      temporalAddress,
      uiUrl,
      apiUrl: api.httpUrl,
      redisUrl: redis.url,
      temporalMetricsUrl:
        options.temporalMetricsPort === null
          ? null
          : `http://${HOST}:${options.temporalMetricsPort}/metrics`,
      api,
      /** The workers running now. */
      get workers() {
        return roles.filter(
          (r) =>
            r.name.startsWith('worker-') &&
            r.process.exitCode === null &&
            r.process.signalCode === null,
        );
      },
      startWorker,
      temporal,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

export type Cluster = Awaited<ReturnType<typeof startCluster>>;

/**
 * Builds what the images run: `npm run build`, then the workflow bundle the worker image makes.
 * Returns the bundle's path.
 */
export function buildProduction(bundlePath: string): string {
  const build = spawnSync('npm', ['run', '--silent', 'build'], { cwd: root, encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`npm run build failed:\n${build.stdout}${build.stderr}`);
  mkdirSync(dirname(bundlePath), { recursive: true });
  const bundled = spawnSync(process.execPath, ['dist/cli/bundle-workflows.js', bundlePath], {
    cwd: root,
    encoding: 'utf8',
  });
  if (bundled.status !== 0 || !existsSync(bundlePath)) {
    throw new Error(`bundling the workflows failed:\n${bundled.stderr}`);
  }
  return bundlePath;
}
