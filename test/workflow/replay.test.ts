import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { DeterminismViolationError } from '@temporalio/workflow';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { replayHistories, workflowIdOf } from '../../src/operations/replay';
import { services } from '../support/context';

Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });

const dir = resolve(__dirname, '../histories');
const histories = readdirSync(dir).filter((file) => file.endsWith('.json'));
const load = (file: string) => historyFromJSON(JSON.parse(readFileSync(join(dir, file), 'utf8')));

describe('saved histories replay against the current workflow code', () => {
  it('has saved histories to replay: before and after the fan-out, a review, a fork, bounded inputs, sparse search attributes, webhook deliveries, and the delivery workflow delivering and giving up', () => {
    expect(histories).toEqual(
      expect.arrayContaining([
        'decision-completed-v1.json',
        'decision-completed-v2.json',
        'decision-reviewed-v3.json',
        'decision-forked-v3.json',
        'decision-completed-v4.json',
        'decision-completed-v5.json',
        'decision-webhooks-v6.json',
        'webhook-delivered-v1.json',
        'webhook-gone-v1.json',
      ]),
    );
  });

  it.each(histories)('%s replays without a determinism error', async (file) => {
    await Worker.runReplayHistory(
      { workflowBundle: { codePath: services.workflowBundlePath } },
      load(file),
      workflowIdOf(load(file), file),
    );
  });

  it('fails when the workflow changes its command sequence', async () => {
    const bundle = await bundleWorkflowCode({
      workflowsPath: resolve(__dirname, 'fixtures/reordered-workflow.ts'),
      logger: new DefaultLogger('ERROR'),
    });
    await expect(
      Worker.runReplayHistory({ workflowBundle: bundle }, load('decision-completed-v2.json')),
    ).rejects.toBeInstanceOf(DeterminismViolationError);
    // What `decisions replay` reports for such a build: not ok, with the determinism error.
    const outcomes = await replayHistories(
      histories.map((file) => ({ workflowId: file, history: load(file) })),
      { workflowBundle: bundle },
    );
    expect(outcomes.every((o) => !o.ok)).toBe(true);
    expect(outcomes[0]!.error).toMatch(/^DeterminismViolationError: /);
  });
});
