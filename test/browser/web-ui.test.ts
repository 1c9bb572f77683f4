import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DECISION_WORKFLOW_TYPE } from '../../src/domain/workflow-api';
import type { decisionWorkflow } from '../../src/workflows';
import { findChromium, launchChromium } from '../support/chromium';
import { services, testProjection, uniqueName } from '../support/context';
import { scriptedOfflineModel, startOfflineWorker } from '../support/offline-worker';
import { freePort } from '../support/ports';
import { startTestServer } from '../support/temporal-server';

Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });

const root = resolve(__dirname, '../..');
export const SCREENSHOT = resolve(root, 'test-results/web-ui-failed-decisions.png');

describe('the Temporal Web UI finds failed decisions by one filter', () => {
  let server: TestWorkflowEnvironment;
  let uiUrl: string;
  let browser: Browser;
  let store: ReturnType<typeof testProjection>;

  beforeAll(async () => {
    // Before anything starts: without Chromium the test fails at once, saying how to get it.
    findChromium();
    // A dev server of its own, with the Web UI on (the suite's shared one is headless).
    const uiPort = await freePort();
    server = await startTestServer(services.temporalCliPath, { uiPort });
    uiUrl = `http://127.0.0.1:${uiPort}`;
    store = testProjection();
    browser = await launchChromium();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await store?.cleanup();
    await server?.teardown();
  });

  it('shows the decision that failed in generateAlternatives under DecisionStatus="failed"', async () => {
    const native = await NativeConnection.connect({ address: server.address });
    const connection = await Connection.connect({ address: server.address });
    const client = new Client({ connection });
    const scripted = scriptedOfflineModel();
    scripted.failIn('generateAlternatives');
    const worker = await startOfflineWorker(native, store, scripted.model);
    const failedId = `decision-${uniqueName('failed')}`;
    const handle = await client.workflow.start<typeof decisionWorkflow>(DECISION_WORKFLOW_TYPE, {
      taskQueue: worker.taskQueue,
      workflowId: failedId,
      args: [{ query: 'Should we move billing to a managed Postgres?' }],
      memo: { query: 'Should we move billing to a managed Postgres?' },
    });
    await handle.result().catch(() => undefined);
    const runId = handle.firstExecutionRunId;
    await worker.stop();
    await connection.close();
    await native.close();

    const page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
    const query = encodeURIComponent('DecisionStatus="failed"');
    await page.goto(`${uiUrl}/namespaces/default/workflows?query=${query}`, {
      waitUntil: 'networkidle',
    });
    // Visibility is eventually consistent: reload until the filtered list shows the decision.
    const row = page.getByText(failedId).first();
    for (let attempt = 1; ; attempt++) {
      const shown = await row.waitFor({ state: 'visible', timeout: 3000 }).then(
        () => true,
        () => false,
      );
      if (shown || attempt === 10) break;
      await page.reload({ waitUntil: 'networkidle' });
    }
    mkdirSync(resolve(root, 'test-results'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });
    await expect(row.isVisible()).resolves.toBe(true);

    // The decision's page shows the failure as the workflow wrote it: phase, cause.
    await page.goto(`${uiUrl}/namespaces/default/workflows/${failedId}/${runId}/history`, {
      waitUntil: 'networkidle',
    });
    const failure = page
      .getByText('Phase generateAlternatives failed: the model provider rejected the API key')
      .first();
    await failure.waitFor({ state: 'visible', timeout: 15_000 });
    await page.screenshot({ path: SCREENSHOT.replace('.png', '-detail.png'), fullPage: true });
  });
});
