import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DeterminismViolationError } from '@temporalio/workflow';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { readHistoryFile, replayHistories } from '../../src/operations/replay';
import { services } from '../support/context';

Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });

const dir = resolve(__dirname, '../histories');
const histories = readdirSync(dir).filter((file) => file.endsWith('.json'));
/** Each saved history, read once, with the workflow id it ran under. */
const saved = new Map(histories.map((file) => [file, readHistoryFile(join(dir, file))]));
const load = (file: string) => saved.get(file)!;

describe('saved histories replay against the current workflow code', () => {
  it('has saved histories to replay: before and after the fan-out, a review, a fork, bounded inputs, sparse search attributes, webhook deliveries, a review paused on the code before the core was reshaped and finished on the reshaped one, and the delivery workflow delivering and giving up', () => {
    expect(histories).toEqual(
      expect.arrayContaining([
        'decision-completed-v1.json',
        'decision-completed-v2.json',
        'decision-reviewed-v3.json',
        'decision-forked-v3.json',
        'decision-completed-v4.json',
        'decision-completed-v5.json',
        'decision-webhooks-v6.json',
        'decision-reviewed-restarted-v7.json',
        'webhook-delivered-v1.json',
        'webhook-gone-v1.json',
      ]),
    );
  });

  it.each(histories)('%s replays without a determinism error', async (file) => {
    await Worker.runReplayHistory(
      { workflowBundle: { codePath: services.workflowBundlePath } },
      load(file).history,
      load(file).workflowId,
    );
  });

  it('fails when the patched() branch is removed too early: only the history from before the patch stops replaying', async () => {
    // The current workflow with its first patch's old branch taken out (every decision fans
    // retrieval out; the patch deprecated, as one does once no older decision runs), too early.
    // The patch is taken in the phase runner; the workflow is copied beside the changed runner,
    // and every other import points back at the real modules.
    const workflows = resolve(__dirname, '../../src/workflows');
    const copied = (file: string) =>
      readFileSync(join(workflows, file), 'utf8')
        .replace(
          /from '\.\.\/([^']+)'/g,
          (_m, path: string) => `from '${resolve(workflows, '..', path)}'`,
        )
        .replace(/from '\.\/([^']+)'/g, (m, path: string) =>
          path === 'phase-activities' ? m : `from '${resolve(workflows, path)}'`,
        );
    const text = copied('phase-activities.ts');
    const unpatched = text
      .replace('patched(RETRIEVAL_FAN_OUT)', '(deprecatePatch(RETRIEVAL_FAN_OUT), true)')
      .replace('  patched,\n', '  patched,\n  deprecatePatch,\n');
    expect(unpatched).not.toBe(text);
    expect(unpatched).not.toContain(' patched(RETRIEVAL_FAN_OUT)');
    expect(unpatched).toContain('  deprecatePatch,');
    // Inside the project (git ignores .data), where its imports of @temporalio/workflow resolve
    // and the bundler compiles TypeScript.
    const scratch = resolve(__dirname, '../../.data');
    mkdirSync(scratch, { recursive: true });
    const dir = mkdtempSync(join(scratch, 'test-unpatched-'));
    let bundle: Awaited<ReturnType<typeof bundleWorkflowCode>>;
    try {
      // Exported as src/workflows/index.ts exports them.
      writeFileSync(join(dir, 'phase-activities.ts'), unpatched);
      writeFileSync(
        join(dir, 'index.ts'),
        `${copied('decision-workflow.ts')}\nexport { webhookDeliveryWorkflow } from '${resolve(workflows, 'webhook-delivery')}';\n`,
      );
      bundle = await bundleWorkflowCode({
        workflowsPath: join(dir, 'index.ts'),
        logger: new DefaultLogger('ERROR'),
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    await expect(
      Worker.runReplayHistory(
        { workflowBundle: bundle },
        load('decision-completed-v1.json').history,
      ),
    ).rejects.toBeInstanceOf(DeterminismViolationError);
    // What `decisions replay` reports for such a build: the history from before the patch fails
    // with the determinism error; those from after it, which took the branch kept, replay.
    const outcomes = await replayHistories(histories.map(load), { workflowBundle: bundle });
    const failed = outcomes.filter((o) => !o.ok);
    expect(failed.map((o) => o.workflowId)).toEqual([
      load('decision-completed-v1.json').workflowId,
    ]);
    expect(failed[0]!.error).toMatch(/^DeterminismViolationError: /);
  });
});
