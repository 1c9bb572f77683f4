import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { serve, type ServerType } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type AppDeps } from '../../src/api/app';
import { DecisionService } from '../../src/api/decision-service';
import { parseApiKeys } from '../../src/api/middleware/auth';
import type { DecisionRecord } from '../../src/domain/decision';
import { createOfflineModel } from '../../src/llm/offline-model';
import { createHealthCheck } from '../../src/observability/health';
import { findChromium, launchChromium } from '../support/chromium';
import { services, testProjection, waitFor } from '../support/context';
import { startOfflineWorker } from '../support/offline-worker';
import { freePort } from '../support/ports';
import { startTestServer } from '../support/temporal-server';

Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });

const root = resolve(__dirname, '../..');
const OUTPUT = resolve(root, 'test-results');
export const SCREENSHOTS = {
  running: resolve(OUTPUT, 'decision-page-running.png'),
  completed: resolve(OUTPUT, 'decision-page-completed.png'),
  review: resolve(OUTPUT, 'decision-page-review.png'),
  list: resolve(OUTPUT, 'decision-page-list.png'),
  key: resolve(OUTPUT, 'decision-page-key.png'),
};

type View = Omit<DecisionRecord, 'seq'>;

const isObject = (value: unknown) =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
/** A failed expectation inside a wait ends the wait: what it checks must hold at every look. */
const notAnAssertion = (err: unknown) => !(err instanceof Error && err.name === 'AssertionError');

const WRITER_KEY = 'page-writer-key-0123456789abcdef';
const READER_KEY = 'page-reader-key-0123456789abcdef';

/** An app on a port of its own; `drop()` ends every open connection (the server keeps listening). */
async function serveApp(app: ReturnType<typeof createApp>) {
  const port = await freePort();
  const server = await new Promise<ServerType>((ready) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port }, () => ready(s));
  });
  const drop = () => {
    if ('closeAllConnections' in server) server.closeAllConnections();
  };
  return {
    url: `http://127.0.0.1:${port}`,
    drop,
    close: () =>
      new Promise<void>((done) => {
        server.close(() => done());
        drop();
      }),
  };
}

