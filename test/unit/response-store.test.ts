import { describe, expect, it } from 'vitest';
import type { AgentContext } from '../../src/phases/phase';
import { withResponseStore, type ResponseStore } from '../../src/llm/response-store';
import { MemoryResponseStore as MemoryStore } from '../support/memory-deps';
import { FakeModel } from '../support/fake-model';

const request = (content: string) => ({
  task: 'identifyTrigger',
  system: 's',
  messages: [{ role: 'user' as const, content }],
  schemaName: 'identifyTrigger',
  jsonSchema: {},
  maxOutputTokens: 100,
  maxAnswerChars: 1000,
  hints: { query: 'q', outputs: {} } as AgentContext,
});

describe('withResponseStore', () => {
  it('stores an answer and reuses it for the same request in the same scope', async () => {
    const store = new MemoryStore();
    const model = new FakeModel(() => '{"a":1}');
    const first = await withResponseStore(model, store, 'wf:run:1').generate(request('x'));
    const again = await withResponseStore(model, store, 'wf:run:1').generate(request('x'));
    expect(model.requests).toHaveLength(1);
    expect(first.reused).toBeUndefined();
    expect(again).toMatchObject({ text: '{"a":1}', reused: true });
    await withResponseStore(model, store, 'wf:run:2').generate(request('x'));
    expect(model.requests).toHaveLength(2);
  });

  it('with lookup off (a first attempt) stores the answer without reading the store', async () => {
    const store = new MemoryStore();
    let reads = 0;
    const get = store.get.bind(store);
    store.get = (key: string) => {
      reads += 1;
      return get(key);
    };
    const model = new FakeModel(() => '{"a":1}');
    const noop = () => {};
    await withResponseStore(model, store, 'wf:run:1', noop, { lookup: false }).generate(
      request('x'),
    );
    expect(reads).toBe(0);
    expect(store.data.size).toBe(1);
    // The retry looks, and reuses what the first attempt stored.
    const retry = await withResponseStore(model, store, 'wf:run:1').generate(request('x'));
    expect(reads).toBe(1);
    expect(retry.reused).toBe(true);
    expect(model.requests).toHaveLength(1);
  });

  it('forgets what an attempt stored and what it reused, so a retry asks afresh', async () => {
    const store = new MemoryStore();
    const model = new FakeModel(() => '{"a":1}');
    await withResponseStore(model, store, 's').generate(request('first'));
    const retry = withResponseStore(model, store, 's');
    await retry.generate(request('first'));
    await retry.generate(request('repair'));
    expect(store.data.size).toBe(2);
    await retry.forget();
    expect(store.data.size).toBe(0);
  });

  it('calls the model when the store does not answer, and says so', async () => {
    const broken: ResponseStore = {
      get: () => Promise.reject(new Error('down')),
      put: () => Promise.reject(new Error('down')),
      delete: () => Promise.reject(new Error('down')),
    };
    const errors: unknown[] = [];
    const model = new FakeModel(() => '{"a":1}');
    const out = await withResponseStore(model, broken, 's', (e) => errors.push(e)).generate(
      request('x'),
    );
    expect(out.text).toBe('{"a":1}');
    expect(errors).toHaveLength(2);
  });
});
