import { createHash } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type AppDeps } from '../../src/api/app';
import { principalSecret } from '../../src/webhooks/secret';
import { DecisionService, type DecisionServiceOptions } from '../../src/api/decision-service';
import { createHealthCheck, type HealthCheck } from '../../src/observability/health';
import { parseApiKeys } from '../../src/api/middleware/auth';
import { createRegistry } from '../../src/observability/metrics';
import {
  DECISION_EVENT_TYPES,
  initialRecord,
  type DecisionStatus,
} from '../../src/domain/decision';
import { PHASE_NAMES } from '../../src/domain/phases';
import { services, testProjection, uniqueName, waitFor } from '../support/context';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const STATUS_KEYS = [
  'process_id',
  'status',
  'current_phase',
  'phases',
  'result',
  'error',
  'created_at',
  'completed_at',
];

describe('API routes (app.request, real Temporal and Redis, no worker)', () => {
  let connection: Connection;
  let client: Client;
  let store: ReturnType<typeof testProjection>;
  /** An app for routes that need no decision service: only auth, limits and what `deps` adds. */
  const bareApp = (deps: Partial<AppDeps> = {}) =>
    createApp({
      decisions: {} as never,
      projection: {} as never,
      redis: store.redis,
      keyPrefix: store.prefix,
      apiKeys: null,
      health: () => Promise.reject(new Error('unused')),
      maxQueryChars: 10,
      ...deps,
    });
  let app: ReturnType<typeof createApp>;

  // Bad input is sent to an app of its own, whose queue Temporal can be asked about.
  const rejectedQueue = uniqueName('rejected');
  let rejectedApp: ReturnType<typeof createApp>;

  /** The app on a queue no worker polls: started decisions stay pending, which the tests read. */
  const appOn = (
    taskQueue: string,
    projection: DecisionServiceOptions['projection'] = store.projection,
  ) => {
    const decisions = new DecisionService({
      client,
      projection,
      taskQueue,
      queryTimeoutMs: 300,
    });
    return createApp({
      decisions,
      health: createHealthCheck({
        connection,
        redis: store.redis,
      }),
      projection: store.projection,
      redis: store.redis,
      keyPrefix: store.prefix,
      apiKeys: null,
      maxQueryChars: 50,
      maxBodyBytes: 1024,
      logger: {
        error: (obj: unknown, msg?: string) => console.error(msg, obj),
        info() {},
        warn() {},
      },
    });
  };

  beforeAll(async () => {
    connection = await Connection.connect({ address: services.temporalAddress });
    client = new Client({ connection });
    store = testProjection();
    app = appOn(uniqueName('routes'));
    rejectedApp = appOn(rejectedQueue);
  });
  afterAll(async () => {
    await store?.cleanup();
    await connection?.close();
  });

  const post = (
    path: string,
    body: string,
    headers: Record<string, string> = {},
    to: ReturnType<typeof createApp> = app,
  ) =>
    to.request(path, {
      method: 'POST',
      body,
      headers: { 'Content-Type': 'application/json', ...headers },
    });

  describe('seed routes', () => {
    it('POST /decisions/start starts a workflow and answers in the seed shape', async () => {
      const res = await post('/decisions/start', JSON.stringify({ decision_query: 'Should we?' }));
      expect(res.status).toBe(200);
      const body = (await res.json()) as Record<string, unknown>;
      expect(Object.keys(body).sort()).toEqual(['message', 'process_id', 'status']);
      expect(body).toMatchObject({ status: 'started', process_id: expect.stringMatching(UUID) });

      const description = await client.workflow.getHandle(body.process_id as string).describe();
      expect(description.type).toBe('decisionWorkflow');
      expect(description.memo).toMatchObject({ query: 'Should we?' });
    });

    it('GET /decisions/status/{id} serves the projection in the seed shape', async () => {
      const record = {
        ...initialRecord('projected-1', { query: 'Should we?' }, '2026-01-01T00:00:00.000Z'),
        status: 'running' as const,
        current_phase: 'identifyTrigger' as const,
        seq: 1,
      };
      record.phases[0]!.status = 'running';
      await store.projection.write(record);

      const res = await app.request('/decisions/status/projected-1');
      expect(res.status).toBe(200);
      const body = (await res.json()) as Record<string, unknown>;
      for (const key of STATUS_KEYS) expect(body).toHaveProperty(key);
      const { seq: _seq, ...expected } = record;
      expect(body).toEqual(expected);
    });

    it('GET /decisions/status/{id} falls back to Temporal when Redis has no record', async () => {
      const started = await post('/decisions/start', JSON.stringify({ decision_query: 'Hire?' }));
      const { process_id } = (await started.json()) as { process_id: string };

      const res = await app.request(`/decisions/status/${process_id}`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as {
        status: string;
        query: string;
        phases: { name: string }[];
      };
      expect(body).toMatchObject({ process_id, status: 'pending', query: 'Hire?', result: null });
      expect(body.phases.map((p) => p.name)).toEqual(PHASE_NAMES);
    });

    it('answers 404 with a problem document for an unknown id', async () => {
      for (const path of ['/decisions/status/unknown-id', '/decisions/unknown-id']) {
        const res = await app.request(path);
        expect(res.status).toBe(404);
        expect(res.headers.get('content-type')).toBe('application/problem+json');
        expect(await res.json()).toMatchObject({
          status: 404,
          detail: 'No decision with id unknown-id',
        });
      }
    });
  });

  describe('resource routes', () => {
    it('POST /decisions answers 202 with Location and the pending decision', async () => {
      const res = await post('/decisions', JSON.stringify({ query: 'Should we migrate?' }));
      expect(res.status).toBe(202);
      const body = (await res.json()) as { process_id: string; status: string; phases: unknown[] };
      expect(res.headers.get('location')).toBe(`/decisions/${body.process_id}`);
      expect(body).toMatchObject({ status: 'pending', query: 'Should we migrate?' });
      expect(body.phases).toHaveLength(10);

      const read = await app.request(res.headers.get('location')!);
      expect(read.status).toBe(200);
      expect(await read.json()).toMatchObject({ process_id: body.process_id });
    });
  });

  describe('one read of the decision per request', () => {
    // The service reads through this projection, which counts the reads of each request.
    let reads = 0;
    let counted: ReturnType<typeof createApp>;
    beforeAll(() => {
      counted = appOn(uniqueName('read-once'), {
        entry: (id) => {
          reads++;
          return store.projection.entry(id);
        },
        list: (query) => store.projection.list(query),
        write: (...args) => store.projection.write(...args),
        expectRun: (...args) => store.projection.expectRun(...args),
      });
    });
    const readsFor = async (path: string, init?: RequestInit) => {
      reads = 0;
      const res = await counted.request(path, init);
      return { status: res.status, reads };
    };
    const send = (body?: object): RequestInit =>
      body
        ? {
            method: 'POST',
            body: JSON.stringify(body),
            headers: { 'Content-Type': 'application/json' },
          }
        : { method: 'POST' };
    const projected = async (status: DecisionStatus) => {
      const id = uniqueName('projected');
      const created = new Date().toISOString();
      await store.projection.write({
        ...initialRecord(id, { query: 'Once?' }, created),
        status,
        seq: 1,
      });
      return id;
    };

    it('reads it once to answer a read, a result, a wait, a review, a fork or a refused cancel', async () => {
      const running = await projected('running');
      const completed = await projected('completed');
      expect(await readsFor(`/decisions/${running}`)).toEqual({ status: 200, reads: 1 });
      expect(await readsFor(`/decisions/status/${running}`)).toEqual({ status: 200, reads: 1 });
      expect(await readsFor(`/decisions/${running}/result`)).toEqual({ status: 409, reads: 1 });
      expect(await readsFor(`/decisions/${completed}/wait?timeout=1s`)).toEqual({
        status: 200,
        reads: 1,
      });
      expect(await readsFor(`/decisions/${completed}/review`, send({ approve: true }))).toEqual({
        status: 409,
        reads: 1,
      });
      expect(await readsFor(`/decisions/${completed}/cancel`, send())).toEqual({
        status: 409,
        reads: 1,
      });
      expect(
        await readsFor(`/decisions/${completed}/fork`, send({ from_phase: 'identifyTrigger' })),
      ).toEqual({ status: 202, reads: 1 });
      expect(await readsFor('/decisions/unknown-id/cancel', send())).toEqual({
        status: 404,
        reads: 1,
      });
    });

    it('reads it once before cancelling it, and once more for the state it answers with', async () => {
      const started = await counted.request('/decisions', send({ query: 'Cancel me?' }));
      const { process_id } = (await started.json()) as { process_id: string };
      // Pending (no worker polls its queue): a retry is refused on what the one read says.
      expect(await readsFor(`/decisions/${process_id}/retry`, send())).toEqual({
        status: 409,
        reads: 1,
      });
      // Requested, but with no worker never recorded: 202 with the state after a 5 s wait.
      expect(await readsFor(`/decisions/${process_id}/cancel`, send())).toEqual({
        status: 202,
        reads: 2,
      });
    });
  });

  describe('bad input', () => {
    const sendBad = (path: string, body: string, headers: Record<string, string> = {}) =>
      post(path, body, headers, rejectedApp);
    const cases: [string, string, string, string][] = [
      [
        'malformed JSON',
        '/decisions/start',
        '{"decision_query": ',
        'Malformed JSON in request body',
      ],
      ['a missing query', '/decisions/start', '{}', 'decision_query is required'],
      [
        'an empty query',
        '/decisions/start',
        '{"decision_query": ""}',
        'decision_query must not be empty',
      ],
      [
        'a blank query',
        '/decisions/start',
        '{"decision_query": "  \\n "}',
        'decision_query must not be empty',
      ],
      [
        'a query that is not a string',
        '/decisions/start',
        '{"decision_query": 42}',
        'decision_query must be a string',
      ],
      [
        'a query over the limit',
        '/decisions/start',
        JSON.stringify({ decision_query: 'x'.repeat(51) }),
        'decision_query must be at most 50 characters',
      ],
      ['an array body', '/decisions/start', '[]', '(body)'],
      ['a null body', '/decisions/start', 'null', '(body)'],
      [
        'a missing query (resource route)',
        '/decisions',
        '{"decision_query": "wrong field"}',
        'query is required',
      ],
      ['an empty query (resource route)', '/decisions', '{"query": ""}', 'query must not be empty'],
      [
        'a field the body must not have',
        '/decisions',
        '{"query": "x?", "bogus": 1}',
        'bogus is not a field of this request',
      ],
      [
        'a misspelt field of the budget',
        '/decisions',
        '{"query": "x?", "budget": {"max_token": 9000}}',
        'budget.max_token is not a field of this request',
      ],
      [
        'a field the seed route does not take',
        '/decisions/start',
        '{"decision_query": "x?", "query": "x?"}',
        'query is not a field of this request',
      ],
      ['a wait with no unit', '/decisions?wait=30', '{"query": "x?"}', 'wait must name its unit'],
    ];
    it.each(cases)('rejects %s with 400', async (_name, path, body, detail) => {
      const res = await sendBad(path, body);
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      const problem = (await res.json()) as { status: number; detail: string; type: string };
      expect(problem).toMatchObject({
        status: 400,
        type: 'http://localhost/problems/invalid-request',
        instance: path.split('?')[0],
      });
      expect(problem.detail).toContain(detail);
    });

    it("names each field a body must not have in the problem's errors, at any depth", async () => {
      const res = await sendBad(
        '/decisions',
        JSON.stringify({
          query: 'x?',
          bogus: 1,
          other: 2,
          webhook: { url: 'https://a.example/', retries: 3 },
        }),
      );
      expect(res.status).toBe(400);
      const { errors } = (await res.json()) as { errors: { path: string; message: string }[] };
      expect(errors).toEqual(
        expect.arrayContaining(
          ['bogus', 'other', 'webhook.retries'].map((path) => ({
            path,
            message: 'is not a field of this request',
          })),
        ),
      );
      expect(errors).toHaveLength(3);
    });

    it('refuses a wait or timeout with no unit, saying which unit to add', async () => {
      const res = await app.request('/decisions/some-id/wait?timeout=30');
      expect(res.status).toBe(400);
      expect(((await res.json()) as { detail: string }).detail).toBe(
        'timeout must name its unit (30s for seconds, 30ms for milliseconds), at most 120s',
      );
    });

    it('rejects a body that is not JSON with 415', async () => {
      const res = await sendBad('/decisions/start', 'decision_query=x', {
        'Content-Type': 'application/x-www-form-urlencoded',
      });
      expect(res.status).toBe(415);
      expect(await res.json()).toMatchObject({
        status: 415,
        detail: 'The request body must be JSON (Content-Type: application/json)',
      });
    });

    it('rejects a body over the size limit with 413', async () => {
      const res = await sendBad(
        '/decisions/start',
        JSON.stringify({ decision_query: 'x'.repeat(2000) }),
      );
      expect(res.status).toBe(413);
      expect(await res.json()).toMatchObject({
        status: 413,
        type: 'http://localhost/problems/payload-too-large',
      });
    });

    it('started nothing for any rejected request: Temporal knows only the control decision', async () => {
      // A valid request on the same queue; once visibility shows it, it shows the rest too.
      expect((await sendBad('/decisions', JSON.stringify({ query: 'Control?' }))).status).toBe(202);
      const count = async () =>
        (await client.workflow.count(`TaskQueue = "${rejectedQueue}"`)).count;
      await waitFor('the control decision to be visible', async () =>
        (await count()) >= 1 ? true : undefined,
      );
      expect(await count()).toBe(1);
    });
  });

  describe('public surface', () => {
    it("serves the page each problem's type names, and 404 for a type it has none of", async () => {
      const answer = await app.request('/decisions/no-such-decision');
      expect(answer.status).toBe(404);
      const { type, title } = (await answer.json()) as { type: string; title: string };
      expect(type).toBe('http://localhost/problems/not-found');
      const page = await app.request(new URL(type).pathname);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      const html = await page.text();
      expect(html).toContain(`<h1>${title} <small>(HTTP 404)</small></h1>`);
      expect(html).toContain('What to do');
      expect((await app.request('/problems/no-such-type')).status).toBe(404);
    });

    it("names API_PUBLIC_URL, path and all, in problem types and as the document's server", async () => {
      const configured = bareApp({ publicUrl: 'https://decisions.example.com/api/' });
      const answer = await configured.request('/nowhere');
      expect(((await answer.json()) as { type: string }).type).toBe(
        'https://decisions.example.com/api/problems/not-found',
      );
      const doc = (await (await configured.request('/openapi.json')).json()) as {
        servers: { url: string }[];
      };
      expect(doc.servers).toEqual([
        { url: 'https://decisions.example.com/api', description: 'This API' },
      ]);
    });

    it.each(['constructor', '__proto__', 'toString', 'hasOwnProperty', 'missing.js'])(
      'answers 404 for the docs asset %s',
      async (file) => {
        const res = await app.request(`/docs/assets/${file}`);
        expect(res.status).toBe(404);
      },
    );

    it('serves /metrics to the admin scope only', async () => {
      const registry = createRegistry('api');
      const keys = parseApiKeys(
        'read-key-0123456789abcdefghij=decisions:read,admin-key-0123456789abcdefghi=decisions:admin',
      );
      const metricsApp = bareApp({ apiKeys: keys, metrics: registry });
      const get = (key?: string) =>
        metricsApp.request('/metrics', key ? { headers: { Authorization: `Bearer ${key}` } } : {});
      expect((await get()).status).toBe(401);
      expect((await get('read-key-0123456789abcdefghij')).status).toBe(403);
      const res = await get('admin-key-0123456789abcdefghi');
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('http_requests_total');
    });
  });

  describe('the decision page', () => {
    const pageApp = (apiKeys: ReturnType<typeof parseApiKeys> | null) =>
      bareApp({ apiKeys, temporalUi: { url: 'http://ui.example:8233/', namespace: 'team "a"' } });
    const keys = parseApiKeys('read-key-0123456789abcdefghij=decisions:read@reader');

    it('serves the pages as public shells, with the Web UI link and a policy for their script', async () => {
      const secured = pageApp(keys);
      for (const path of ['/ui/', '/ui/decisions/some-id']) {
        const res = await secured.request(path);
        expect(res.status, path).toBe(200);
        expect(res.headers.get('content-type')).toBe('text/html; charset=UTF-8');
        const html = await res.text();
        expect(html).toContain('<meta name="temporal-ui-url" content="http://ui.example:8233" />');
        expect(html).toContain('<meta name="temporal-namespace" content="team &quot;a&quot;" />');
        // The one inline script, the import map, runs by its hash; nothing else inline does.
        const importMap = /<script type="importmap">([\s\S]*?)<\/script>/.exec(html)![1]!;
        const hash = createHash('sha256').update(importMap).digest('base64');
        const policy = res.headers.get('content-security-policy')!;
        expect(policy).toContain(`script-src 'self' 'sha256-${hash}'`);
        expect(policy).toContain("connect-src 'self'");
      }
      const bare = await secured.request('/ui');
      expect(bare.status).toBe(308);
      expect(bare.headers.get('location')).toBe('/ui/');
    });

    it('serves the script, the style sheet and the SSE parser, and nothing else', async () => {
      const app = pageApp(keys);
      const script = await app.request('/ui/assets/page.js');
      expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
      expect(await script.text()).toContain("from 'eventsource-parser'");
      expect((await app.request('/ui/assets/page.css')).status).toBe(200);
      const parser = await app.request('/ui/assets/eventsource-parser/index.js');
      expect(parser.status).toBe(200);
      expect(await parser.text()).toContain('createParser');
      // Its own imports resolve beside it.
      expect((await app.request('/ui/assets/eventsource-parser/parse.js')).status).toBe(200);
      for (const path of [
        '/ui/assets/index.html',
        '/ui/assets/constructor',
        '/ui/assets/__proto__',
        '/ui/assets/eventsource-parser/missing.js',
        '/ui/assets/eventsource-parser/package.json',
        '/ui/assets/eventsource-parser/..%2Fpackage.json',
      ]) {
        expect((await app.request(path)).status, path).toBe(404);
      }
    });
  });

  describe('GET /me', () => {
    const keys = parseApiKeys(
      'read-key-0123456789abcdefghij=decisions:read@reader,write-key-0123456789abcdefghi=decisions:write',
    );
    const keyApp = (apiKeys: typeof keys | null) => bareApp({ apiKeys });

    it('answers the key and its scopes, 401 without a valid key, and every scope without auth', async () => {
      const secured = keyApp(keys);
      const me = (key?: string) =>
        secured.request('/me', key ? { headers: { Authorization: `Bearer ${key}` } } : {});
      expect((await me()).status).toBe(401);
      expect((await me('not-a-key-of-this-api-at-all')).status).toBe(401);
      expect(await (await me('read-key-0123456789abcdefghij')).json()).toEqual({
        principal: 'reader',
        scopes: ['decisions:read'],
      });
      const writer = (await (await me('write-key-0123456789abcdefghi')).json()) as {
        principal: string;
        scopes: string[];
      };
      expect(writer.principal).toMatch(/^key-[0-9a-f]{16}$/);
      expect(writer.scopes).toEqual(['decisions:write']);
      expect(await (await keyApp(null).request('/me')).json()).toEqual({
        principal: 'anonymous',
        scopes: ['decisions:read', 'decisions:write', 'decisions:admin'],
      });
    });
  });

  describe('GET /webhooks/secret', () => {
    const keys = parseApiKeys(
      'read-key-0123456789abcdefghij=decisions:read@reader,write-key-0123456789abcdefghi=decisions:write@writer',
    );
    const MASTER = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
    const secretApp = (apiKeys: typeof keys | null, configured = true) =>
      bareApp({
        apiKeys,
        webhookSecretOf: configured ? (principal) => principalSecret(MASTER, principal) : null,
      });
    const get = (app: ReturnType<typeof secretApp>, key?: string) =>
      app.request('/webhooks/secret', key ? { headers: { Authorization: `Bearer ${key}` } } : {});

    it("answers the caller's own derived secret, to a key that may create decisions", async () => {
      const res = await get(secretApp(keys), 'write-key-0123456789abcdefghi');
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(await res.json()).toEqual({
        secret: principalSecret(MASTER, 'writer'),
        principal: 'writer',
      });
      expect(((await (await get(secretApp(null))).json()) as { secret: string }).secret).toBe(
        principalSecret(MASTER, 'anonymous'),
      );
    });

    it('answers 401 without a key, 403 to a read-only key, 404 without WEBHOOK_SECRET', async () => {
      expect((await get(secretApp(keys))).status).toBe(401);
      const readOnly = await get(secretApp(keys), 'read-key-0123456789abcdefghij');
      expect(readOnly.status).toBe(403);
      const unconfigured = await get(secretApp(null, false));
      expect(unconfigured.status).toBe(404);
      expect(((await unconfigured.json()) as { detail: string }).detail).toMatch(
        'it has no WEBHOOK_SECRET',
      );
    });
  });

  describe('health', () => {
    const healthApp = (health: HealthCheck) => bareApp({ health });

    it('answers 200 when Temporal and Redis answer, naming no address', async () => {
      const res = await app.request('/health');
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(JSON.parse(text)).toEqual({
        status: 'ok',
        checks: {
          temporal: { ok: true, detail: 'answering' },
          redis: { ok: true, detail: 'answering' },
        },
      });
      for (const address of [services.temporalAddress, new URL(services.redisUrl).host]) {
        expect(text).not.toContain(address);
      }
    });

    it("answers a fork whose source no worker answers for with 503 and Retry-After, in the API's own words", async () => {
      // No worker polls this app's queue: the source's outputs query is never answered.
      const started = await post('/decisions/start', JSON.stringify({ decision_query: 'Fork?' }));
      const { process_id } = (await started.json()) as { process_id: string };
      const res = await app.request(`/decisions/${process_id}/fork`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ from_phase: 'analyzeRootCause' }),
      });
      expect(res.status).toBe(503);
      expect(res.headers.get('Retry-After')).toBe('5');
      expect(((await res.json()) as { detail: string }).detail).toBe(
        "Could not read the source decision's outputs: Temporal or a worker did not answer within 0.6 s. Nothing was started; send the fork again in a few seconds",
      );
    });

    it('answers 503 naming Redis when Redis does not answer', async () => {
      const deadRedis = new Redis('redis://127.0.0.1:1', {
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      deadRedis.on('error', () => undefined);
      const logged: [string, string][] = [];
      const health = createHealthCheck({
        connection,
        redis: deadRedis,
        onFailure: (dependency, error) => logged.push([dependency, error]),
        timeoutMs: 500,
      });
      const res = await healthApp(health).request('/health');
      expect(res.status).toBe(503);
      const text = await res.text();
      expect(JSON.parse(text)).toMatchObject({
        status: 'unavailable',
        checks: { temporal: { ok: true }, redis: { ok: false, detail: 'not answering' } },
      });
      // The error (with its address) goes to the log, not to the caller.
      expect(text).not.toContain('127.0.0.1:1');
      expect(logged).toEqual([['redis', expect.any(String)]]);
      deadRedis.disconnect();
    });

    it('answers 503 naming Temporal when Temporal does not answer', async () => {
      // Without the retry interceptor, so no retry outlives the test's connection.
      const deadTemporal = Connection.lazy({ address: '127.0.0.1:1', interceptors: [] });
      const health = createHealthCheck({
        connection: deadTemporal,
        redis: store.redis,
        timeoutMs: 500,
      });
      const res = await healthApp(health).request('/health');
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({
        status: 'unavailable',
        checks: { temporal: { ok: false }, redis: { ok: true } },
      });
      await deadTemporal.close();
    });
  });

  it('serves an OpenAPI 3.2 document listing every route and the data of every event', async () => {
    const res = await app.request('/openapi.json');
    const doc = (await res.json()) as {
      openapi: string;
      paths: Record<string, object>;
      components: { schemas: Record<string, { type?: string; oneOf?: object[] }> };
    };
    expect(doc.openapi).toBe('3.2.0');
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/decisions',
      '/decisions/start',
      '/decisions/status/{process_id}',
      '/decisions/{process_id}',
      '/decisions/{process_id}/cancel',
      '/decisions/{process_id}/events',
      '/decisions/{process_id}/fork',
      '/decisions/{process_id}/result',
      '/decisions/{process_id}/retry',
      '/decisions/{process_id}/review',
      '/decisions/{process_id}/wait',
      '/health',
      '/me',
      '/ready',
      '/webhooks/secret',
    ]);
    for (const type of DECISION_EVENT_TYPES) {
      const schema = doc.components.schemas[`EventData.${type}`];
      expect(schema?.type ?? schema?.oneOf?.length, type).toBeTruthy();
    }
  });

  it('answers an unknown route with a 404 problem document', async () => {
    const res = await app.request('/nowhere');
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
  });
});
