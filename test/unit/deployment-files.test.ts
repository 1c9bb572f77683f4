import { SEARCH_ATTRIBUTES } from '../../src/domain/workflow-api';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  ApiConfigSchema,
  loadApiConfig,
  loadWorkerConfig,
  WorkerConfigSchema,
} from '../../src/config';
import { WORKER_NODE_FLAGS, WORKER_PROCESS_ENV } from '../../src/main/worker-memory';
import { TEMPORAL_SERVER_VERSION, TEMPORAL_UI_SERVER_VERSION } from '../../tools/cluster/binaries';
import { devServerSettingsFlags } from '../../tools/temporal/dev-server';
import {
  DEFAULT_TEMPORAL_PORTS,
  postgresEnvironment,
  postgresTarget,
  temporalServerEnvironment,
} from '../../tools/cluster/topology';

// No Docker engine runs on the project's machines, so the deployment files are checked statically.

const root = resolve(__dirname, '../..');
const read = (file: string) => readFileSync(resolve(root, file), 'utf8');

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  environment?: Record<string, string | number>;
  command?: string[];
  entrypoint?: string[];
  deploy?: { replicas?: number };
  volumes?: string[];
  ports?: string[];
  secrets?: string[];
}
// merge: compose reads YAML merge keys (`<<: *anchor`), which the services use.
const compose = parse(read('docker-compose.yml'), { merge: true }) as {
  services: Record<string, Service>;
  secrets?: Record<string, { file?: string }>;
};
const services = compose.services;

/**
 * Compose's variable substitution, for the forms the file uses: `$$`, `${VAR}`,
 * `${VAR:-default}` and `${VAR:?error}` (which stops compose when VAR is unset or empty).
 */
function interpolate(value: string | number, env: Record<string, string> = {}): string {
  return String(value).replace(
    /\$\$|\$\{(\w+)(?::([-?])([^}]*))?\}/g,
    (match, name: string | undefined, op: string | undefined, arg: string | undefined) => {
      if (match === '$$') return '$';
      const set = env[name!];
      if (set) return set;
      if (op === '?') throw new Error(`compose refuses to start: ${name}: ${arg}`);
      return op === '-' ? arg! : '';
    },
  );
}

/** The host address a short-syntax port mapping publishes on; '' means every interface. */
function hostAddress(mapping: string): string {
  const parts = mapping.split(':');
  return parts.length === 3 ? parts[0]! : '';
}

/** The instructions of a Dockerfile's last stage, continuation lines joined. */
function finalStage(file: string): string[] {
  const lines = read(file)
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const from = lines.map((l, i) => (l.startsWith('FROM ') ? i : -1)).filter((i) => i >= 0);
  return lines.slice(from.at(-1));
}

