import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { initialRecord, type DecisionRecord } from '../../src/domain/decision';
import { deliveryRank, pendingDelivery, type DeliveryState } from '../../src/domain/webhook';
import { CANNED } from '../support/canned-outputs';
import { testProjection } from '../support/context';

function record(id: string, seq: number, patch: Partial<DecisionRecord> = {}): DecisionRecord {
  return {
    ...initialRecord(id, { query: 'Should we?' }, '2026-01-01T00:00:00.000Z'),
    seq,
    ...patch,
  };
}

const completed = (id: string, seq: number, completedAt = new Date().toISOString()) =>
  record(id, seq, {
    status: 'completed',
    completed_at: completedAt,
    result: {
      query: 'Should we?',
      decision: CANNED.compileResult,
      phases: CANNED,
      usage: { model_calls: 10, input_tokens: 100, output_tokens: 50, latency_ms: 5 },
    },
  });

describe('DecisionProjection (real Redis)', () => {
  let t: ReturnType<typeof testProjection>;
  beforeEach(() => {
    t = testProjection(3600);
  });
  afterEach(() => t.cleanup());

  describe('reconcile copies and the workflow writes of the same state', () => {
    const step = { phase: 'defineScope' as const, title: 'Scope definition', index: 2 };
    const error = { phase: 'defineScope' as const, type: 'Boom', message: 'boom' };
    const started = { type: 'phase.started' as const, data: step };
    const running = (seq: number) =>
      record('r1', seq, { status: 'running', current_phase: 'defineScope' });
    const kinds = async () => (await t.projection.readEvents('r1', null)).map((e) => e.type);

    it("applies the workflow's write over reconcile's copy of the same seq, events and all", async () => {
      expect(await t.projection.write(running(7), [], 'reconcile')).toBe(true);
      expect(await t.projection.write(running(7), [started])).toBe(true);
      expect(await kinds()).toEqual(['phase.started']);
    });

    it('appends each numbered event once, though a later write carries it again', async () => {
      // The first write timed out for the workflow but reached Redis: its events ride along
      // with the next write, which must not append them twice.
      const e1 = { ...started, n: 1 };
      const e2 = {
        type: 'phase.completed' as const,
        data: { ...step, duration_ms: 1, reused_from: null, output: {} },
        n: 2,
      };
      expect(await t.projection.write(running(7), [e1])).toBe(true);
      expect(await t.projection.write(running(8), [e1, e2])).toBe(true);
      expect(await kinds()).toEqual(['phase.started', 'phase.completed']);
    });

    it("starts a retried run's story afresh, though the run ends as the old one did", async () => {
      const failed = (seq: number) =>
        record('r1', seq, { status: 'failed', completed_at: new Date().toISOString() });
      const end = {
        type: 'decision.failed' as const,
        data: { status: 'failed' as const, error },
        n: 3,
      };
      expect(
        await t.projection.write(running(7), [{ ...started, n: 1 }], 'workflow', 'run-a'),
      ).toBe(true);
      expect(await t.projection.write(failed(8), [end], 'workflow', 'run-a')).toBe(true);
      // The retry replays up to its reset point and numbers its events from there (2, 3).
      const again = [
        { type: 'phase.failed' as const, data: { ...step, error }, n: 2 },
        { ...end, n: 3 },
      ];
      expect(await t.projection.write(failed(9), again, 'workflow', 'run-b')).toBe(true);
      expect(await kinds()).toEqual(['phase.failed', 'decision.failed']);
    });

    it("never lets reconcile's copy replace the workflow's write of the same seq", async () => {
      expect(await t.projection.write(running(7), [started])).toBe(true);
      expect(await t.projection.write(running(7), [], 'reconcile')).toBe(false);
      // Nor does a retried workflow write of the same seq append its events twice.
      expect(await t.projection.write(running(7), [started])).toBe(false);
      expect(await kinds()).toEqual(['phase.started']);
    });
  });

  it('round-trips a record, with the result stored apart and indexed by creation time', async () => {
    const r = completed('d1', 10);
    expect(await t.projection.write(r)).toBe(true);
    expect(await t.projection.get('d1')).toEqual(r);
    expect(JSON.parse((await t.redis.get(t.projection.resultKey('d1')))!)).toEqual(r.result);
    expect(await t.redis.hget(t.projection.recordKey('d1'), 'result')).toBeNull();
    expect(await t.redis.zscore(t.projection.keys.created(0), 'd1')).toBe(
      String(Date.parse(r.created_at)),
    );
  });

  it('reads a finished record once, then only its seq: a reset or an expiry is still seen', async () => {
    await t.projection.write(completed('d9', 2));
    const first = await t.projection.get('d9');
    // Changed behind its back without a new seq: the kept record answers, so it was not re-read.
    await t.redis.hset(t.projection.recordKey('d9'), 'query', 'Changed?');
    const again = await t.projection.get('d9');
    expect(again).toBe(first);
    expect(again?.query).toBe('Should we?');
    expect(Object.isFrozen(again?.result?.phases)).toBe(true);
    // A reset run's write moves the seq: read afresh.
    await t.projection.write(record('d9', 3, { status: 'running', query: 'Again?' }));
    expect(await t.projection.get('d9')).toMatchObject({ status: 'running', query: 'Again?' });
    // An expired record is gone, kept copy or not.
    await t.projection.write(completed('d9', 4));
    await t.projection.get('d9');
    await t.redis.del(t.projection.recordKey('d9'));
    expect(await t.projection.get('d9')).toBeNull();
  });

  describe('webhook deliveries', () => {
    const withWebhook = (seq: number) => ({
      ...completed('w1', seq),
      webhook: {
        url: 'https://example.com/hook',
        events: ['decision.completed' as const],
        deliveries: [pendingDelivery('msg_w1_12_1', 'decision.completed')],
      },
    });
    // An attempt's report, its attempt scheduled at `at` (ms).
    const report = (attempts: number, state: DeliveryState, at = attempts * 1000) =>
      [
        {
          ...pendingDelivery('msg_w1_12_1', 'decision.completed'),
          state,
          attempts,
          last_status: state === 'delivered' ? 200 : 500,
        },
        deliveryRank(at, state),
      ] as const;
    const write = (r: ReturnType<typeof report>) => t.projection.writeDelivery('w1', ...r);
    const delivery = async () => (await t.projection.get('w1'))?.webhook?.deliveries[0];

    it("shows each delivery's latest attempt, also on a finished record read before", async () => {
      await t.projection.write(withWebhook(5));
      expect(await delivery()).toMatchObject({ state: 'pending', attempts: 0 });
      expect(await write(report(1, 'retrying'))).toBe(true);
      expect(await delivery()).toMatchObject({ state: 'retrying', attempts: 1, last_status: 500 });
      expect(await write(report(2, 'delivered'))).toBe(true);
      expect(await delivery()).toMatchObject({ state: 'delivered', attempts: 2 });
    });

    it('ignores a late report of an earlier attempt', async () => {
      await t.projection.write(withWebhook(5));
      await write(report(2, 'delivered'));
      expect(await write(report(1, 'retrying'))).toBe(false);
      expect(await delivery()).toMatchObject({ state: 'delivered', attempts: 2 });
    });

    it('takes a delivery reset to run again, though its attempts count from 1 again', async () => {
      await t.projection.write(withWebhook(5));
      await write(report(5, 'failed'));
      expect(await write(report(1, 'delivered', 60_000))).toBe(true);
      expect(await delivery()).toMatchObject({ state: 'delivered', attempts: 1 });
    });

    it('writes nothing for a decision whose record has expired', async () => {
      expect(await write(report(1, 'retrying'))).toBe(false);
      expect(await t.redis.exists(t.projection.recordKey('w1'))).toBe(0);
    });
  });

  it('returns null for an id it does not have', async () => {
    expect(await t.projection.get('missing')).toBeNull();
  });

  it('ignores a stale or repeated write and applies a newer one', async () => {
    await t.projection.write(record('d2', 5, { status: 'running', current_phase: 'defineScope' }));
    expect(await t.projection.write(record('d2', 4, { status: 'running' }))).toBe(false);
    expect(await t.projection.write(record('d2', 5, { status: 'failed' }))).toBe(false);
    expect(await t.projection.get('d2')).toMatchObject({
      seq: 5,
      status: 'running',
      current_phase: 'defineScope',
    });
    expect(await t.projection.write(completed('d2', 6))).toBe(true);
    expect((await t.projection.get('d2'))?.status).toBe('completed');
  });

  it('keeps running decisions forever and finished ones for the TTL', async () => {
    await t.projection.write(record('d3', 1, { status: 'running' }));
    expect(await t.redis.ttl(t.projection.recordKey('d3'))).toBe(-1);
    await t.projection.write(completed('d3', 2));
    const ttl = await t.redis.ttl(t.projection.recordKey('d3'));
    expect(ttl).toBeGreaterThan(3500);
    expect(await t.redis.ttl(t.projection.resultKey('d3'))).toBeGreaterThan(3500);
    expect(await t.redis.zscore(t.projection.keys.completed(0), 'd3')).not.toBeNull();
  });

  it('un-finishes a decision that runs again (a reset): no TTL, no stale result', async () => {
    await t.projection.write(completed('d4', 2));
    await t.projection.write(record('d4', 3, { status: 'running' }));
    expect(await t.redis.ttl(t.projection.recordKey('d4'))).toBe(-1);
    expect(await t.redis.exists(t.projection.resultKey('d4'))).toBe(0);
    expect(await t.redis.zscore(t.projection.keys.completed(0), 'd4')).toBeNull();
    expect((await t.projection.get('d4'))?.result).toBeNull();
  });

  it('drops index entries of decisions whose records have expired', async () => {
    const longAgo = new Date(Date.now() - 2 * 3600 * 1000).toISOString();
    await t.projection.write(completed('old', 1, longAgo));
    await t.projection.write(completed('new', 1));
    expect(await t.redis.zrange(t.projection.keys.completed(0), 0, -1)).toEqual(['new']);
    expect(await t.redis.zrange(t.projection.keys.created(0), 0, -1)).not.toContain('old');
  });
});
