import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareStreamIds, EventHub } from '../../src/api/event-hub';
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
    const hub = new EventHub(store.redis, store.prefix, {
      blockMs: 200,
    });
    const ids = Array.from({ length: 50 }, (_, i) => `hub-${i}`);
    const subs = ids.map((id) =>
      hub.subscribe([{ key: store.projection.eventsKey(id), after: null }]),
    );
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
    const hub = new EventHub(store.redis, store.prefix);
    const key = store.projection.eventsKey('hub-after');
    const first = await store.redis.xadd(key, '*', 'type', 'old', 'data', '1');
    const sub = hub.subscribe([{ key, after: first }]);
    await store.redis.xadd(key, '*', 'type', 'new', 'data', '2');
    expect(await sub.next(2000)).toMatchObject([{ type: 'new' }]);
    sub.close();
  });

  it('merges two streams of one subscriber in id order, each from its own position', async () => {
    const hub = new EventHub(store.redis, store.prefix, { blockMs: 200 });
    const durable = store.projection.eventsKey('hub-two');
    const live = `${durable}:live`;
    const seen = await store.redis.xadd(live, '*', 'type', 'seen', 'data', '0');
    const sub = hub.subscribe([
      { key: durable, after: null },
      { key: live, after: seen },
    ]);
    // Written in one go, so that one read takes them all: the order is the ids'.
    const ids = (await store.redis
      .multi()
      .xadd(live, '*', 'type', 'l1', 'data', '1')
      .xadd(durable, '*', 'type', 'd1', 'data', '2')
      .xadd(live, '*', 'type', 'l2', 'data', '3')
      .exec())!.map(([, id]) => id as string);
    const got: { type: string; id: string; key: string }[] = [];
    while (got.length < 3) got.push(...(await sub.next(2000)));
    const order = [
      { type: 'l1', id: ids[0], key: live },
      { type: 'd1', id: ids[1], key: durable },
      { type: 'l2', id: ids[2], key: live },
    ].sort((a, b) => compareStreamIds(a.id!, b.id!) || (a.key === durable ? -1 : 1));
    expect(got.map(({ type, id, key }) => ({ type, id, key }))).toEqual(order);
    expect(got.map((e) => e.type)).not.toContain('seen');
    sub.close();
  });
});
