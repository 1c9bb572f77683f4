import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecisionRecord } from '../../src/domain/decision';
import { LIVE_EVENT_TYPES } from '../../src/domain/live';
import { PHASE_NAMES } from '../../src/domain/phases';
import type { ReconcileReport } from '../../src/operations/reconcile';
import { RedisKeys } from '../../src/projection/keys';
import { createCluster, type RedisClient } from '../../src/projection/redis-client';
import { DecisionProjection } from '../../src/projection/redis-projection';
import type { decisionWorkflow } from '../../src/workflows';
import { startRedisCluster, type LocalRedisCluster } from '../../tools/redis-cluster';
import { services, uniqueName, waitFor } from '../support/context';
import { freePort } from '../support/ports';
import { root, startRole, stopRole } from '../support/processes';
import { parseSse, type Frame } from '../support/streams';

// The real worker and API (their entry points) on a Redis Cluster of three masters, each with a
// replica (tools/redis-cluster.ts), with REDIS_CLUSTER_NODES beside a REDIS_URL they must not
// use. What Redis holds is read from the cluster's nodes; what a decision is, from Temporal.

type View = Omit<DecisionRecord, 'seq'>;
const json = { 'Content-Type': 'application/json' };
const log = (line: string) => process.stderr.write(`[redis cluster test] ${line}\n`);
const LIVE = new Set<string>(LIVE_EVENT_TYPES);

/** pino's levels: warn and above. */
function warningsOf(output: string, since: number): string[] {
  return output
    .split('\n')
    .filter((line) => /"level":(40|50|60)/.test(line))
    .filter((line) => Number(/"time":(\d+)/.exec(line)?.[1] ?? 0) >= since);
}

/** Warnings grouped by message and error: count, and the first and last seconds after `since`. */
function summarize(lines: string[], since: number): string[] {
  const groups = new Map<string, { count: number; first: number; last: number }>();
  for (const line of lines) {
    const entry = JSON.parse(line) as {
      time: number;
      msg?: string;
      err?: unknown;
      error?: unknown;
    };
    const given = entry.err ?? entry.error;
    const err =
      typeof given === 'string'
        ? given
        : ((given as { message?: string } | undefined)?.message ?? '');
    const key = `${entry.msg ?? ''} (${err.slice(0, 120)})`;
    const group = groups.get(key) ?? { count: 0, first: entry.time, last: entry.time };
    group.count += 1;
    group.last = entry.time;
    groups.set(key, group);
  }
  const at = (ms: number) => `${((ms - since) / 1000).toFixed(1)} s`;
  return [...groups].map(
    ([key, g]) => `${g.count} x ${key}, from ${at(g.first)} to ${at(g.last)} after the kill`,
  );
}

