import { createServer } from 'node:http';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecisionRecord } from '../../src/domain/decision';
import { PHASE_NAMES } from '../../src/domain/phases';
import { freePort } from '../support/ports';
import { prebuiltBundle, startRole, stopRole } from '../support/processes';
import { services, testProjection, uniqueName, waitFor } from '../support/context';

const API_KEY = 'e2e-test-key-0123456789abcdef';
const auth = { Authorization: `Bearer ${API_KEY}` };

describe('end to end: the real API and worker processes', () => {
  let api: ReturnType<typeof startRole>;
  let worker: ReturnType<typeof startRole>;
  let baseUrl: string;
  let workerUrl: string;
  let collector: Awaited<ReturnType<typeof startSpanCollector>>;
  let bundlePath: string;
  let store: ReturnType<typeof testProjection>;
  let connection: Connection;

  /** The environment both roles run with, on a task queue of their own. */
  const rolesEnv = (port: number) => ({
    TEMPORAL_ADDRESS: services.temporalAddress,
    TEMPORAL_TASK_QUEUE: uniqueName('e2e'),
    REDIS_URL: services.redisUrl,
    REDIS_KEY_PREFIX: store.prefix,
    PORT: String(port),
    LOG_LEVEL: 'info',
    API_KEYS: `${API_KEY}=decisions:admin@e2e`,
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
  });

  /** A worker and an API process, started as `npm run worker` and `npm run api` do, and ready. */
  async function startRoles() {
    const port = await freePort();
    const workerPort = await freePort();
    const env = rolesEnv(port);
    const roles = {
      baseUrl: `http://127.0.0.1:${port}`,
      workerUrl: `http://127.0.0.1:${workerPort}`,
      worker: startRole('src/main/worker.ts', {
        ...env,
        WORKER_HTTP_PORT: String(workerPort),
        WORKER_SDK_METRICS_ADDRESS: `127.0.0.1:${await freePort()}`,
        // As in the worker image: a bundle made ahead of time, not bundling at start.
        WORKFLOW_BUNDLE_PATH: bundlePath,
      }),
      api: startRole('src/main/api.ts', env),
    };
    await waitFor(
      'the worker to poll',
      () => (roles.worker.output().includes('Worker polling') ? true : undefined),
      90_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nworker output:\n${roles.worker.output()}`);
    });
    await waitFor('the API to answer /health', async () => {
      const res = await fetch(`${roles.baseUrl}/health`);
      return res.ok ? true : undefined;
    }).catch((err: Error) => {
      throw new Error(`${err.message}\nAPI output:\n${roles.api.output()}`);
    });
    return roles;
  }

  beforeAll(async () => {
    store = testProjection();
    collector = await startSpanCollector();
    bundlePath = prebuiltBundle();
    connection = await Connection.connect({ address: services.temporalAddress });
    ({ api, worker, baseUrl, workerUrl } = await startRoles());
  }, 120_000);

  afterAll(async () => {
    await Promise.all([api && stopRole(api.child), worker && stopRole(worker.child)]);
    await store?.cleanup();
    await connection?.close();
    await collector?.close();
  });

  it('completes a decision asked over HTTP, with ten phases in the result and in Redis', async () => {
    const started = await fetch(`${baseUrl}/decisions/start`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...auth },
      body: JSON.stringify({ decision_query: 'Should we move billing to a managed Postgres?' }),
    });
    expect(started.status).toBe(200);
    const { process_id } = (await started.json()) as { process_id: string };

    const finished = await waitFor('the decision to complete', async () => {
      const res = await fetch(`${baseUrl}/decisions/status/${process_id}`, { headers: auth });
      const body = (await res.json()) as Omit<DecisionRecord, 'seq'>;
      if (body.status === 'failed')
        throw new Error(`decision failed: ${JSON.stringify(body.error)}`);
      return body.status === 'completed' ? body : undefined;
    });

    expect(finished.phases.map((p) => [p.name, p.status])).toEqual(
      PHASE_NAMES.map((name) => [name, 'completed']),
    );
    expect(Object.keys(finished.result!.phases)).toEqual(PHASE_NAMES);
    // The default offline model: question-specific output, retrieval from the sample knowledge base.
    expect(finished.result!.decision.title).toBe('Should we move billing to a managed Postgres?');
    const answers = finished.result!.phases.retrieveInformation.answers;
    expect(answers.length).toBeGreaterThan(1);
    expect(answers.some((a) => a.citations.some((c) => c.source.endsWith('.md')))).toBe(true);
    expect(finished.phases.every((p) => p.model === 'offline-heuristic-v1')).toBe(true);
    expect(finished.result!.usage.input_tokens).toBeGreaterThan(0);
    expect(finished.completed_at).not.toBeNull();

    const { seq: _seq, ...projected } = (await store.projection.get(process_id))!;
    expect(projected).toEqual(finished);

    const history = await new Client({ connection }).workflow.getHandle(process_id).fetchHistory();
    const scheduled = (history.events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
      .filter(Boolean);
    // One activity per phase, and one retrieval per information need.
    expect(scheduled).toEqual(
      PHASE_NAMES.flatMap((p) => (p === 'retrieveInformation' ? answers.map(() => p) : [p])),
    );
  });

  it('exposes metrics, readiness and JSON logs that carry the decision id on both roles', async () => {
    const apiMetrics = async () => (await fetch(`${baseUrl}/metrics`, { headers: auth })).text();
    // What the API counted before this test's request (other tests create decisions too).
    const created = (metrics: string) =>
      Number(
        /http_requests_total\{method="POST",route="\/decisions",status="200",role="api"\} (\d+)/.exec(
          metrics,
        )?.[1] ?? 0,
      );
    const createdBefore = created(await apiMetrics());
    const started = await fetch(`${baseUrl}/decisions?wait=60s`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...auth },
      body: JSON.stringify({ query: 'Should we measure everything?' }),
    });
    const { process_id } = (await started.json()) as { process_id: string };

    const workerMetrics = await (await fetch(`${workerUrl}/metrics`)).text();
    expect(workerMetrics).toMatch(/decisions_started_total\{role="worker"\} [1-9]/);
    expect(workerMetrics).toMatch(
      /decisions_finished_total\{status="completed",phase="",role="worker"\} [1-9]/,
    );
    expect(workerMetrics).toMatch(
      /decision_phase_duration_seconds_count\{[^}]*phase="identifyTrigger"\} [1-9]/,
    );
    expect(workerMetrics).toMatch(/^temporal_\w+/m); // the SDK's own metrics, served alongside
    expect((await fetch(`${baseUrl}/metrics`)).status).toBe(401);
    expect(created(await apiMetrics())).toBe(createdBefore + 1);

    for (const url of [`${workerUrl}/health`, `${workerUrl}/ready`, `${baseUrl}/ready`]) {
      expect((await fetch(url)).status, url).toBe(200);
    }
    const lines = worker
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const phaseLine = lines.find(
      (l) =>
        l.msg === 'Phase completed' && l.process_id === process_id && l.phase === 'identifyTrigger',
    );
    expect(phaseLine).toMatchObject({ run_id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    await fetch(`${baseUrl}/decisions/${process_id}`, { headers: auth });
    // The line is written after the response; wait for it to reach us.
    const apiLine = await waitFor('the API request log line', () =>
      api
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.msg === 'request' && l.process_id === process_id),
    );
    expect(apiLine).toMatchObject({ requestId: expect.any(String), status: 200 });
  });

  it('exports one trace per decision over OTLP: API request, workflow, activities', async () => {
    const res = await fetch(`${baseUrl}/decisions?wait=60s`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...auth },
      body: JSON.stringify({ query: 'Should we trace decisions?' }),
    });
    const { process_id } = (await res.json()) as { process_id: string };
    // This decision's trace: the one its workflow was started in (the span names its id).
    const trace = await waitFor('the decision trace', () => {
      const start = collector.spans.find(
        (s) => s.name === 'StartWorkflow:decisionWorkflow' && s.workflowId === process_id,
      );
      if (!start) return undefined;
      const same = collector.spans.filter((s) => s.traceId === start.traceId);
      // The API and the worker export their spans in batches of their own, at their own times.
      const has = (name: string) => same.some((s) => s.name === name);
      return has('RunActivity:compileResult') && has('POST /decisions') ? same : undefined;
    });
    const names = trace.map((s) => s.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'POST /decisions',
        'StartWorkflow:decisionWorkflow',
        'RunWorkflow:decisionWorkflow',
        'StartActivity:identifyTrigger',
        'RunActivity:identifyTrigger',
      ]),
    );
    expect(new Set(trace.map((s) => s.service))).toEqual(
      new Set(['decision-api', 'decision-worker']),
    );
    // And no other decision's workflow in it.
    const ids = new Set(trace.map((s) => s.workflowId).filter(Boolean));
    expect(ids).toEqual(new Set([process_id]));
  });

  it('refuses to start the production API without API keys, saying how to fix it', async () => {
    const bare = startRole('src/main/api.ts', {
      TEMPORAL_ADDRESS: services.temporalAddress,
      REDIS_URL: services.redisUrl,
      PORT: String(await freePort()),
      API_KEYS: '',
      AUTH_DISABLED: '',
    });
    const code = await new Promise<number | null>((done) => bare.child.once('exit', done));
    expect(code).toBe(1);
    expect(bare.output()).toContain('API_KEYS is not set');
    expect(bare.output()).toContain('AUTH_DISABLED=true');
  });

  it('refuses unnamed keys without API_KEY_SECRET: their ids, which own decisions, would move', async () => {
    const unnamed = startRole('src/main/api.ts', {
      TEMPORAL_ADDRESS: services.temporalAddress,
      REDIS_URL: services.redisUrl,
      PORT: String(await freePort()),
      API_KEYS: `${API_KEY}=decisions:admin`,
      API_KEY_SECRET: '',
    });
    const code = await new Promise<number | null>((done) => unnamed.child.once('exit', done));
    expect(code).toBe(1);
    expect(unnamed.output()).toContain(
      'name every key (<key>=<scopes>@<name>) or set API_KEY_SECRET',
    );
  });

  it('refuses keys shorter than 24 characters, saying so without printing them', async () => {
    const short = startRole('src/main/api.ts', {
      TEMPORAL_ADDRESS: services.temporalAddress,
      REDIS_URL: services.redisUrl,
      PORT: String(await freePort()),
      API_KEYS: `${API_KEY}=decisions:admin@e2e,Short-Secret-77=decisions:read@short`,
    });
    const code = await new Promise<number | null>((done) => short.child.once('exit', done));
    expect(code).toBe(1);
    expect(short.output()).toContain('API_KEYS entry 2: keys must have at least 24 characters');
    expect(short.output()).not.toMatch(/Shor|Secret-77/);
    expect(short.output()).not.toMatch(/\n\s+at /); // a configuration error, not a stack trace
  });

  it('shuts both roles down cleanly on SIGTERM', async () => {
    // Roles of its own: the other tests' stay up, whatever order the tests run in.
    const roles = await startRoles();
    expect(await stopRole(roles.worker.child)).toBe(0);
    expect(await stopRole(roles.api.child)).toBe(0);
  }, 120_000);
});

interface CollectedSpan {
  traceId: string;
  name: string;
  service: string;
  /** The Temporal interceptors' `temporalWorkflowId` attribute, where the span has one. */
  workflowId: string | null;
}

/** A local OTLP/HTTP receiver that keeps the spans it is sent (JSON encoding). */
async function startSpanCollector() {
  const spans: CollectedSpan[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const payload = JSON.parse(body) as {
        resourceSpans?: {
          resource?: { attributes?: { key: string; value: { stringValue?: string } }[] };
          scopeSpans?: {
            spans?: {
              traceId: string;
              name: string;
              attributes?: { key: string; value: { stringValue?: string } }[];
            }[];
          }[];
        }[];
      };
      for (const rs of payload.resourceSpans ?? []) {
        const service =
          rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
        for (const ss of rs.scopeSpans ?? []) {
          for (const span of ss.spans ?? []) {
            const workflowId =
              span.attributes?.find((a) => a.key === 'temporalWorkflowId')?.value.stringValue ??
              null;
            spans.push({ traceId: span.traceId, name: span.name, service, workflowId });
          }
        }
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`,
    spans,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