describe('docker-compose.yml', () => {
  it('runs Postgres, Temporal on it, the Web UI, Redis, the API and two workers', () => {
    expect(Object.keys(services).sort()).toEqual(
      [
        'api',
        'postgres',
        'redis',
        'temporal',
        'temporal-schema',
        'temporal-setup',
        'temporal-ui',
        'worker',
      ].sort(),
    );
    expect(services.temporal!.image).toBe('temporalio/server:1.29.1');
    expect(services.temporal!.environment).toMatchObject({ POSTGRES_SEEDS: 'postgres' });
    expect(services.worker!.deploy?.replicas).toBe(2);
    expect(services.redis!.command?.slice(0, 3)).toEqual(['redis-server', '--appendonly', 'yes']);
  });

  it('pins every image to a version', () => {
    for (const [name, s] of Object.entries(services)) {
      if (s.image) expect(s.image, name).toMatch(/^[\w./-]+:[\w.-]+$/);
      if (s.image) expect(s.image, name).not.toMatch(/:latest$/);
    }
  });

  it('gates start-up on health: every dependency is healthy or its setup has completed', () => {
    for (const s of Object.values(services)) {
      for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
        expect(['service_healthy', 'service_completed_successfully']).toContain(condition);
        if (condition === 'service_healthy') {
          // Its own check: in the compose file, or a HEALTHCHECK in its own image's last stage.
          const target = services[dep]!;
          const hasCheck =
            Boolean(target.healthcheck?.test.length) ||
            (target.build !== undefined &&
              finalStage(target.build.dockerfile).some((l) => l.startsWith('HEALTHCHECK ')));
          expect(hasCheck, `${dep} has a health check`).toBe(true);
        }
      }
    }
    expect(services.api!.depends_on).toHaveProperty('temporal-setup');
    expect(services.worker!.depends_on).toHaveProperty('temporal-setup');
  });

  it("sets only environment variables its role's settings know (NAME_FILE: ones it reads from a file)", () => {
    const roles = {
      api: { schema: ApiConfigSchema, loadConfig: loadApiConfig },
      worker: { schema: WorkerConfigSchema, loadConfig: loadWorkerConfig },
    };
    const dir = mkdtempSync(join(tmpdir(), 'compose-secret-'));
    try {
      for (const [name, { schema, loadConfig }] of Object.entries(roles)) {
        const known = new Set(Object.keys(schema.shape));
        for (const key of Object.keys(services[name]!.environment ?? {})) {
          const setting = key.replace(/_FILE$/, '');
          expect(known.has(setting), `${name}: ${key}`).toBe(true);
          if (setting === key) continue;
          const file = join(dir, setting);
          const value =
            setting === 'WEBHOOK_SECRET'
              ? 'whsec_ZnJvbS1hLWZpbGUtMDEyMzQ1Njc='
              : 'from-a-file-0123=decisions:read';
          writeFileSync(file, `${value}\n`);
          const config = loadConfig({ [key]: file }) as Record<string, unknown>;
          expect(config[setting], `${name}: ${key} is read`).toBe(value);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('mounts files that exist', () => {
    for (const s of Object.values(services)) {
      for (const volume of s.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('./')) expect(existsSync(resolve(root, source)), source).toBe(true);
      }
    }
  });
});

describe('docker-compose.yml: what is exposed and what is secret', () => {
  it('publishes the Web UI on 127.0.0.1 only, with write actions off unless asked for', () => {
    const ui = services['temporal-ui']!;
    expect(ui.ports).toEqual(['127.0.0.1:8233:8080']);
    const disable = ui.environment!.TEMPORAL_DISABLE_WRITE_ACTIONS!;
    expect(interpolate(disable)).toBe('true');
    expect(interpolate(disable, { TEMPORAL_UI_DISABLE_WRITE_ACTIONS: '' })).toBe('true');
    expect(interpolate(disable, { TEMPORAL_UI_DISABLE_WRITE_ACTIONS: 'false' })).toBe('false');
  });

  it('publishes no admin surface beyond this host: only the API listens on every interface', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const mapping of s.ports ?? []) {
        if (name === 'api') continue;
        expect(hostAddress(mapping), `${name}: ${mapping}`).toBe('127.0.0.1');
      }
    }
    for (const name of ['temporal', 'postgres', 'redis']) {
      expect(services[name]!.ports ?? [], name).toEqual([]);
    }
    expect(services.api!.ports).toEqual(['8001:8001']);
  });

  it('gives API_KEYS, LLM_API_KEY and WEBHOOK_SECRET only as Docker secrets from git-ignored files', () => {
    expect(compose.secrets).toEqual({
      api_keys: { file: './secrets/api_keys.txt' },
      llm_api_key: { file: './secrets/llm_api_key.txt' },
      webhook_secret: { file: './secrets/webhook_secret.txt' },
    });
    expect(services.api!.secrets).toEqual(['api_keys', 'webhook_secret']);
    expect(services.api!.environment).toMatchObject({
      API_KEYS_FILE: '/run/secrets/api_keys',
      WEBHOOK_SECRET_FILE: '/run/secrets/webhook_secret',
    });
    expect(services.worker!.secrets).toEqual(['llm_api_key', 'webhook_secret']);
    expect(services.worker!.environment).toMatchObject({
      LLM_API_KEY_FILE: '/run/secrets/llm_api_key',
      WEBHOOK_SECRET_FILE: '/run/secrets/webhook_secret',
    });
    for (const [name, s] of Object.entries(services)) {
      const env = Object.keys(s.environment ?? {});
      expect(env, name).not.toContain('API_KEYS');
      expect(env, name).not.toContain('LLM_API_KEY');
      expect(env, name).not.toContain('WEBHOOK_SECRET');
    }
    expect(read('.gitignore').split('\n')).toContain('secrets/*.txt');
    expect(existsSync(resolve(root, 'secrets/README.md'))).toBe(true);
  });

  it('runs Redis with a required password and no eviction, and every client authenticates', () => {
    const redis = services.redis!;
    const env = { REDIS_PASSWORD: 's3cret' };
    const command = redis.command!.map((part) => interpolate(part, env));
    expect(command.join(' ')).toContain('--requirepass s3cret');
    expect(command.join(' ')).toContain('--maxmemory-policy noeviction');
    // Without the variable compose stops rather than start an open Redis.
    expect(() => redis.command!.map((part) => interpolate(part))).toThrow(/REDIS_PASSWORD/);
    expect(interpolate(redis.environment!.REDIS_PASSWORD!, env)).toBe('s3cret');
    expect(interpolate(redis.healthcheck!.test.join(' '), env)).toContain(
      'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli ping | grep -q PONG',
    );
    for (const name of ['api', 'worker']) {
      expect(interpolate(services[name]!.environment!.REDIS_URL!, env), name).toBe(
        'redis://:s3cret@redis:6379',
      );
    }
  });

  it('keeps closed decisions in Temporal at least as long as DECISION_TTL_SECONDS', () => {
    const ttlMs = loadWorkerConfig({}).DECISION_TTL_SECONDS * 1000;
    const hours = interpolate(
      services['temporal-setup']!.environment!.TEMPORAL_NAMESPACE_RETENTION_HOURS!,
    );
    expect(Number(hours) * 3_600_000).toBeGreaterThanOrEqual(ttlMs);
    // setup.sh applies it to a new namespace and raises it on one made earlier with less.
    const script = read('temporal/setup.sh');
    expect(script).toContain('retention="${TEMPORAL_NAMESPACE_RETENTION_HOURS:-168}"');
    expect(script).toMatch(/ns create --retention "\$\{retention\}h"/);
    expect(script).toMatch(/ns update --retention "\$\{retention\}h"/);
  });
});

