import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import type { TestProject } from 'vitest/node';
import { workflowBundleOptions } from '../../../src/temporal/workflow-bundle';
import { acquire } from './shared';
import './provided';

/**
 * The workflow bundle, built once for every test file that runs workflow code (replayed or on a
 * server). It starts nothing: the unit tier uses it too.
 */
export default async function setup(project: TestProject) {
  const log = (line: string) => process.stderr.write(`[test setup] ${line}\n`);
  const bundle = await acquire('workflow-bundle', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'decision-tests-'));
    try {
      const { code } = await bundleWorkflowCode({
        ...workflowBundleOptions(resolve(__dirname, '../../../src/workflows/index.ts')),
        logger: { trace() {}, debug() {}, info() {}, warn: log, error: log, log() {} },
      });
      const path = join(dir, 'workflow-bundle.js');
      writeFileSync(path, code);
      const stop = () => {
        rmSync(dir, { recursive: true, force: true });
        return Promise.resolve();
      };
      return { value: path, stop };
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  });
  project.provide('workflowBundlePath', bundle.value);
  return bundle.release;
}
