import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { TestProject } from 'vitest/node';
import { ensureLocalRedis, redisAnswers } from '../../../tools/redis-dev';
import { findOrBuildTemporalCli } from '../../../tools/temporal/cli';
import { freePort } from '../ports';
import { startTestServer } from '../temporal-server';
import { acquire } from './shared';
import './provided';

const log = (line: string) => process.stderr.write(`[test setup] ${line}\n`);

/** REDIS_URL if it answers, else a redis-server of its own on a free port. */
async function startRedis() {
  const given = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  if (await redisAnswers(given)) {
    log(`Redis at ${given}`);
    return { value: given, stop: () => Promise.resolve() };
  }
  const url = `redis://127.0.0.1:${await freePort()}`;
  log(`no Redis at ${given}; starting one at ${url}`);
  const redis = await ensureLocalRedis(url, null);
  return { value: url, stop: () => redis.stop() };
}

/** A Temporal dev server of its own (test/support/temporal-server.ts). */
async function startTemporal() {
  const cliPath = await findOrBuildTemporalCli({ log });
  let env: TestWorkflowEnvironment;
  try {
    env = await startTestServer(cliPath);
  } catch (err) {
    throw new Error(
      `The tests need a Temporal dev server and could not start one: ${String(err)}`,
      { cause: err },
    );
  }
  log(`Temporal dev server at ${env.address} (${cliPath})`);
  return {
    value: { address: env.address, cliPath },
    stop: () => env.teardown(),
  };
}

/**
 * The servers the integration and system tiers need, and fails loudly when it cannot start them:
 * Redis (REDIS_URL, or one of its own) and a Temporal dev server of its own. Tests use key
 * prefixes and task queues of their own on them.
 */
export default async function setup(project: TestProject) {
  const releases: (() => Promise<void>)[] = [];
  const teardown = async () => {
    for (const release of releases.reverse()) await release();
  };
  try {
    const redis = await acquire('redis', startRedis);
    releases.push(redis.release);
    const temporal = await acquire('temporal', startTemporal);
    releases.push(temporal.release);
    project.provide('temporalAddress', temporal.value.address);
    project.provide('temporalCliPath', temporal.value.cliPath);
    project.provide('redisUrl', redis.value);
  } catch (err) {
    await teardown();
    throw err;
  }
  return teardown;
}
