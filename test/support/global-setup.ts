import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import type { TestProject } from 'vitest/node';
import { ensureLocalRedis, redisAnswers } from '../../src/projection/redis-dev';
import { findOrBuildTemporalCli } from '../../src/temporal/cli';
import { startDevServer, type DevServer } from '../../src/temporal/dev-server';
import { freePort } from './ports';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    redisUrl: string;
    workflowBundlePath: string;
    temporalCliPath: string;
  }
}

/**
 * Starts what the suite needs and fails loudly when it cannot: a Temporal dev server of its own
 * (in memory, on a free port), Redis (REDIS_URL if it answers, else a redis-server of its own),
 * and the workflow bundle, built once for every test file.
 */
export default async function setup(project: TestProject) {
  const log = (line: string) => process.stderr.write(`[test setup] ${line}\n`);
  const tmp = mkdtempSync(join(tmpdir(), 'decision-tests-'));
  const stops: (() => Promise<void>)[] = [];

  const teardown = async () => {
    for (const stop of stops.reverse()) await stop();
    rmSync(tmp, { recursive: true, force: true });
  };
  try {
    let redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    if (!(await redisAnswers(redisUrl))) {
      redisUrl = `redis://127.0.0.1:${await freePort()}`;
      log(
        `no Redis at ${process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'}; starting one at ${redisUrl}`,
      );
      const redis = await ensureLocalRedis(redisUrl, null);
      stops.push(() => redis.stop());
    }

    const cliPath = await findOrBuildTemporalCli({ log });
    let server: DevServer;
    try {
      server = await startDevServer({
        cliPath,
        address: `127.0.0.1:${await freePort()}`,
        namespace: 'default',
        uiPort: null,
        dbFile: null,
      });
    } catch (err) {
      throw new Error(
        `The tests need a Temporal dev server and could not start one: ${String(err)}`,
        { cause: err },
      );
    }
    stops.push(() => server.stop());
    log(`Temporal dev server at ${server.address}, Redis at ${redisUrl}`);

    const { code } = await bundleWorkflowCode({
      workflowsPath: resolve(__dirname, '../../src/workflows/index.ts'),
      logger: { trace() {}, debug() {}, info() {}, warn: log, error: log, log() {} },
    });
    const workflowBundlePath = join(tmp, 'workflow-bundle.js');
    writeFileSync(workflowBundlePath, code);

    project.provide('temporalAddress', server.address);
    project.provide('redisUrl', redisUrl);
    project.provide('workflowBundlePath', workflowBundlePath);
    project.provide('temporalCliPath', cliPath);
  } catch (err) {
    await teardown();
    throw err;
  }
  return teardown;
}
