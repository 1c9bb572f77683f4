import { describe, expect, it } from 'vitest';
import { hashTag, RedisKeys } from '../../src/projection/keys';
import { clusterNodes } from '../../src/projection/redis-client';

describe('Redis keys on one Redis and on a cluster', () => {
  it('keeps the names a single Redis has always had, so stored data is found after an upgrade', () => {
    const keys = new RedisKeys('decisions:', false);
    expect([
      keys.record('d1'),
      keys.result('d1'),
      keys.events('d1'),
      keys.live('d1'),
      keys.created(keys.bucketOf('d1')),
      keys.completed(keys.bucketOf('d1')),
      keys.owner('alice'),
    ]).toEqual([
      'decisions:decision:d1',
      'decisions:decision:d1:result',
      'decisions:decision:d1:events',
      'decisions:decision:d1:live',
      'decisions:index:created',
      'decisions:index:completed',
      'decisions:index:owner:alice',
    ]);
  });

  it("gives all of one decision's keys its id as hash tag on a cluster", () => {
    const keys = new RedisKeys('decisions:', true);
    const id = '7d7c3a8e-2f6b-4f59-9a53-0f4f9c1f3b11';
    const own = [keys.record(id), keys.result(id), keys.events(id), keys.live(id)];
    expect(new Set(own.map(hashTag))).toEqual(new Set([id]));
  });

  it("keeps a bucket's created and completed indexes in one slot, and spreads ids over every bucket", () => {
    const keys = new RedisKeys('p:', true);
    const counts = new Array<number>(keys.indexBuckets).fill(0);
    for (let i = 0; i < 3200; i++) counts[keys.bucketOf(`decision-${i}`)]!++;
    // 200 a bucket on average; none is empty or holds twice its share.
    expect(Math.min(...counts)).toBeGreaterThan(100);
    expect(Math.max(...counts)).toBeLessThan(400);
    for (let b = 0; b < keys.indexBuckets; b++) {
      expect(hashTag(keys.created(b))).toBe(hashTag(keys.completed(b)));
    }
    expect(new Set(counts.map((_, b) => hashTag(keys.created(b)))).size).toBe(keys.indexBuckets);
  });

  it('reads the hash tag as Redis Cluster does', () => {
    expect(hashTag('a{b}c')).toBe('b');
    expect(hashTag('a{}c{d}')).toBe('a{}c{d}');
    expect(hashTag('no-tag')).toBe('no-tag');
    expect(hashTag('{x}{y}')).toBe('x');
  });
});

describe('REDIS_CLUSTER_NODES', () => {
  it('takes host:port entries and URLs, credentials and TLS from the first URL', () => {
    expect(clusterNodes('10.0.0.1:7000,redis-b:7001')).toEqual({
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: 'redis-b', port: 7001 },
      ],
      options: {},
    });
    expect(clusterNodes('rediss://app:s%3Acret@redis-a:6380,redis-b:6380')).toEqual({
      nodes: [
        { host: 'redis-a', port: 6380 },
        { host: 'redis-b', port: 6380 },
      ],
      options: { username: 'app', password: 's:cret', tls: {} },
    });
  });
});