describe('the decision page', () => {
  let temporal: TestWorkflowEnvironment;
  let uiUrl: string;
  let native: NativeConnection;
  let connection: Connection;
  let client: Client;
  let store: ReturnType<typeof testProjection>;
  let worker: Awaited<ReturnType<typeof startOfflineWorker>>;
  let browser: Browser;
  let open: Awaited<ReturnType<typeof serveApp>>;
  let secured: Awaited<ReturnType<typeof serveApp>>;

  beforeAll(async () => {
    // Before anything starts: without Chromium the test fails at once, saying how to get it.
    findChromium();
    // A dev server of its own with the Web UI on, so that the page's link can be followed.
    const uiPort = await freePort();
    temporal = await startTestServer(services.temporalCliPath, { uiPort });
    uiUrl = `http://127.0.0.1:${uiPort}`;
    native = await NativeConnection.connect({ address: temporal.address });
    connection = await Connection.connect({ address: temporal.address });
    client = new Client({ connection });
    store = testProjection();
    // Each model call writes its answer in pieces over 600 ms: a phase is seen running.
    worker = await startOfflineWorker(native, store, createOfflineModel({ delayMs: 600 }));
    const base: AppDeps = {
      decisions: new DecisionService({
        client,
        projection: store.projection,
        taskQueue: worker.taskQueue,
        reviewTimeoutMs: 600_000,
      }),
      health: createHealthCheck({ connection, redis: store.redis }),
      projection: store.projection,
      redis: store.redis,
      keyPrefix: store.prefix,
      apiKeys: null,
      maxQueryChars: 4000,
      eventBlockMs: 500,
      temporalUi: { url: uiUrl, namespace: 'default' },
    };
    open = await serveApp(createApp(base));
    secured = await serveApp(
      createApp({
        ...base,
        apiKeys: parseApiKeys(
          `${WRITER_KEY}=decisions:read+decisions:write@writer,${READER_KEY}=decisions:read@reader`,
        ),
      }),
    );
    browser = await launchChromium();
    mkdirSync(OUTPUT, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await open?.close();
    await secured?.close();
    await worker?.stop();
    await store?.cleanup();
    await connection?.close();
    await native?.close();
    await temporal?.teardown();
  });

  const read = async (id: string, base = open.url, key?: string): Promise<View> => {
    const res = await fetch(`${base}/decisions/${id}`, {
      headers: key ? { Authorization: `Bearer ${key}` } : {},
    });
    expect(res.status).toBe(200);
    return (await res.json()) as View;
  };

  /** A new page that fails the test on any error its script throws. */
  const newPage = async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    return { page, errors };
  };

  const texts = (page: Page, selector: string) => page.locator(selector).allTextContents();

  it('follows a decision live from its start to its record, through a dropped stream', async () => {
    const created = await fetch(`${open.url}/decisions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ query: 'Should we move billing to a managed Postgres?' }),
    });
    expect(created.status).toBe(202);
    const id = ((await created.json()) as View).process_id;

    const { page, errors } = await newPage();
    const streams: (string | null)[] = [];
    page.on('request', (request) => {
      if (request.url().endsWith(`/decisions/${id}/events`)) {
        streams.push(request.headers()['last-event-id'] ?? null);
      }
    });
    await page.goto(`${open.url}/ui/decisions/${id}`);
    await expect(page.locator('h1#question').textContent()).resolves.toBe(
      'Should we move billing to a managed Postgres?',
    );

    // generateAlternatives, the seventh phase, starts seconds after the page has opened: its model
    // text is seen as soon as it is written, while the phase runs.
    const LIVE_PHASE = 'generateAlternatives';
    const phaseItem = page.locator(`li.phase[data-phase="${LIVE_PHASE}"]`);
    const seenAt = await waitFor(
      'generateAlternatives to show its model text',
      async () => {
        // The text first, then the status: a status not yet completed was not either before.
        const text = (await phaseItem.locator('.live-text').allTextContents()).join('');
        const shown = { text, status: await phaseItem.getAttribute('data-status') };
        expect(shown.status).not.toBe('completed');
        return shown.text.length > 0 ? Date.now() : undefined;
      },
      30_000,
      { retryable: notAnAssertion },
    );
    // The answer fills in as the model writes it: the page shows it parsed so far, as JSON.
    await waitFor(
      'generateAlternatives to show its answer parsed so far',
      async () => {
        const text = (await phaseItem.locator('.live-text').allTextContents()).join('');
        expect(await phaseItem.getAttribute('data-status')).not.toBe('completed');
        return text.startsWith('{\n  "') && isObject(JSON.parse(text)) ? true : undefined;
      },
      30_000,
      { retryable: notAnAssertion },
    );
    await page.screenshot({ path: SCREENSHOTS.running, fullPage: true });

    // The stream drops: the page opens it again from the last event it had.
    open.drop();
    await waitFor('the page to resume its event stream', () =>
      streams.slice(1).some((lastId) => lastId !== null) ? true : undefined,
    );

    await page.locator('section.result').waitFor({ state: 'visible', timeout: 60_000 });
    const record = await read(id);
    expect(record.status).toBe('completed');
    // The text was on the page while the phase ran: it completed after the text was seen.
    const phase = record.phases.find((p) => p.name === LIVE_PHASE)!;
    expect(Date.parse(phase.completed_at!)).toBeGreaterThan(seenAt);
    expect(streams[0]).toBeNull();

    // The record laid out as the API gives it.
    const result = record.result!.decision;
    await expect(page.locator('.result-title').textContent()).resolves.toBe(result.title);
    await expect(page.locator('.result-decision').textContent()).resolves.toBe(result.decision);
    await expect(texts(page, '.bar-name')).resolves.toEqual(
      result.alternatives_considered.map((a) =>
        a.name === record.result!.phases.updateDraft.revised_recommendation
          ? `${a.name} (chosen)`
          : a.name,
      ),
    );
    await expect(texts(page, '.bar-value')).resolves.toEqual(
      result.alternatives_considered.map((a) => a.weighted_score.toFixed(2)),
    );
    const bars = page.locator('.bar');
    for (const [i, alt] of result.alternatives_considered.entries()) {
      const fill = await bars.nth(i).locator('.bar-fill').boundingBox();
      const track = await bars.nth(i).locator('.bar-track').boundingBox();
      expect(fill!.width / track!.width).toBeCloseTo(alt.weighted_score, 2);
    }
    await expect(texts(page, 'table.risks tbody td:first-child')).resolves.toEqual(
      result.risks.map((r) => r.risk),
    );
    await expect(texts(page, 'table.risks tbody td:last-child')).resolves.toEqual(
      result.risks.map((r) => r.mitigation),
    );
    await expect(texts(page, '.next-steps li')).resolves.toEqual(result.next_steps);

    // Every phase on the timeline with its status, attempts and tokens from the record.
    for (const p of record.phases) {
      const item = page.locator(`li.phase[data-phase="${p.name}"]`);
      await expect(item.getAttribute('data-status')).resolves.toBe('completed');
      const meta = await item.locator('.phase-meta').textContent();
      expect(meta).toContain(`${p.attempts} attempt`);
      expect(meta).toContain(`${p.usage!.input_tokens.toLocaleString('en')} tokens in`);
      expect(meta).toContain(`${p.usage!.output_tokens.toLocaleString('en')} out`);
    }
    await expect(page.locator('.connection').textContent()).resolves.toBe(
      'The decision has ended.',
    );
    await expect(page.locator('.actions button').count()).resolves.toBe(0);
    await page.screenshot({ path: SCREENSHOTS.completed, fullPage: true });

    // The link to the Temporal Web UI opens this decision's workflow there.
    const link = page.locator('a.temporal-link');
    await expect(link.getAttribute('href')).resolves.toBe(
      `${uiUrl}/namespaces/default/workflows/${id}`,
    );
    await link.click();
    await page.getByText(id).first().waitFor({ state: 'visible', timeout: 30_000 });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('asks a question with review from the list, and sends the review from the page', async () => {
    const { page, errors } = await newPage();
    await page.goto(`${open.url}/ui/`);
    await page
      .getByRole('textbox', { name: 'Question', exact: true })
      .fill('Should we adopt a four-day work week?');
    await page.getByRole('checkbox', { name: 'Pause after the draft for my review' }).check();
    await page.screenshot({ path: SCREENSHOTS.list, fullPage: true });
    await page.getByRole('button', { name: 'Ask' }).click();
    await page.waitForURL(/\/ui\/decisions\/[^/]+$/);
    const id = decodeURIComponent(new URL(page.url()).pathname.split('/').pop()!);

    const feedback = page.getByRole('textbox', { name: 'Feedback for the revision' });
    await feedback.waitFor({ state: 'visible', timeout: 60_000 });
    await page.locator('.review .draft').waitFor({ state: 'visible' });
    await expect(read(id)).resolves.toMatchObject({
      status: 'awaiting_review',
      review: { status: 'awaiting' },
    });
    await page.screenshot({ path: SCREENSHOTS.review, fullPage: true });
    await feedback.fill('Weigh the cost of the pilot against hiring.');
    await page.getByRole('button', { name: 'Send feedback' }).click();
    await page.locator('.review-sent').waitFor({ state: 'visible' });

    // The workflow received the review and went on to complete.
    await client.workflow.getHandle(id).result();
    const record = await read(id);
    expect(record.status).toBe('completed');
    expect(record.review).toMatchObject({
      status: 'feedback',
      feedback: 'Weigh the cost of the pilot against hiring.',
    });
    await page.locator('section.result').waitFor({ state: 'visible', timeout: 30_000 });
    await expect(
      page.locator('li.phase[data-phase="updateDraft"]').getAttribute('data-status'),
    ).resolves.toBe('completed');

    // The list links to it.
    await page.goto(`${open.url}/ui/`);
    await page.locator(`tr[data-id="${id}"] a`).click();
    await page.waitForURL(`${open.url}/ui/decisions/${id}`);
    await page.locator('section.result').waitFor({ state: 'visible' });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('with auth on, asks for a key and keeps it for the tab; a key cancels what it may, and is told what it may not read', async () => {
    const created = await fetch(`${secured.url}/decisions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${WRITER_KEY}` },
      // It waits for a review that never comes, until it is cancelled from the page.
      body: JSON.stringify({ query: 'Should the writer team own on-call?', review: true }),
    });
    expect(created.status).toBe(202);
    const id = ((await created.json()) as View).process_id;

    const { page, errors } = await newPage();
    await page.goto(`${secured.url}/ui/`);
    const key = page.getByRole('textbox', { name: 'API key', exact: true });
    await key.waitFor({ state: 'visible' });
    // The shell holds no data: nothing is listed before a key is given.
    await expect(page.locator('table.decisions').count()).resolves.toBe(0);

    await key.fill('not-a-key-of-this-api');
    await page.getByRole('button', { name: 'Use this key' }).click();
    await expect(page.locator('.problem .problem-title').textContent()).resolves.toBe(
      '401 Unauthorized',
    );
    await page.screenshot({ path: SCREENSHOTS.key, fullPage: true });

    await key.fill(WRITER_KEY);
    await page.getByRole('button', { name: 'Use this key' }).click();
    await page.locator(`tr[data-id="${id}"]`).waitFor({ state: 'visible' });
    await expect(page.locator('.key-status strong').textContent()).resolves.toBe('writer');

    // Kept for the tab: the next page asks for nothing. The key may write: it cancels.
    await page.locator(`tr[data-id="${id}"] a`).click();
    await page.locator('.review .draft').waitFor({ state: 'visible', timeout: 60_000 });
    await page.getByRole('button', { name: 'Cancel decision' }).click();
    await page.getByRole('button', { name: 'Yes, cancel it' }).click();
    await page.locator('section.failure h2', { hasText: 'The decision was cancelled' }).waitFor();
    const cancelled = await read(id, secured.url, WRITER_KEY);
    expect(cancelled.status).toBe('cancelled');
    await expect(client.workflow.getHandle(id).describe()).resolves.toMatchObject({
      status: { name: 'CANCELLED' },
    });
    await expect(page.locator('.actions button').count()).resolves.toBe(0);
    await page.goto(`${secured.url}/ui/`);

    // Another key: the writer's decision is not found for it, as the API says.
    await page.getByRole('button', { name: 'Forget key' }).click();
    await key.waitFor({ state: 'visible' });
    await key.fill(READER_KEY);
    await page.getByRole('button', { name: 'Use this key' }).click();
    await page.locator('.key-status strong', { hasText: 'reader' }).waitFor();
    await expect(page.locator('form.ask').count()).resolves.toBe(0);
    await page.goto(`${secured.url}/ui/decisions/${id}`);
    const problem = page.locator('.problem');
    await problem.waitFor({ state: 'visible' });
    const answer = await fetch(`${secured.url}/decisions/${id}`, {
      headers: { Authorization: `Bearer ${READER_KEY}` },
    });
    expect(answer.status).toBe(404);
    const expected = (await answer.json()) as { title: string; detail: string };
    await expect(problem.locator('.problem-title').textContent()).resolves.toBe(
      `404 ${expected.title}`,
    );
    await expect(problem.textContent()).resolves.toContain(expected.detail);
    expect(errors).toEqual([]);
    await page.close();
  });
});
