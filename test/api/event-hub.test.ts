import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventHub } from '../../src/api/event-hub';
import { testProjection, waitFor } from '../support/context';

describe('EventHub (real Redis)', () => {
  let store: ReturnType<typeof testProjection>;
  beforeAll(() => {
    store = testProjection();
  });
  afterAll(() => store?.cleanup());

  const connections = async (name: string) =>
    ((await store.redis.client('LIST')) as string)
      .split('\n')
      .filter((line) => line.includes(` name=${name} `)).length;

  it('serves fifty open streams from one Redis connection, each its own events in order', async () => {
    const hub = new EventHub(store.redis, (id) => store.projection.eventsKey(id), store.prefix, {
      blockMs: 200,
    });
    const ids = Array.from({ length: 50 }, (_, i) => `hub-${i}`);
    const subs = ids.map((id) => hub.subscribe(id, null));
    for (const [i, id] of ids.entries()) {
      for (const n of [1, 2]) {
        await store.redis.xadd(
          store.projection.eventsKey(id),
          '*',
          'type',
          `e${n}`,
          'data',
          `${i}`,
        );
      }
    }
    for (const [i, sub] of subs.entries()) {
      const got: unknown[] = [];
      while (got.length < 2) got.push(...(await sub.next(2000)));
      expect(got).toMatchObject([
        { type: 'e1', data: i },
        { type: 'e2', data: i },
      ]);
    }
    expect(await connections(hub.connectionName)).toBe(1);
    for (const sub of subs) sub.close();
    // The reader goes with the last subscriber.
    await waitFor('the reader to close', async () =>
      (await connections(hub.connectionName)) === 0 ? true : undefined,
    );
  });

  it('gives a subscriber only the events after the one it names', async () => {
    const hub = new EventHub(store.redis, (id) => store.projection.eventsKey(id), store.prefix);
    const key = store.projection.eventsKey('hub-after');
    const first = await store.redis.xadd(key, '*', 'type', 'old', 'data', '1');
    const sub = hub.subscribe('hub-after', first);
    await store.redis.xadd(key, '*', 'type', 'new', 'data', '2');
    expect(await sub.next(2000)).toMatchObject([{ type: 'new' }]);
    sub.close();
  });
});