describe('docker-compose.yml and npm run cluster: one source in temporal/', () => {
  /** The variables a templated config reads: every `env "NAME"` in it. */
  const templateVariables = (file: string) =>
    new Set([...read(file).matchAll(/env "(\w+)"/g)].map((m) => m[1]!));
  /** Where a service mounts a file of this repository: its path in the container. */
  const mountOf = (service: Service, source: string) =>
    (service.volumes ?? []).find((v) => v.split(':')[0] === source)?.split(':')[1];
  const target = postgresTarget(
    'postgres://temporal:pw@db:5432',
    'temporal',
    'temporal_visibility',
  );
  const clusterServerEnv = temporalServerEnvironment(target, DEFAULT_TEMPORAL_PORTS, 8000);

  it('runs the server image of the version the cluster builds, on temporal/server/production.yaml', () => {
    const temporal = services.temporal!;
    expect(temporal.image).toBe(`temporalio/server:${TEMPORAL_SERVER_VERSION.slice(1)}`);
    const env = temporal.environment!;
    // The image starts `temporal-server --env docker`: the file must be <root>/<config dir>/docker.yaml.
    expect(mountOf(temporal, './temporal/server/production.yaml')).toBe(
      `${env.TEMPORAL_ROOT}/${env.TEMPORAL_CONFIG_DIR}/docker.yaml`,
    );
    const dynamic = mountOf(temporal, './temporal/dynamicconfig')!;
    expect(env.DYNAMIC_CONFIG_FILE_PATH).toBe(`${dynamic}/production-sql.yaml`);
    expect(clusterServerEnv.DYNAMIC_CONFIG_FILE_PATH).toBe(
      resolve(root, 'temporal/dynamicconfig/production-sql.yaml'),
    );
    expect(existsSync(resolve(root, 'temporal/dynamicconfig/production-sql.yaml'))).toBe(true);
  });

  it("gives the dev server's flags and the cluster the same transfer-task load rate per shard, above Temporal's 20/s", () => {
    // At 20 loads a second, each workflow task of a busy shard waited ~40 ms (docs/BENCHMARKS.md).
    const key = 'history.transferProcessorMaxPollRPS';
    const cluster = parse(read('temporal/dynamicconfig/production-sql.yaml')) as Record<
      string,
      { value: unknown }[]
    >;
    const flags = devServerSettingsFlags();
    const flag = flags.find((f) => f.startsWith(`${key}=`));
    expect(flags[flags.indexOf(flag!) - 1]).toBe('--dynamic-config-value');
    const devValue = JSON.parse(flag!.slice(key.length + 1)) as unknown;
    expect(cluster[key]).toEqual([{ value: devValue }]);
    expect(devValue).toBeGreaterThan(20);
  });

  it('sets the same database variables in compose and in the cluster, each one the config reads', () => {
    const reads = templateVariables('temporal/server/production.yaml');
    const composeEnv = Object.keys(services.temporal!.environment!);
    for (const name of composeEnv.filter(
      (n) => !['TEMPORAL_ROOT', 'TEMPORAL_CONFIG_DIR'].includes(n),
    )) {
      expect(reads.has(name), `compose sets ${name}, which the config does not read`).toBe(true);
    }
    for (const name of Object.keys(clusterServerEnv)) {
      expect(reads.has(name), `the cluster sets ${name}, which the config does not read`).toBe(
        true,
      );
    }
    const database = Object.keys(postgresEnvironment(target));
    expect(database.every((n) => composeEnv.includes(n))).toBe(true);
    expect(Object.keys(services['temporal-schema']!.environment!).sort()).toEqual(database.sort());
  });

  it("sets up the schema with temporal/setup-schema.sh and Temporal's SQL tool before the server starts", () => {
    const schema = services['temporal-schema']!;
    expect(schema.image).toMatch(
      new RegExp(
        `^temporalio/admin-tools:${TEMPORAL_SERVER_VERSION.slice(1).replace(/\./g, '\\.')}-`,
      ),
    );
    const mounted = mountOf(schema, './temporal/setup-schema.sh');
    expect(schema.entrypoint).toEqual(['/bin/sh', mounted]);
    expect(services.temporal!.depends_on).toEqual({
      'temporal-schema': { condition: 'service_completed_successfully' },
    });
    const script = read('temporal/setup-schema.sh');
    for (const step of ['create-database', 'setup-schema -v 0.0', 'update-schema --schema-name']) {
      expect(script).toContain(step);
    }
  });

  it('runs the Web UI image of the version the cluster builds, on temporal/ui-server/production.yaml', () => {
    const ui = services['temporal-ui']!;
    expect(ui.image).toBe(`temporalio/ui:${TEMPORAL_UI_SERVER_VERSION.slice(1)}`);
    // The image starts `ui-server --env docker` in /home/ui-server.
    expect(mountOf(ui, './temporal/ui-server/production.yaml')).toBe(
      '/home/ui-server/config/docker.yaml',
    );
    const reads = templateVariables('temporal/ui-server/production.yaml');
    for (const name of Object.keys(ui.environment!)) {
      expect(reads.has(name), `compose sets ${name}, which the UI config does not read`).toBe(true);
    }
  });

  it("keeps the Web UI's own login and TLS settings in the UI server's config", () => {
    const reads = templateVariables('temporal/ui-server/production.yaml');
    for (const name of [
      'TEMPORAL_AUTH_ENABLED',
      'TEMPORAL_AUTH_PROVIDER_URL',
      'TEMPORAL_AUTH_CLIENT_ID',
      'TEMPORAL_AUTH_CLIENT_SECRET',
      'TEMPORAL_AUTH_CALLBACK_URL',
      'TEMPORAL_TLS_CA',
      'TEMPORAL_CODEC_ENDPOINT',
    ]) {
      expect(reads.has(name), name).toBe(true);
    }
  });
});

