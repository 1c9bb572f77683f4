import type { Client } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { DecisionService } from '../../src/api/decision-service';
import { Conflict, Unavailable } from '../../src/api/errors';
import { initialRecord, type DecisionRecord } from '../../src/domain/decision';

const ADMIN = { principal: 'ops', admin: true };

/** gRPC's UNAVAILABLE, as the client's calls fail while Temporal cannot be reached. */
const unavailable = () =>
  Object.assign(new Error('14 UNAVAILABLE: No connection established'), {
    code: 14,
    details: 'No connection established',
    metadata: {},
  });

/**
 * A service whose Temporal cannot be reached (every call fails at once, as a refused connection
 * does) and whose projection holds `record`, with `awaitingRun` when a retry's run has not
 * written yet. Counts the cancellations that reached the client.
 */
function withoutTemporal(record: DecisionRecord, awaitingRun: string | null = null) {
  const cancels: string[] = [];
  const client = {
    connection: { withDeadline: <T>(_deadline: number, fn: () => Promise<T>) => fn() },
    withAbortSignal: <T>(_signal: AbortSignal, fn: () => Promise<T>) => fn(),
    workflow: {
      getHandle: (id: string) => ({
        describe: () => Promise.reject(unavailable()),
        result: () => Promise.reject(unavailable()),
        fetchHistory: () => Promise.reject(unavailable()),
        cancel: () => {
          cancels.push(id);
          return Promise.reject(unavailable());
        },
      }),
    },
  };
  const projection = {
    entry: () => Promise.resolve({ record, awaitingRun }),
    list: () => Promise.reject(new Error('not used')),
    write: () => Promise.resolve(true),
    expectRun: () => Promise.resolve(true),
  };
  const service = new DecisionService({
    client: client as unknown as Client,
    projection,
    taskQueue: 'decisions',
  });
  return { service, cancels };
}

function record(id: string, status: DecisionRecord['status']): DecisionRecord {
  const now = new Date().toISOString();
  return { ...initialRecord(id, { query: 'Should we?' }, now), status, updated_at: now };
}

describe('a decision whose record Temporal cannot confirm', () => {
  it('is waited for as stale, not as fresh, when Temporal cannot say how it is', async () => {
    // Fresh enough to be served without asking Temporal; the wait's own check cannot reach it.
    const { service } = withoutTemporal(record('d1', 'running'));
    const { record: got, finished } = await service.wait({
      id: 'd1',
      caller: ADMIN,
      timeoutMs: 10_000,
    });
    expect(finished).toBe(false);
    expect(got).toMatchObject({ process_id: 'd1', status: 'running', stale: true });
  });

  it("is not taken as finished for an earlier run's end: wait does not report it finished", async () => {
    // A retry started a run that has not written: the projection still holds the old run's end.
    const { service } = withoutTemporal(record('d2', 'failed'), 'run-of-the-retry');
    const { record: got, finished } = await service.wait({
      id: 'd2',
      caller: ADMIN,
      timeoutMs: 10_000,
    });
    expect(finished).toBe(false);
    expect(got).toMatchObject({ process_id: 'd2', stale: true });
  });

  it("answers a cancel 503 (Retry-After), not 409 'already failed', for an earlier run's end", async () => {
    const { service, cancels } = withoutTemporal(record('d3', 'failed'), 'run-of-the-retry');
    const err = await service.cancel({ id: 'd3', caller: ADMIN }).catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(Conflict);
    expect(err).toBeInstanceOf(Unavailable);
    expect((err as Unavailable).retryAfterSeconds).toBeGreaterThan(0);
    expect((err as Error).message).toContain('send the cancellation again');
    // Nothing was asked of Temporal that it might have done: the caller sends it again.
    expect(cancels).toEqual([]);
  });

  it('is answered 409 when its end is confirmed (Temporal was not needed)', async () => {
    const { service } = withoutTemporal(record('d4', 'failed'));
    await expect(service.cancel({ id: 'd4', caller: ADMIN })).rejects.toBeInstanceOf(Conflict);
  });
});
