import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StreamSlots } from '../../src/api/stream-slots';
import { redisAway, testProjection, uniqueName, waitFor } from '../support/context';

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('event stream slots counted in Redis', () => {
  let store: ReturnType<typeof testProjection>;
  const clients: Redis[] = [];
  /** An API process's slots: a Redis connection of its own on the shared prefix. */
  const processSlots = (leaseMs = 30_000) => {
    const redis = store.redis.duplicate();
    clients.push(redis);
    return { redis, slots: new StreamSlots(redis, store.prefix, { leaseMs }) };
  };
  /** The stream ids Redis holds for a principal, whatever any process thinks. */
  const held = (principal: string) =>
    store.redis.zrange(`${store.prefix}{streams:${principal}}`, 0, -1);

  beforeAll(() => {
    store = testProjection();
  });
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await store?.cleanup();
  });

  it("holds one principal's cap across processes, frees a slot for the other on release, and counts each principal apart", async () => {
    const a = processSlots().slots;
    const b = processSlots().slots;
    const principal = uniqueName('alice');
    expect(a.keyOf(principal)).toBe(`${store.prefix}{streams:${principal}}`);
    const first = await a.tryTake(principal, 3);
    const second = await b.tryTake(principal, 3);
    const third = await a.tryTake(principal, 3);
    expect([first, second, third].every((r) => typeof r === 'function')).toBe(true);
    expect(await held(principal)).toHaveLength(3);
    // Each process holds fewer than 3 itself: the refusals come from the count in Redis.
    expect(await b.tryTake(principal, 3)).toBeNull();
    expect(await a.tryTake(principal, 3)).toBeNull();
    expect(await b.hasRoom(principal, 3)).toBe(false);
    // Another principal is not counted with this one.
    const other = uniqueName('bob');
    const bobs = await b.tryTake(other, 3);
    expect(bobs).not.toBeNull();
    expect(await held(other)).toHaveLength(1);

    first!();
    first!();
    await waitFor('the release to reach Redis', async () =>
      (await held(principal)).length === 2 ? true : undefined,
    );
    expect(await b.hasRoom(principal, 3)).toBe(true);
    const again = await b.tryTake(principal, 3);
    expect(again).not.toBeNull();
    expect(await a.tryTake(principal, 3)).toBeNull();
    for (const release of [second, third, again, bobs]) release!();
    await Promise.all([a.close(), b.close()]);
    // The key goes with its last stream.
    expect(await store.redis.exists(a.keyOf(principal), a.keyOf(other))).toBe(0);
  });

  it('answers HEAD (hasRoom) with what a take would be told, taking nothing', async () => {
    const { slots } = processSlots();
    const principal = uniqueName('head');
    expect(await slots.hasRoom(principal, 1)).toBe(true);
    expect(await held(principal)).toEqual([]);
    const release = await slots.tryTake(principal, 1);
    expect(await slots.hasRoom(principal, 1)).toBe(false);
    expect(await held(principal)).toHaveLength(1);
    release!();
    await slots.close();
  });

  it('renews the leases of open streams, and a process that dies holds its streams one lease at most', async () => {
    const leaseMs = 1_000;
    const dying = processSlots(leaseMs);
    const { slots: alive } = processSlots(leaseMs);
    const principal = uniqueName('crash');
    // The living process holds one too: its renewals keep the key, so only the dead process's
    // own leases can run out.
    const own = await alive.tryTake(principal, 3);
    expect(own).not.toBeNull();
    expect(await dying.slots.tryTake(principal, 3)).not.toBeNull();
    expect(await dying.slots.tryTake(principal, 3)).not.toBeNull();
    // Open for three leases: still counted, as their processes renew them.
    await pause(3 * leaseMs);
    expect(await alive.tryTake(principal, 3)).toBeNull();
    const expiries = (await store.redis.zrange(alive.keyOf(principal), 0, -1, 'WITHSCORES'))
      .filter((_, i) => i % 2 === 1)
      .map(Number);
    const [seconds, micros] = await store.redis.time();
    const redisNow = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    expect(expiries).toHaveLength(3);
    for (const expiry of expiries) {
      expect(expiry).toBeGreaterThan(redisNow);
      expect(expiry).toBeLessThanOrEqual(redisNow + leaseMs);
    }

    // The process dies: no renewal, no release.
    dying.redis.disconnect();
    const died = Date.now();
    expect(await alive.tryTake(principal, 3)).toBeNull();
    const taken = await waitFor(
      "the dead process's leases to run out",
      () => alive.tryTake(principal, 3).then((r) => r ?? undefined),
      5 * leaseMs,
      { intervalMs: 50 },
    );
    const waited = Date.now() - died;
    // Its streams were renewed a third of a lease before it died at the latest.
    expect(waited).toBeLessThanOrEqual(leaseMs + 500);
    expect(waited).toBeGreaterThan(leaseMs / 3);
    // The living process's two, and none of the dead one's.
    expect(await held(principal)).toHaveLength(2);
    taken();
    own!();
    await alive.close();
  });

  it('counts in the process alone while Redis does not answer: the cap neither lifts nor stops streams', async () => {
    const errors: unknown[] = [];
    const away = redisAway();
    clients.push(away);
    const slots = new StreamSlots(away, store.prefix, { onError: (err) => errors.push(err) });
    const taken = [await slots.tryTake('alice', 2), await slots.tryTake('alice', 2)];
    expect(taken.every((r) => typeof r === 'function')).toBe(true);
    expect(await slots.tryTake('alice', 2)).toBeNull();
    expect(await slots.hasRoom('alice', 2)).toBe(false);
    expect(await slots.tryTake('bob', 2)).not.toBeNull();
    taken[0]!();
    expect(await slots.hasRoom('alice', 2)).toBe(true);
    expect(await slots.tryTake('alice', 2)).not.toBeNull();
    expect(errors.length).toBeGreaterThan(0);
  });
});