describe('decisions on a Redis Cluster (the worker and the API with REDIS_CLUSTER_NODES)', () => {
  let cluster: LocalRedisCluster;
  let redis: RedisClient;
  let projection: DecisionProjection;
  let keys: RedisKeys;
  let connection: Connection;
  let client: Client;
  let baseUrl: string;
  let api: ReturnType<typeof startRole>;
  let worker: ReturnType<typeof startRole>;
  const prefix = `${uniqueName('cluster')}:`;
  const taskQueue = uniqueName('redis-cluster');
  const ids: string[] = [];
  let roleEnv: NodeJS.ProcessEnv;

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1, log });
    redis = createCluster(cluster.nodesSetting, 2000);
    keys = new RedisKeys(prefix, true);
    projection = new DecisionProjection(redis, { prefix, ttlSeconds: 3600 });
    connection = await Connection.connect({ address: services.temporalAddress });
    client = new Client({ connection });
    const port = await freePort();
    baseUrl = `http://127.0.0.1:${port}`;
    roleEnv = {
      TEMPORAL_ADDRESS: services.temporalAddress,
      TEMPORAL_TASK_QUEUE: taskQueue,
      // The suite's single Redis, which this test checks: a role that used REDIS_URL despite
      // REDIS_CLUSTER_NODES would write there.
      REDIS_URL: services.redisUrl,
      REDIS_CLUSTER_NODES: cluster.nodesSetting,
      REDIS_KEY_PREFIX: prefix,
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'json',
    };
    worker = startRole('src/main/worker.ts', {
      ...roleEnv,
      WORKFLOW_BUNDLE_PATH: services.workflowBundlePath,
      // Each model call takes this long, streamed in pieces: decisions are running for seconds.
      LLM_OFFLINE_DELAY_MS: '400',
      WORKER_HTTP_PORT: String(await freePort()),
      WORKER_SDK_METRICS_ADDRESS: `127.0.0.1:${await freePort()}`,
    });
    api = startRole('src/main/api.ts', {
      ...roleEnv,
      PORT: String(port),
      AUTH_DISABLED: 'true',
      // Limited (the limiter counts on the cluster too), but above what this test's polls need.
      RATE_LIMIT_PER_MINUTE: '100000',
    });
    await waitFor(
      'the worker to poll',
      () => (worker.output().includes('Worker polling') ? true : undefined),
      90_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nworker output:\n${worker.output().slice(-3000)}`);
    });
    await waitFor(
      'the API',
      async () => ((await fetch(`${baseUrl}/health`)).ok ? true : undefined),
      60_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nAPI output:\n${api.output().slice(-3000)}`);
    });
  }, 180_000);

  afterAll(async () => {
    await Promise.all([api, worker].filter(Boolean).map((r) => stopRole(r.child)));
    redis?.disconnect();
    await connection?.close();
    await cluster?.stop();
  });

  const create = async (query: string): Promise<string> => {
    const res = await fetch(`${baseUrl}/decisions`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ query }),
    });
    expect(res.status, await res.clone().text()).toBe(202);
    const id = ((await res.json()) as View).process_id;
    ids.push(id);
    return id;
  };
  const read = async (id: string): Promise<View> => {
    const res = await fetch(`${baseUrl}/decisions/${id}`);
    expect(res.status, await res.clone().text()).toBe(200);
    return (await res.json()) as View;
  };
  const waitStatus = (id: string, status: string, timeoutMs = 90_000) =>
    waitFor(
      `${id} to be ${status}`,
      async () => {
        const view = await read(id);
        return view.status === status ? view : undefined;
      },
      timeoutMs,
    );
  /** The decision as Temporal holds it: the run's status and the record it returned. */
  const fromTemporal = async (id: string) => {
    const handle = client.workflow.getHandle<typeof decisionWorkflow>(id);
    const { status } = await handle.describe();
    const { seq: _seq, ...record } = await handle.result();
    return { status: status.name, record };
  };
  /** The whole event stream (it ends after the terminal event), its frames parsed. */
  const stream = async (id: string, lastEventId?: string) => {
    const res = await fetch(`${baseUrl}/decisions/${id}/events`, {
      headers: lastEventId ? { 'Last-Event-ID': lastEventId } : {},
      signal: AbortSignal.timeout(120_000),
    });
    return { status: res.status, frames: parseSse(await res.text()) };
  };
  /** The decision's durable events as its Redis stream holds them on the cluster. */
  const storedEvents = async (id: string) =>
    (await redis.xrange(keys.events(id), '-', '+')).map(([entryId, fields]) => ({
      id: entryId,
      type: fields[fields.indexOf('type') + 1],
    }));
  /**
   * What a decision's stored events say happened, in order: each phase started and completed
   * once, in the order of the phases, and the decision completed last. A write lost in a
   * failover whose events did not ride along with a later one leaves a gap here.
   */
  const expectWholeStory = async (id: string) => {
    const events = await redis.xrange(keys.events(id), '-', '+');
    const story = events.map(([, fields]) => {
      const type = fields[fields.indexOf('type') + 1]!;
      const data = JSON.parse(fields[fields.indexOf('data') + 1] ?? 'null') as {
        phase?: string;
      } | null;
      return { type, phase: data?.phase };
    });
    const phasesOf = (type: string) => story.filter((e) => e.type === type).map((e) => e.phase);
    expect(phasesOf('phase.started'), `${id}'s phases started`).toEqual(PHASE_NAMES);
    expect(phasesOf('phase.completed'), `${id}'s phases completed`).toEqual(PHASE_NAMES);
    expect(story.filter((e) => e.type === 'decision.completed')).toHaveLength(1);
    expect(story.at(-1)?.type).toBe('decision.completed');
  };
  /** The durable events among SSE frames: the durable part of each id, and the type. */
  const durable = (frames: Frame[]) =>
    frames
      .filter((f) => !LIVE.has(f.event))
      .map((f) => ({ id: f.id.split('_')[0], type: f.event }));

  it('completes decisions created over the API; their records and results read back as Temporal holds them', async () => {
    const created = await Promise.all(
      Array.from({ length: 6 }, (_, i) => create(`Should we shard the projection, take ${i}?`)),
    );
    for (const id of created) {
      const view = await waitStatus(id, 'completed');
      const truth = await fromTemporal(id);
      expect(truth.status).toBe('COMPLETED');
      expect(view).toEqual(truth.record);
      const result = await fetch(`${baseUrl}/decisions/${id}/result`);
      expect(result.status).toBe(200);
      expect(await result.json()).toEqual(truth.record.result);
      // The projection itself holds it (the API would otherwise have gone to Temporal).
      expect(await projection.get(id)).toMatchObject(truth.record);
    }
    const list = (await (await fetch(`${baseUrl}/decisions?limit=100`)).json()) as {
      items: View[];
      source?: string;
    };
    expect(list.source).toBeUndefined();
    expect(list.items.map((i) => i.process_id)).toEqual(expect.arrayContaining(created));
  });

  it("plays a finished decision's event stream back whole, and a resumed stream goes on with no gap or repeat", async () => {
    const id = ids[0]!;
    const full = await stream(id);
    expect(full.status).toBe(200);
    // The durable events are the decision's Redis stream, in order, each once.
    expect(durable(full.frames)).toEqual(await storedEvents(id));
    await expectWholeStory(id);
    const types = full.frames.map((f) => f.event);
    expect(new Set(full.frames.map((f) => f.id)).size).toBe(full.frames.length);
    // The offline model streams its answers: the live events are on the cluster too.
    expect(types).toContain('phase.delta');

    const cuts = [1, Math.floor(full.frames.length / 3), full.frames.length - 2];
    const live = full.frames.findIndex((f) => f.event === 'phase.delta');
    cuts.push(live);
    for (const cut of cuts) {
      const resumed = await stream(id, full.frames[cut]!.id);
      expect(resumed.status).toBe(200);
      expect(resumed.frames, `resumed after frame ${cut}`).toEqual(full.frames.slice(cut + 1));
    }
    expect((await stream(id, full.frames.at(-1)!.id)).status).toBe(204);
  });

  it("keeps each decision's keys in one slot, and spreads decisions over the masters", async () => {
    const byMaster = await cluster.keysByMaster(`${prefix}decision:*`);
    const masterOf = new Map<string, Set<string>>();
    const keysOf = new Map<string, string[]>();
    for (const [master, found] of byMaster) {
      for (const key of found) {
        const id = /decision:\{([^}]+)\}/.exec(key)?.[1];
        expect(id, `${key} carries its decision's id as hash tag`).toBeDefined();
        masterOf.set(id!, (masterOf.get(id!) ?? new Set()).add(master));
        keysOf.set(id!, [...(keysOf.get(id!) ?? []), key]);
      }
    }
    const finished = ids.slice(0, 6);
    for (const id of finished) {
      const own = keysOf.get(id) ?? [];
      // Record, result and event stream at least.
      expect(own).toEqual(
        expect.arrayContaining([keys.record(id), keys.result(id), keys.events(id)]),
      );
      const slots = new Set(await Promise.all(own.map((k) => cluster.slotOf(k))));
      expect(slots).toEqual(new Set([await cluster.slotOf(id)]));
      expect(masterOf.get(id)?.size).toBe(1);
    }
    // Six decisions on three masters: all on one would be (1/3)^5 by chance.
    expect(new Set(finished.map((id) => [...masterOf.get(id)!][0])).size).toBeGreaterThan(1);

    // Nothing went to the single Redis REDIS_URL names.
    const single = new Redis(services.redisUrl, { maxRetriesPerRequest: 1 });
    try {
      expect(await single.keys(`${prefix}*`)).toEqual([]);
    } finally {
      single.disconnect();
    }
  });

  it("finishes running decisions when their keys' master dies, and after reconcile every record matches Temporal's", async () => {
    const running = await Promise.all(
      Array.from({ length: 6 }, (_, i) => create(`Should we survive a failover, take ${i}?`)),
    );
    // Each has written its record and is at work on a phase.
    for (const id of running) {
      await waitFor(`${id} to run a phase`, async () => {
        const view = await read(id);
        return view.status === 'running' && view.current_phase ? true : undefined;
      });
    }
    // Streams open while they run, to be read to their end across the failover.
    const streams = running.map((id) => stream(id));
    const victim = await cluster.masterFor(keys.record(running[0]!));
    const onVictim = (
      await Promise.all(running.map(async (id) => [id, await cluster.masterFor(keys.record(id))]))
    )
      .filter(([, master]) => master === victim)
      .map(([id]) => id!);
    const stillRunning = (await Promise.all(running.map(read))).filter(
      (v) => v.status === 'running',
    );
    log(
      `killing ${victim}, master of ${onVictim.length} of ${running.length} running decisions ` +
        `(${stillRunning.length} still running)`,
    );
    const killedAt = Date.now();
    const { promoted, failoverMs } = await cluster.killMaster(victim);
    log(`${promoted} took over from ${victim} in ${failoverMs} ms`);

    for (const id of running) await waitStatus(id, 'completed', 120_000);
    log(`all ${running.length} completed ${Date.now() - killedAt} ms after the kill`);
    // The decisions on the dead master's slots ran phases after it died.
    for (const id of onVictim) {
      const history = await client.workflow.getHandle(id).fetchHistory();
      const after = (history.events ?? []).filter(
        (e) =>
          e.activityTaskCompletedEventAttributes &&
          Number(e.eventTime?.seconds ?? 0) * 1000 > killedAt,
      );
      expect(after.length, `${id}'s phases after the kill`).toBeGreaterThan(0);
    }

    const streamed = await Promise.all(streams);
    for (const [i, id] of running.entries()) {
      await expectWholeStory(id);
      const { status, frames } = streamed[i]!;
      expect(status).toBe(200);
      expect(frames.at(-1)?.event, `${id}'s stream ends with its end`).toBe('decision.completed');
      expect(durable(frames), `${id}'s stream across the failover`).toEqual(await storedEvents(id));
    }

    // What the projection held before reconcile, for the record of what the failover cost.
    const before = await Promise.all(ids.map((id) => projection.get(id)));
    const missing = ids.filter((_, i) => before[i] === null);
    log(`before reconcile the projection lacked ${missing.length} of ${ids.length} decisions`);

    const reconciled = spawnSync(
      resolve(root, 'node_modules/.bin/tsx'),
      ['src/cli/decisions.ts', 'reconcile', '--since', '1h', '--json'],
      {
        cwd: root,
        env: { ...process.env, ...roleEnv, LOG_LEVEL: 'warn' },
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
    expect(reconciled.status, reconciled.stderr).toBe(0);
    const report = JSON.parse(reconciled.stdout) as ReconcileReport;
    log(
      `reconcile: checked ${report.checked}, restored ${report.restored.length}, ` +
        `updated ${report.updated.length}, unchanged ${report.unchanged}, failed ${report.failed.length}`,
    );
    expect(report.failed).toEqual([]);
    expect(report.checked).toBeGreaterThanOrEqual(ids.length);

    for (const id of ids) {
      const truth = await fromTemporal(id);
      expect(truth.status).toBe('COMPLETED');
      expect(await read(id)).toEqual(truth.record);
      expect(await projection.get(id), `${id} in the projection`).toMatchObject(truth.record);
    }
    const list = (await (await fetch(`${baseUrl}/decisions?limit=100`)).json()) as {
      items: View[];
      source?: string;
    };
    expect(list.source).toBeUndefined();
    expect(list.items.map((i) => i.process_id).sort()).toEqual(
      expect.arrayContaining([...ids].sort()),
    );
    expect(list.items.filter((i) => ids.includes(i.process_id)).map((i) => i.status)).toEqual(
      ids.map(() => 'completed'),
    );

    // What the roles logged about it: each kind of warning once, with its count and when.
    for (const [role, output] of [
      ['worker', worker.output()],
      ['api', api.output()],
    ] as const) {
      for (const line of summarize(warningsOf(output, killedAt), killedAt)) log(`${role}: ${line}`);
    }
  }, 240_000);
});
