// What the decision service (and the routes) refuse a request with. Each says what went wrong in
// words a caller can read (its message is the problem document's detail) and nothing of HTTP:
// app.onError maps each to its problem document.

/** No decision has this id, or none the caller may see: the same words, so neither leaks. */
export class DecisionNotFound extends Error {
  override name = 'DecisionNotFound';

  constructor(readonly id: string) {
    super(`No decision with id ${id}`);
  }
}

/** Why a request conflicts with the decision's state. */
export type ConflictReason =
  /** It has ended (completed, failed or cancelled) and takes no cancel or review. */
  | 'finished'
  /** A review sent while the decision is not paused for one. */
  | 'not-awaiting-review'
  /** The workflow refused the review (reviewed already, or it moved on). */
  | 'review-refused'
  /** It has not completed, so it has no result. */
  | 'no-result'
  /** Nothing to retry from: still running, no failed phase, or its build's workers are gone. */
  | 'retry-refused'
  /** The source of a fork has no output yet for a phase the fork would reuse. */
  | 'missing-outputs';

/** The decision's state does not allow the request. */
export class Conflict extends Error {
  override name = 'Conflict';

  constructor(
    readonly reason: ConflictReason,
    detail: string,
  ) {
    super(detail);
  }
}

/** An Idempotency-Key sent again with another request body. */
export class IdempotencyKeyReused extends Error {
  override name = 'IdempotencyKeyReused';

  constructor() {
    super('This Idempotency-Key was already used with a different request body');
  }
}

/** A field of the request that is wrong, and what is wrong with it. */
export interface InvalidField {
  path: string;
  message: string;
}

/** The request itself is wrong (a header, a cursor, a webhook URL this server will not call). */
export class InvalidRequest extends Error {
  override name = 'InvalidRequest';

  constructor(
    detail: string,
    /** The fields at fault, when the request names them. */
    readonly fields?: InvalidField[],
  ) {
    super(detail);
  }
}

/**
 * Something the request needs does not answer just now (Temporal, a worker, Redis, DNS): send it
 * again, after `retryAfterSeconds` (the problem's Retry-After).
 */
export class Unavailable extends Error {
  override name = 'Unavailable';

  constructor(detail: string, options?: ErrorOptions & { retryAfterSeconds?: number }) {
    super(detail, options);
    this.retryAfterSeconds = options?.retryAfterSeconds ?? 5;
  }

  readonly retryAfterSeconds: number;
}

/** The caller holds as much of something as it may (event streams open at once). */
export class LimitReached extends Error {
  override name = 'LimitReached';
}

/**
 * No worker of the build new decisions start on has polled lately: a decision created now would
 * wait for one. Its message names the build and what to run; a create may be sent again later.
 */
export class NoLiveWorker extends Unavailable {
  override name = 'NoLiveWorker';

  constructor(
    readonly buildId: string,
    detail: string,
    /** When to ask again: about how long a worker takes to start and be seen. */
    override readonly retryAfterSeconds = 15,
  ) {
    super(detail);
  }
}
