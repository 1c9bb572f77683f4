import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StreamSlots } from '../../src/api/stream-slots';
import { createCluster } from '../../src/projection/redis-client';
import { startRedisCluster, type LocalRedisCluster } from '../../tools/redis-cluster';
import { uniqueName, waitFor } from '../support/context';

const log = (line: string) => process.stderr.write(`[stream slots on a cluster] ${line}\n`);

describe('event stream slots on a Redis Cluster', () => {
  let cluster: LocalRedisCluster;
  const clients: Cluster[] = [];
  const prefix = `${uniqueName('slots')}:`;

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 0, log });
  }, 60_000);
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await cluster?.stop();
  });

  /** An API process's slots: a cluster client of its own, as the API makes it. */
  const processSlots = (errors: unknown[]) => {
    const client = createCluster(cluster.nodesSetting);
    clients.push(client);
    return new StreamSlots(client, prefix, { onError: (err) => errors.push(err) });
  };

  it("holds each principal's cap across two processes, whichever master serves its key", async () => {
    const errors: unknown[] = [];
    const a = processSlots(errors);
    const b = processSlots(errors);
    // Principals whose keys land on every master.
    const byMaster = new Map<string, string>();
    for (let i = 0; byMaster.size < 3 && i < 200; i++) {
      const principal = `tenant-${i}`;
      const master = await cluster.masterFor(a.keyOf(principal));
      if (!byMaster.has(master)) byMaster.set(master, principal);
    }
    expect(byMaster.size).toBe(3);
    for (const [master, principal] of byMaster) {
      const taken = [await a.tryTake(principal, 2), await b.tryTake(principal, 2)];
      expect(taken.every((r) => typeof r === 'function')).toBe(true);
      expect(await a.tryTake(principal, 2)).toBeNull();
      expect(await b.hasRoom(principal, 2)).toBe(false);
      // The leases are where the cluster says the key lives: one key, on that master.
      const found = (await cluster.keysByMaster(`${prefix}*`)).get(master) ?? [];
      expect(found).toContain(a.keyOf(principal));
      taken[0]!();
      await waitFor('the release to reach the master', async () =>
        (await b.hasRoom(principal, 2)) ? true : undefined,
      );
      const again = await b.tryTake(principal, 2);
      expect(again).not.toBeNull();
      again!();
      taken[1]!();
    }
    await Promise.all([a.close(), b.close()]);
    // No command was refused (a script across slots would be, with CROSSSLOT).
    expect(errors).toEqual([]);
    const left = [...(await cluster.keysByMaster(`${prefix}*`)).values()].flat();
    expect(left).toEqual([]);
  });
});
