import { Client, Connection, defaultGrpcRetryOptions } from '@temporalio/client';
import { afterAll, describe, expect, it } from 'vitest';
import {
  isUnreachable,
  retryOptionsWithin,
  retryWithinDeadline,
  TemporalCalls,
  TemporalUnreachable,
} from '../../src/temporal/deadlines';
import { freePort } from '../support/ports';

type StatusObject = Parameters<ReturnType<typeof defaultGrpcRetryOptions>['retryableDecider']>[1];

const UNAVAILABLE = {
  code: 14,
  details: 'connection refused',
  metadata: null,
} as unknown as StatusObject;

describe('Temporal calls with a deadline', () => {
  const connections: Connection[] = [];
  afterAll(async () => {
    await Promise.all(connections.map((c) => c.close().catch(() => undefined)));
  });

  it('ends a call to an address nothing listens on within its deadline, as TemporalUnreachable', async () => {
    // A port that refuses connections: the SDK's default retries would go on for about 20 s.
    const connection = Connection.lazy({
      address: `127.0.0.1:${await freePort()}`,
      interceptors: [retryWithinDeadline()],
    });
    connections.push(connection);
    const calls = new TemporalCalls(new Client({ connection }), { readMs: 1000 });
    const started = performance.now();
    const err = await calls
      .read(() => calls.client.workflow.getHandle('nobody').describe())
      .catch((e: unknown) => e);
    const ms = performance.now() - started;
    expect(err).toBeInstanceOf(TemporalUnreachable);
    expect(isUnreachable(err)).toBe(true);
    expect((err as Error).message).toBe('Temporal did not answer within 1000 ms');
    expect(ms).toBeLessThan(1500);
  });

  it('does not start a retry that would begin past the deadline, and retries as the SDK does before', () => {
    const sdk = defaultGrpcRetryOptions();
    // The SDK's own options retry the 6th attempt (a delay of about 2.4 s) whatever the deadline.
    expect(sdk.retryableDecider(6, UNAVAILABLE)).toBe(true);
    expect(retryOptionsWithin(Date.now() + 1000).retryableDecider(6, UNAVAILABLE)).toBe(false);
    // Well before the deadline, the same retry goes ahead, after the SDK's delay (2.4 s ± 20 %).
    const within = retryOptionsWithin(Date.now() + 60_000);
    expect(within.retryableDecider(6, UNAVAILABLE)).toBe(true);
    const delay = within.delayFunction(6, UNAVAILABLE);
    expect(delay).toBeGreaterThan(1900);
    expect(delay).toBeLessThan(2900);
    // Without a deadline, exactly the SDK's choice; never a retry of what it does not retry.
    expect(retryOptionsWithin(undefined).retryableDecider(10, UNAVAILABLE)).toBe(false);
    expect(retryOptionsWithin(undefined).retryableDecider(1, { ...UNAVAILABLE, code: 5 })).toBe(
      false,
    );
  });

  it('counts every gRPC status the SDK retries as unreachable (503 once a deadline stops the retries), and nothing it does not', async () => {
    const grpcError = (code: number, details: string) =>
      Object.assign(new Error(`${code} ${details}`), { code, details, metadata: {} });
    const transient = [
      grpcError(2, 'Stream removed'), // UNKNOWN
      grpcError(10, 'aborted'), // ABORTED
      grpcError(13, 'Received RST_STREAM with code 0'), // INTERNAL, a proxy's reset
      grpcError(13, 'Call ended without gRPC status'),
      grpcError(13, 'Received RST_STREAM with code 2 triggered by internal client error'),
      grpcError(14, 'connection refused'), // UNAVAILABLE
      grpcError(8, 'too many requests'), // RESOURCE_EXHAUSTED
      grpcError(4, 'deadline exceeded'), // DEADLINE_EXCEEDED: our own deadline
      grpcError(1, 'cancelled'), // CANCELLED: our own abort
    ];
    for (const err of transient) {
      expect(isUnreachable(err), err.message).toBe(true);
      // Wrapped, as the client's ServiceError wraps the call's error.
      expect(isUnreachable(new Error('wrapped', { cause: err })), err.message).toBe(true);
    }
    const refused = [
      grpcError(3, 'invalid query'), // INVALID_ARGUMENT
      grpcError(5, 'not found'),
      grpcError(6, 'already exists'),
      grpcError(7, 'permission denied'),
      grpcError(
        13,
        'Received RST_STREAM with code 2 triggered by internal client error: SSL alert number 40',
      ),
      grpcError(13, 'failed to decode'),
    ];
    for (const err of refused) expect(isUnreachable(err), err.message).toBe(false);

    // Through a request's calls: a 503 (TemporalUnreachable), not whatever the route would make of it.
    const connection = Connection.lazy({ address: '127.0.0.1:1' });
    connections.push(connection);
    const calls = new TemporalCalls(new Client({ connection }));
    await expect(calls.read(() => Promise.reject(transient[2]!))).rejects.toBeInstanceOf(
      TemporalUnreachable,
    );
  });

  it('passes on what Temporal refused (not unreachable) as it is', async () => {
    const refused = new Error('refused');
    const connection = Connection.lazy({ address: '127.0.0.1:1' });
    connections.push(connection);
    const calls = new TemporalCalls(new Client({ connection }));
    await expect(calls.write(() => Promise.reject(refused))).rejects.toBe(refused);
  });
});
