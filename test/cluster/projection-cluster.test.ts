import { Redis, type Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventHub } from '../../src/api/event-hub';
import { initialRecord, type DecisionEvent, type DecisionRecord } from '../../src/domain/decision';
import { LiveChannel } from '../../src/projection/live-channel';
import { createCluster } from '../../src/projection/redis-client';
import { DecisionProjection } from '../../src/projection/redis-projection';
import { startRedisCluster, type LocalRedisCluster } from '../../tools/redis-cluster';
import { uniqueName, waitFor } from '../support/context';

// The projection and the event hub on a Redis Cluster of three masters with a replica each
// (tools/redis-cluster.ts): what a cluster changes, checked against the cluster's nodes.

const log = (line: string) => process.stderr.write(`[projection on a cluster] ${line}\n`);

const started = (index: number): DecisionEvent => ({
  type: 'phase.started',
  data: { phase: 'identifyTrigger', title: 'Trigger identification', index },
});

function record(id: string, seq: number, createdMs: number): DecisionRecord {
  return { ...initialRecord(id, { query: 'Should we?' }, new Date(createdMs).toISOString()), seq };
}

/** Calls of a command on every master since they started, from INFO commandstats. */
async function callsOf(cluster: LocalRedisCluster, command: string): Promise<number> {
  let calls = 0;
  for (const node of await cluster.masters()) {
    const redis = new Redis(`redis://${node}`);
    try {
      const stats = await redis.info('commandstats');
      calls += Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
    } finally {
      redis.disconnect();
    }
  }
  return calls;
}

describe('the projection on a Redis Cluster', () => {
  let cluster: LocalRedisCluster;
  let redis: Cluster;
  let projection: DecisionProjection;
  const prefix = `${uniqueName('cluster')}:`;

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1, log });
    redis = createCluster(cluster.nodesSetting);
    projection = new DecisionProjection(redis, { prefix, ttlSeconds: 3600 });
    // Connected, with the slots and their replicas known.
    await redis.ping();
  }, 60_000);
  afterAll(async () => {
    redis?.disconnect();
    await cluster?.stop();
  });

  it("gives an open stream its decision's new events through the shard channel, long before the hub's periodic read", async () => {
    // A periodic read a minute apart: only the announcement can bring the events within seconds.
    const hub = new EventHub(redis, prefix, { blockMs: 60_000 });
    const live = new LiveChannel(redis, prefix, { ttlSeconds: 60 });
    // Decisions whose keys live on every master.
    const ids: string[] = [];
    const masters = new Set<string>();
    for (let i = 0; masters.size < 3 && i < 100; i++) {
      const id = uniqueName('pubsub');
      const master = await cluster.masterFor(projection.eventsKey(id));
      if (!masters.has(master)) ids.push(id);
      masters.add(master);
    }
    expect(masters.size).toBe(3);
    const subs = ids.map((id) =>
      hub.subscribe([
        { key: projection.eventsKey(id), after: null },
        { key: live.key(id), after: null },
      ]),
    );
    try {
      // Past the reads the subscriptions start with.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const t0 = Date.now();
      for (const id of ids) {
        await projection.write(record(id, 1, t0), [{ ...started(0), n: 1 }]);
        const publisher = live.publisher({
          decisionId: id,
          phase: 'identifyTrigger',
          index: 0,
          attempt: 1,
          need: null,
        });
        publisher.output(1, 'The trigger is');
        await publisher.close();
      }
      for (const sub of subs) {
        const got: string[] = [];
        while (got.length < 2 && Date.now() - t0 < 10_000) {
          got.push(...(await sub.next(10_000)).map((e) => e.type));
        }
        expect(got).toEqual(['phase.started', 'phase.delta']);
      }
      expect(Date.now() - t0).toBeLessThan(10_000);
    } finally {
      for (const sub of subs) sub.close();
    }
  });

  it('lists decisions from every index bucket newest first, each once, page by page', async () => {
    const t0 = Date.parse('2026-06-01T00:00:00.000Z');
    // 60 decisions, some created at the same ms (ties are ordered by id).
    const ids = Array.from({ length: 60 }, (_, i) => `list-${String(i).padStart(2, '0')}`);
    await Promise.all(ids.map((id, i) => projection.write(record(id, 1, t0 + Math.floor(i / 3)))));
    const buckets = new Set(ids.map((id) => projection.keys.bucketOf(id)));
    expect(buckets.size).toBeGreaterThan(8);
    const listed: string[] = [];
    let cursor: { score: number; id: string } | undefined;
    for (let page = 0; page < 20; page++) {
      const { items, next } = await projection.list({
        limit: 7,
        cursor,
        createdAfter: t0 - 1,
        createdBefore: t0 + 1000,
      });
      listed.push(...items.map((item) => item.process_id));
      if (!next) break;
      cursor = next;
    }
    const expected = ids
      .map((id, i) => ({ id, ms: t0 + Math.floor(i / 3) }))
      .sort((a, b) => b.ms - a.ms || (a.id < b.id ? 1 : -1))
      .map((e) => e.id);
    expect(listed).toEqual(expected);
  });

  it('files a decision in its index bucket again when a retried write finds its record stored', async () => {
    const id = uniqueName('refile');
    const bucket = projection.keys.created(projection.keys.bucketOf(id));
    const first = record(id, 3, Date.now());
    expect(await projection.write(first)).toBe(true);
    expect(await redis.zscore(bucket, id)).not.toBeNull();
    // As if the index write was lost with its master.
    await redis.zrem(bucket, id);
    expect(await projection.write(first)).toBe(false);
    expect(await redis.zscore(bucket, id)).toBe(String(Date.parse(first.created_at)));
    // An older write leaves the index to the newer one.
    await redis.zrem(bucket, id);
    expect(await projection.write(record(id, 2, Date.now()))).toBe(false);
    expect(await redis.zscore(bucket, id)).toBeNull();
  });

  it("waits for the master's replica before a projection write returns", async () => {
    // A replica is listed for its slots (CLUSTER SLOTS) once it has replicated something, and the
    // client reads the list again every few seconds: the writes above gave each master some.
    await waitFor("every master's replica in the client's slot table", () =>
      Promise.resolve(
        [0, 8000, 16000].every((slot) => (redis.slots[slot]?.length ?? 0) > 1) || undefined,
      ),
    );
    const before = await callsOf(cluster, 'wait');
    const ids = Array.from({ length: 12 }, () => uniqueName('wait'));
    for (const id of ids) await projection.write(record(id, 1, Date.now()));
    expect((await callsOf(cluster, 'wait')) - before).toBe(ids.length);
  });
});
