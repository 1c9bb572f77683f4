import {
  defaultGrpcRetryOptions,
  isGrpcServiceError,
  isRetryableError,
  makeGrpcRetryInterceptor,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  type Client,
  type ConnectionOptions,
  type GrpcRetryOptions,
} from '@temporalio/client';

type Interceptor = NonNullable<ConnectionOptions['interceptors']>[number];

/** How long the API gives Temporal to answer, in ms. */
export interface TemporalDeadlines {
  /** A describe, a history, a query of visibility. */
  readMs: number;
  /** A start, a cancel, a reset: everything a request asks Temporal to do. */
  writeMs: number;
}

export const DEFAULT_DEADLINES: TemporalDeadlines = { readMs: 2000, writeMs: 5000 };

/** Temporal did not answer within the deadline, or could not be reached at all. */
export class TemporalUnreachable extends Error {
  override name = 'TemporalUnreachable';
}

// What says "Temporal is not there just now" rather than "Temporal refused this request": what
// the SDK itself retries (UNAVAILABLE, RESOURCE_EXHAUSTED, UNKNOWN, ABORTED, a reset HTTP/2
// stream…), which a deadline may have stopped retrying, and CANCELLED (our own abort) and
// DEADLINE_EXCEEDED, which the deadline itself ends a call with.
const DEADLINE_CODES = new Set<number>([1, 4]);

/** True when the error (or one it wraps) says Temporal could not be reached in time. */
export function isUnreachable(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof TemporalUnreachable || e instanceof WorkflowUpdateRPCTimeoutOrCancelledError) {
      return true;
    }
    if (isGrpcServiceError(e) && (DEADLINE_CODES.has(e.code) || isRetryableError(e))) {
      return true;
    }
  }
  return false;
}

/**
 * Runs every Temporal call a request makes under one deadline (all calls in `fn`'s scope share
 * it, through the connection's call context), and turns a Temporal that did not answer into
 * TemporalUnreachable. Other errors (not found, already started) pass through as they are.
 */
export class TemporalCalls {
  readonly deadlines: TemporalDeadlines;

  constructor(
    readonly client: Client,
    deadlines: Partial<TemporalDeadlines> = {},
  ) {
    this.deadlines = { ...DEFAULT_DEADLINES, ...deadlines };
  }

  read<T>(fn: () => Promise<T>): Promise<T> {
    return this.within(this.deadlines.readMs, fn);
  }

  write<T>(fn: () => Promise<T>): Promise<T> {
    return this.within(this.deadlines.writeMs, fn);
  }

  async within<T>(ms: number, fn: () => Promise<T>): Promise<T> {
    try {
      return await this.client.connection.withDeadline(Date.now() + ms, fn);
    } catch (err) {
      if (err instanceof TemporalUnreachable || !isUnreachable(err)) throw err;
      throw new TemporalUnreachable(`Temporal did not answer within ${ms} ms`, { cause: err });
    }
  }
}

/**
 * The SDK's own retry of failed gRPC calls (UNAVAILABLE and the like, with its backoff), except
 * that a call with a deadline is not tried again once the next attempt would begin past it: the
 * default keeps retrying for about 20 s whatever the deadline, and each late attempt only fails.
 */
export function retryWithinDeadline(): Interceptor {
  return (options, nextCall) =>
    makeGrpcRetryInterceptor(retryOptionsWithin(options.deadline))(options, nextCall);
}

/** The SDK's default retry options, for a call that must end by `deadline` (ms or a Date). */
export function retryOptionsWithin(deadline: number | Date | undefined): GrpcRetryOptions {
  const base = defaultGrpcRetryOptions();
  const end = deadline === undefined ? Infinity : Number(deadline);
  let delay = 0;
  return {
    retryableDecider(attempt, status) {
      if (!base.retryableDecider(attempt, status)) return false;
      delay = base.delayFunction(attempt, status);
      return Date.now() + delay < end;
    },
    delayFunction: () => delay,
  };
}