describe('temporal/setup.sh', () => {
  it('registers every search attribute the workflow and the API set', () => {
    const script = read('temporal/setup.sh');
    const names = /for name in ([\w ]+); do/.exec(script)?.[1]?.split(' ') ?? [];
    expect(names.sort()).toEqual(SEARCH_ATTRIBUTES.map((key) => key.name).sort());
  });
});

describe.each(['Dockerfile.api', 'Dockerfile.worker'])('%s', (file) => {
  const stage = finalStage(file);

  it('is multi-stage on Node 24 slim, installs production dependencies only, runs as non-root under an init', () => {
    expect(read(file).match(/^FROM node:24-slim/gm)?.length).toBeGreaterThanOrEqual(2);
    expect(stage).toContain('RUN npm ci --omit=dev && npm cache clean --force');
    const user = stage.find((l) => l.startsWith('USER '));
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^USER (root|0)\b/);
    expect(stage.some((l) => l.startsWith('ENTRYPOINT ["/usr/bin/tini"'))).toBe(true);
    expect(stage.some((l) => l.startsWith('HEALTHCHECK '))).toBe(true);
  });

  it("sets only environment variables its role's settings know", () => {
    const schema = file === 'Dockerfile.api' ? ApiConfigSchema : WorkerConfigSchema;
    const env = stage
      .filter((l) => l.startsWith('ENV '))
      .flatMap((l) => [...l.slice(4).matchAll(/(\w+)=/g)].map((m) => m[1]!));
    expect(env).toContain(file === 'Dockerfile.api' ? 'HOST' : 'WORKER_HTTP_HOST');
    const processEnv = ['NODE_ENV', ...Object.keys(WORKER_PROCESS_ENV)];
    for (const name of env.filter((n) => !processEnv.includes(n))) {
      expect(Object.keys(schema.shape), `${file}: ${name}`).toContain(name);
    }
  });

  it('copies only files that exist', () => {
    for (const line of read(file).split('\n')) {
      const m = /^COPY (?!--from)(.+) \S+$/.exec(line.trim());
      if (!m) continue;
      for (const source of m[1]!.split(/\s+/))
        expect(existsSync(resolve(root, source)), source).toBe(true);
    }
  });
});

it("the worker image starts node with the worker's V8 flags and process environment", () => {
  const cmd = finalStage('Dockerfile.worker').find((l) => l.startsWith('CMD '));
  expect(JSON.parse(cmd!.slice(4))).toEqual(['node', ...WORKER_NODE_FLAGS, 'dist/main/worker.js']);
  const env = finalStage('Dockerfile.worker')
    .filter((l) => l.startsWith('ENV '))
    .join(' ');
  for (const [name, value] of Object.entries(WORKER_PROCESS_ENV)) {
    expect(env).toContain(`${name}=${value}`);
  }
});

it('the worker image starts from a workflow bundle made at build time', () => {
  const text = read('Dockerfile.worker');
  expect(text).toContain('node dist/cli/bundle-workflows.js /app/workflow-bundle.js');
  expect(text).toMatch(/WORKFLOW_BUNDLE_PATH=\/app\/workflow-bundle\.js/);
});
