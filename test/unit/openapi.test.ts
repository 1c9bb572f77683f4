import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/api/app';
import { parseApiKeys } from '../../src/api/middleware/auth';
import { TAGS } from '../../src/api/openapi';
import { DECISION_EVENT_TYPES } from '../../src/domain/decision';
import { LIVE_EVENT_TYPES } from '../../src/domain/live';
import { documentDrift, liveDocument } from '../../tools/openapi';

interface Operation {
  operationId?: string;
  tags?: string[];
  summary?: string;
  description?: string;
  deprecated?: boolean;
  security?: Record<string, string[]>[];
  responses: Record<string, { headers?: Record<string, { $ref?: string }>; content?: object }>;
}
interface Document {
  openapi: string;
  servers: { url: string }[];
  info: { license?: { identifier?: string } };
  paths: Record<string, Record<string, Operation>>;
  components: {
    schemas: Record<string, { oneOf?: { $ref: string }[]; discriminator?: object }>;
    headers: Record<string, object>;
  };
}

const operations = (doc: Document) =>
  Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, operation]) => ({ path, method, operation })),
  );

describe('the OpenAPI document (no server)', () => {
  const redis = new Redis({ lazyConnect: true, enableOfflineQueue: false });
  afterAll(() => redis.disconnect());
  let doc: Document;
  const load = async () => (doc ??= (await liveDocument()) as Document);

  it('is the committed docs/openapi.json, which the lint and the client are made from', async () => {
    const drift = await documentDrift(await load());
    expect(
      drift,
      'docs/openapi.json differs from what the API serves: run `npm run openapi`',
    ).toBeNull();
  });

  it('names each operation once, verb then noun, with a tag the document describes', async () => {
    const all = operations(await load());
    const ids = all.map((o) => o.operation.operationId);
    expect(new Set(ids).size).toBe(all.length);
    const tags = new Set<string>(TAGS.map((t) => t.name));
    for (const { path, method, operation } of all) {
      expect(operation.operationId, `${method} ${path}`).toMatch(
        /^(get|list|create|start|stream|cancel|review|fork|retry|waitFor)[A-Z][A-Za-z]+$/,
      );
      expect(operation.tags?.length, `${method} ${path}`).toBe(1);
      expect(tags.has(operation.tags![0]!), `${method} ${path}`).toBe(true);
    }
  });

  it("states each route's key requirement as the API enforces it: 401 without a key where the document asks for one", async () => {
    const app = createApp({
      decisions: {} as never,
      projection: {} as never,
      health: () =>
        Promise.resolve({
          ok: true,
          checks: { temporal: { ok: true, detail: '' }, redis: { ok: true, detail: '' } },
        }),
      redis,
      keyPrefix: 'openapi-test:',
      apiKeys: parseApiKeys('read-key-0123456789abcdefghij=decisions:read'),
      rateLimitPerMinute: 0,
      maxQueryChars: 100,
    });
    for (const { path, method, operation } of operations(await load())) {
      const res = await app.request(path.replace(/\{[^}]+\}/g, 'x'), {
        method: method.toUpperCase(),
      });
      const documented = (operation.security ?? []).length > 0;
      expect(res.status === 401, `${method} ${path} answered ${res.status}`).toBe(documented);
      if (documented) {
        // What the document says a 401 carries, it carries.
        expect(Object.keys(operation.responses['401']!.headers ?? {}).sort()).toEqual([
          'WWW-Authenticate',
          'X-Request-Id',
        ]);
        expect(res.headers.get('www-authenticate')).toBe('Bearer realm="decisions"');
        expect(res.headers.get('x-request-id')).toBeTruthy();
      }
    }
  });

  it('documents X-Request-Id on every response, and Retry-After on every 429 and 503', async () => {
    for (const { path, method, operation } of operations(await load())) {
      for (const [status, response] of Object.entries(operation.responses)) {
        const names = Object.keys(response.headers ?? {});
        expect(names, `${method} ${path} ${status}`).toContain('X-Request-Id');
        if (status === '429' || status === '503') {
          expect(names, `${method} ${path} ${status}`).toContain('Retry-After');
        }
        for (const header of Object.values(response.headers ?? {})) {
          if (header.$ref) {
            const name = header.$ref.replace('#/components/headers/', '');
            expect(doc.components.headers[name], header.$ref).toBeDefined();
          }
        }
      }
    }
  });

  it('marks the seed routes deprecated, each naming the route to use instead', async () => {
    const deprecated = operations(await load()).filter((o) => o.operation.deprecated);
    expect(deprecated.map((o) => `${o.method} ${o.path}`).sort()).toEqual([
      'get /decisions/status/{process_id}',
      'post /decisions/start',
    ]);
    expect(deprecated.find((o) => o.method === 'post')!.operation.description).toContain(
      'POST /decisions',
    );
    expect(deprecated.find((o) => o.method === 'get')!.operation.description).toContain(
      'GET /decisions/{process_id}',
    );
  });

  it("describes the event stream's items by their schemas, one per event type by its event field", async () => {
    const { paths, components } = await load();
    const stream = paths['/decisions/{process_id}/events']!.get!.responses['200']!.content as {
      'text/event-stream': { itemSchema: { $ref: string } };
    };
    expect(stream['text/event-stream'].itemSchema.$ref).toBe(
      '#/components/schemas/DecisionStreamEvent',
    );
    const union = components.schemas.DecisionStreamEvent!;
    const types = [...DECISION_EVENT_TYPES, ...LIVE_EVENT_TYPES];
    // The data of each event type, and of no other, is among the schemas.
    const data = Object.keys(components.schemas)
      .filter((name) => name.startsWith('EventData.'))
      .map((name) => name.slice('EventData.'.length));
    expect(data.sort()).toEqual([...types].sort());
    expect(union.oneOf).toHaveLength(types.length);
    expect(union.discriminator).toMatchObject({ propertyName: 'event' });
    for (const type of types) {
      const item = components.schemas[`DecisionStreamEvent.${type}`] as {
        properties: { event: { const: string }; data: { contentSchema: { $ref: string } } };
      };
      expect(item.properties.event.const).toBe(type);
      const data = item.properties.data.contentSchema.$ref.replace('#/components/schemas/', '');
      expect(components.schemas[data], data).toBeDefined();
    }
  });
});
