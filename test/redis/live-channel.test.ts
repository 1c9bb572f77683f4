import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiveChannel, type LiveScope } from '../../src/projection/live-channel';
import { testProjection } from '../support/context';
import { freePort } from '../support/ports';

const scope = (decisionId: string, attempt = 1): LiveScope => ({
  decisionId,
  phase: 'generateAlternatives',
  index: 6,
  attempt,
  need: null,
});

interface Delta {
  call: number;
  offset: number;
  text: string;
  attempt: number;
}

describe('the live channel in Redis', () => {
  let store: ReturnType<typeof testProjection>;
  let channel: LiveChannel;
  beforeAll(() => {
    store = testProjection();
    channel = new LiveChannel(store.redis, store.prefix, { ttlSeconds: 120 });
  });
  afterAll(() => store?.cleanup());

  const stored = async (id: string) =>
    (await channel.read(id, null)).map((e) => ({ type: e.type, ...(e.data as Delta) }));

  it('writes a fast model at most about once per 50 ms, and its text whole, in order', async () => {
    const publisher = channel.publisher(scope('fast'));
    const answer = JSON.stringify({ options: Array.from({ length: 40 }, (_, i) => `option ${i}`) });
    const started = performance.now();
    // A piece every 2 ms: 25 pieces per interval.
    for (const [i, char] of [...answer].entries()) {
      publisher.output(1, char);
      if (i % 4 === 3) await sleep(2);
    }
    await publisher.close();
    const elapsed = performance.now() - started;
    const events = await stored('fast');
    // The entries Redis holds are the writes' (one delta per write while one call runs).
    expect(events.length).toBeGreaterThan(1);
    expect(events.length).toBeLessThanOrEqual(Math.ceil(elapsed / 50) + 1);
    expect(events.map((e) => e.text).join('')).toBe(answer);
    let offset = 0;
    for (const e of events) {
      expect(e).toMatchObject({ type: 'phase.delta', call: 1, attempt: 1, offset });
      offset += e.text.length;
    }
    // The stream lives as long as the decision's records.
    const ttl = await store.redis.ttl(channel.key('fast'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(120);
  });

  it('starts a retried attempt with phase.attempt, and a new call at offset 0', async () => {
    const publisher = channel.publisher(scope('retry', 2));
    publisher.announce();
    publisher.output(1, '{"a": ');
    publisher.output(2, '{"b": 1}');
    await publisher.close();
    expect(await stored('retry')).toMatchObject([
      { type: 'phase.attempt', attempt: 2 },
      { type: 'phase.delta', call: 1, offset: 0, text: '{"a": ' },
      { type: 'phase.delta', call: 2, offset: 0, text: '{"b": 1}' },
    ]);
    // A first attempt announces nothing.
    const first = channel.publisher(scope('first'));
    first.announce();
    await first.close();
    expect(await stored('first')).toEqual([]);
  });

  it('keeps a capped number of events per decision: the oldest are gone', async () => {
    const capped = new LiveChannel(store.redis, store.prefix, {
      ttlSeconds: 120,
      maxEvents: 5,
      intervalMs: 1,
    });
    const publisher = capped.publisher(scope('capped'));
    for (let i = 0; i < 12; i++) {
      publisher.output(1, `${i},`);
      await sleep(5);
    }
    await publisher.close();
    const events = await stored('capped');
    expect(events).toHaveLength(5);
    // The last five writes, whole.
    expect(events.map((e) => e.text).join('')).toMatch(/11,$/);
    expect(events[0]!.offset).toBeGreaterThan(0);
  });

  it('drops output when Redis is away: the phase goes on, the drop is counted and said', async () => {
    // A port nobody listens on.
    const away = new Redis({
      port: await freePort(),
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      commandTimeout: 200,
      retryStrategy: () => null,
    });
    away.on('error', () => undefined);
    const said: number[] = [];
    const lost = new LiveChannel(away, store.prefix, {
      ttlSeconds: 120,
      onDropped: (_err, events) => said.push(events),
    });
    const publisher = lost.publisher(scope('away'));
    const started = performance.now();
    for (let i = 0; i < 20; i++) {
      publisher.output(1, 'text ');
      await sleep(10);
    }
    await publisher.close();
    // The model's pace was never held up, nor the end of the attempt for long.
    expect(performance.now() - started).toBeLessThan(20 * 10 + 1000);
    expect(lost.dropped).toBeGreaterThan(0);
    expect(said.reduce((a, b) => a + b, 0)).toBe(lost.dropped);
    away.disconnect();
  });
});
