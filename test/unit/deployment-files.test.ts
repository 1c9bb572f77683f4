import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ConfigSchema } from '../../src/config';

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
  deploy?: { replicas?: number };
  volumes?: string[];
}
const compose = parse(read('docker-compose.yml')) as { services: Record<string, Service> };
const services = compose.services;

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
      ['api', 'postgres', 'redis', 'temporal', 'temporal-setup', 'temporal-ui', 'worker'].sort(),
    );
    expect(services.temporal!.environment).toMatchObject({
      DB: 'postgres12',
      POSTGRES_SEEDS: 'postgres',
    });
    expect(services.worker!.deploy?.replicas).toBe(2);
    expect(services.redis!.command).toEqual(['redis-server', '--appendonly', 'yes']);
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
          const target = services[dep]!;
          const hasCheck = Boolean(target.healthcheck) || Boolean(target.build);
          expect(hasCheck, `${dep} has a health check`).toBe(true);
        }
      }
    }
    expect(services.api!.depends_on).toHaveProperty('temporal-setup');
    expect(services.worker!.depends_on).toHaveProperty('temporal-setup');
  });

  it('sets only environment variables the configuration schema knows', () => {
    const known = new Set(Object.keys(ConfigSchema.shape));
    for (const name of ['api', 'worker']) {
      for (const key of Object.keys(services[name]!.environment ?? {})) {
        expect(known.has(key), `${name}: ${key}`).toBe(true);
      }
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

  it('copies only files that exist', () => {
    for (const line of read(file).split('\n')) {
      const m = /^COPY (?!--from)(.+) \S+$/.exec(line.trim());
      if (!m) continue;
      for (const source of m[1]!.split(/\s+/))
        expect(existsSync(resolve(root, source)), source).toBe(true);
    }
  });
});

it('the worker image starts from a workflow bundle made at build time', () => {
  const text = read('Dockerfile.worker');
  expect(text).toContain('node dist/cli/bundle-workflows.js /app/workflow-bundle.js');
  expect(text).toMatch(/WORKFLOW_BUNDLE_PATH=\/app\/workflow-bundle\.js/);
});
