import { createHash, randomUUID } from 'node:crypto';
import {
  isGrpcServiceError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
} from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import stableStringify from 'safe-stable-stringify';
import {
  DEFAULT_LIMITS,
  initialRecord,
  isTerminal,
  type DecisionBudget,
  type DecisionEventType,
  type DecisionInput,
  type DecisionLimits,
  type DecisionRecord,
  type PhaseOutputs,
  type ReviewInput,
  type ReviewState,
} from '../domain/decision';
import { PHASES, type PhaseName } from '../domain/phases';
import {
  DECISION_WORKFLOW_TYPE,
  MAX_DECISION_ID_BYTES,
  DecisionOwnerAttribute,
  DecisionStatusAttribute,
  outputsQuery,
  reviewUpdate,
} from '../domain/workflow-api';
import type {
  DecisionProjection,
  DecisionSummary,
  ListCursor,
  ListQuery,
} from '../projection/redis-projection';
import type { decisionWorkflow } from '../workflows';
import {
  retryDecision,
  RetryError,
  type RetryOptions,
  type RetryResult,
} from '../operations/retry';
import { DecisionReads, type ReadRecord } from '../projection/decision-reads';
import {
  isUnreachable,
  TemporalCalls,
  TemporalUnreachable,
  type TemporalDeadlines,
} from '../temporal/deadlines';
import { listFromVisibility } from '../temporal/list-decisions';
import { DEFAULT_WEBHOOK_EVENTS, type WebhookSubscription } from '../domain/webhook';
import {
  checkWebhookUrl,
  WebhookCheckUnavailable,
  WebhookUrlError,
  type AllowedPorts,
  type Resolve,
} from '../webhooks/address';
import {
  Conflict,
  DecisionNotFound,
  IdempotencyKeyReused,
  InvalidRequest,
  NoLiveWorker,
  Unavailable,
} from './errors';
import type { BuildWatch } from '../temporal/build-watch';

export interface DecisionServiceOptions {
  client: Client;
  projection: Pick<DecisionProjection, 'entry' | 'list' | 'write' | 'expectRun'>;
  taskQueue: string;
  /** How long a decision created with review: true waits for its reviewer. */
  reviewTimeoutMs?: number;
  /** Half of how long a fork waits for a worker to answer its source's outputs query. */
  queryTimeoutMs?: number;
  onProjectionError?: (err: unknown) => void;
  /** A running record not updated for this long is checked against Temporal on read. */
  staleAfterMs?: number;
  /** The server's limits; a request's budget may only lower them. */
  limits?: DecisionLimits;
  /** Webhook deliveries; null (or unset) refuses requests that ask for one. */
  webhooks?: WebhookSettings | null;
  /** Which builds have workers: creates are refused while the current one has none. */
  workers?: Pick<BuildWatch, 'currentStranded' | 'liveWindowMs'> | null;
  /** How long Temporal has to answer a request's calls (reads 2 s, writes 5 s by default). */
  deadlines?: Partial<TemporalDeadlines>;
}

export interface WebhookSettings {
  allowPrivateNetworks: boolean;
  /** The ports webhook URLs may use; 80 and 443 by default. */
  allowedPorts?: AllowedPorts;
  timeoutMs: number;
  retryMs: number;
  /** Resolves a host's addresses (the system resolver by default). */
  resolve?: Resolve;
}

export interface CreateRequest {
  query: string;
  context?: string | null;
  review?: boolean;
  metadata?: Record<string, string>;
  /** Lower than the server's maximum only; unset parts take the maximum. */
  budget?: Partial<DecisionBudget>;
  /** Where to deliver the decision's events (by default its end and a review request). */
  webhook?: { url: string; events?: DecisionEventType[] };
}

export interface ForkRequest {
  from_phase: PhaseName;
  query?: string;
  context?: string;
  /** The fork's budget; unset takes the source's. */
  budget?: Partial<DecisionBudget>;
  /** The fork's own webhook; a fork does not inherit its source's. */
  webhook?: CreateRequest['webhook'];
}

/** Who asks: a principal, and whether it may see every decision. */
export interface Caller {
  principal: string;
  admin: boolean;
}

/** Admins see every decision; others only their own. Decisions without an owner are admins'. */
function canSee(caller: Caller, record: Pick<DecisionRecord, 'owner'>): boolean {
  return caller.admin || (record.owner !== null && record.owner === caller.principal);
}

/** A request about one decision, which its caller must be allowed to see. */
export interface DecisionRequest {
  id: string;
  caller: Caller;
}

export interface StartOptions {
  caller: Caller;
  request: CreateRequest;
  /** Makes a create sent again answer with the decision the first one started. */
  idempotencyKey?: string;
}

/** Waits for the decision `id`, or for `record`, the decision as this request has it already. */
export type WaitOptions = { caller: Caller; timeoutMs: number } & (
  { id: string } | { record: DecisionRecord }
);

/** Where a listing goes on: the projection's index, or a page of Temporal's visibility. */
export type ListPosition = ListCursor | { visibility: string };

export type ListOptions = Omit<ListQuery, 'owner' | 'cursor'> & {
  caller: Caller;
  cursor?: ListPosition;
};

/** A page of a listing, and where it came from: Temporal's visibility while Redis is away. */
export interface ListPage {
  items: DecisionSummary[];
  next: ListPosition | null;
  source: 'projection' | 'visibility';
}

/** gRPC's status for a request Temporal refuses as malformed. */
const INVALID_ARGUMENT = 3;

/** How long a cancel waits for the workflow to record it before answering. */
const CANCEL_WAIT_MS = 5000;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** A UUID-shaped id derived from the caller and its idempotency key: the same key, the same id. */
function idempotentId(principal: string, key: string): string {
  const h = sha256(`${principal}\0${key}`);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** Starts decisions on Temporal and reads them from the projection, or from Temporal on a miss. */
export class DecisionService {
  private readonly reads: DecisionReads;
  /** Every call to Temporal goes through it: a deadline, and TemporalUnreachable past it. */
  private readonly temporal: TemporalCalls;

  constructor(private readonly options: DecisionServiceOptions) {
    this.temporal = new TemporalCalls(options.client, options.deadlines);
    this.reads = new DecisionReads({ ...options, temporal: this.temporal });
  }

  /**
   * Starts a decision workflow, owned by the caller; its id is the decision's process_id. With an
   * idempotency key the id is derived from it, so a retried create finds the workflow Temporal
   * already has.
   */
  start({
    caller,
    request,
    idempotencyKey,
  }: StartOptions): Promise<{ record: DecisionRecord; created: boolean }> {
    return this.startDecision(request, caller.principal, idempotencyKey, null);
  }

  private async startDecision(
    request: CreateRequest,
    owner: string,
    idempotencyKey: string | undefined,
    fork: DecisionInput['fork'],
  ): Promise<{ record: DecisionRecord; created: boolean }> {
    const id = idempotencyKey === undefined ? randomUUID() : idempotentId(owner, idempotencyKey);
    // Key order carries no meaning in JSON: a reordered, identical body is the same request.
    const described = [request, fork?.source_id, fork?.from_phase];
    const requestHash = sha256(stableStringify(described) ?? '');
    let webhook: WebhookSubscription | null;
    const checking = Date.now();
    try {
      // Both at once: each may take its deadline while Temporal or a DNS server is away.
      const [stranded, subscribed] = await Promise.allSettled([
        this.options.workers?.currentStranded(),
        request.webhook ? this.subscription(request.webhook) : null,
      ]);
      if (stranded.status === 'rejected') throw stranded.reason;
      // A decision started now would wait, unseen, for workers that are gone: refused instead.
      if (stranded.value) throw new NoLiveWorker(stranded.value.build_id, stranded.value.message);
      if (subscribed.status === 'rejected') throw subscribed.reason;
      webhook = subscribed.value;
    } catch (err) {
      // A resent create answers as the first did, whatever the webhook's host resolves to now
      // and whichever workers run.
      const accepted =
        idempotencyKey === undefined ? null : await this.accepted(id, requestHash, described);
      if (accepted) return { record: accepted, created: false };
      throw err;
    }
    const limits = this.options.limits ?? DEFAULT_LIMITS;
    const input: DecisionInput = {
      query: request.query,
      owner,
      context: request.context ?? null,
      metadata: request.metadata ?? null,
      review: request.review ? { timeout_ms: this.options.reviewTimeoutMs ?? 86_400_000 } : null,
      fork: fork ?? null,
      limits: {
        ...limits,
        budget: {
          max_model_calls: Math.min(
            request.budget?.max_model_calls ?? Infinity,
            limits.budget.max_model_calls,
          ),
          max_tokens: Math.min(request.budget?.max_tokens ?? Infinity, limits.budget.max_tokens),
        },
      },
      webhook,
    };
    // The look at the workers and the start share the write deadline: a create answers within it.
    const { readMs, writeMs } = this.temporal.deadlines;
    const startMs = Math.max(writeMs - (Date.now() - checking), readMs);
    try {
      await this.temporal.within(startMs, () => this.startWorkflow(id, input, requestHash, owner));
    } catch (err) {
      if (err instanceof TemporalUnreachable) {
        throw new Unavailable(
          `Temporal, which runs the decisions, did not answer within ${Math.round(writeMs / 1000)} s, ` +
            'so the decision may or may not have started. Send the request again in a few seconds' +
            (idempotencyKey === undefined
              ? ' (with an Idempotency-Key, a create sent again answers with the decision the first one started)'
              : ' with the same Idempotency-Key: it answers with the decision if it did start'),
          { cause: err },
        );
      }
      if (!(idempotencyKey !== undefined && err instanceof WorkflowExecutionAlreadyStartedError)) {
        throw err;
      }
      const record = await this.accepted(id, requestHash, described);
      return { record: record ?? initialRecord(id, input, nowIso()), created: false };
    }
    return { record: initialRecord(id, input, nowIso()), created: true };
  }

  private async startWorkflow(
    id: string,
    input: DecisionInput,
    requestHash: string,
    owner: string,
  ): Promise<void> {
    await this.options.client.workflow.start<typeof decisionWorkflow>(DECISION_WORKFLOW_TYPE, {
      taskQueue: this.options.taskQueue,
      workflowId: id,
      args: [input],
      memo: { query: input.query, request_hash: requestHash, ...(owner ? { owner } : {}) },
      typedSearchAttributes: [
        { key: DecisionStatusAttribute, value: 'pending' },
        ...(owner ? [{ key: DecisionOwnerAttribute, value: owner }] : []),
      ],
      // A finished decision's id is never reused, so a late retry cannot run it again.
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
    });
  }

  /**
   * The decision an earlier create with the same Idempotency-Key started, or null when there is
   * none; IdempotencyKeyReused when that create had another body.
   */
  private async accepted(
    id: string,
    requestHash: string,
    described: unknown,
  ): Promise<DecisionRecord | null> {
    let stored: unknown;
    try {
      const handle = this.options.client.workflow.getHandle(id);
      stored = (await this.temporal.read(() => handle.describe())).memo?.request_hash;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
    // Decisions created before the hash ignored key order hold the plain JSON's hash.
    if (stored !== requestHash && stored !== sha256(JSON.stringify(described))) {
      throw new IdempotencyKeyReused();
    }
    return this.reads.read(id);
  }

  /** The webhook a request asks for, refused (InvalidRequest) unless this server may call its URL. */
  private async subscription(
    webhook: NonNullable<CreateRequest['webhook']>,
  ): Promise<WebhookSubscription> {
    const settings = this.options.webhooks;
    const refuse = (message: string): never => {
      throw new InvalidRequest(`webhook.url ${message}`, [{ path: 'webhook.url', message }]);
    };
    if (!settings) return refuse('cannot be used: this server has no WEBHOOK_SECRET to sign with');
    try {
      await checkWebhookUrl(webhook.url, settings);
    } catch (err) {
      if (err instanceof WebhookUrlError) refuse(err.message);
      // A DNS failure that may pass says nothing about the URL: the request may be resent.
      if (err instanceof WebhookCheckUnavailable)
        throw new Unavailable(`webhook.url ${err.message}`);
      throw err;
    }
    return {
      url: webhook.url,
      events: [...new Set(webhook.events ?? DEFAULT_WEBHOOK_EVENTS)],
      timeout_ms: settings.timeoutMs,
      retry_ms: settings.retryMs,
    };
  }

  /** The decision, read once; DecisionNotFound when it is unknown or the caller may not see it. */
  async get({ id, caller }: DecisionRequest): Promise<ReadRecord> {
    const record = await this.find({ id, caller });
    if (!record) throw new DecisionNotFound(id);
    return record;
  }

  /** The decision, read once, or null when it is unknown or the caller may not see it. */
  async find({ id, caller }: DecisionRequest): Promise<ReadRecord | null> {
    // An id no decision can have is unknown, not a question for Temporal (which refuses it).
    if (Buffer.byteLength(id) > MAX_DECISION_ID_BYTES) return null;
    const record = await this.reads.read(id);
    return record && canSee(caller, record) ? record : null;
  }

  /** The result of a completed decision; a 'no-result' Conflict before (or without) one. */
  async result(request: DecisionRequest): Promise<NonNullable<DecisionRecord['result']>> {
    const record = await this.get(request);
    if (!record.result) {
      const why =
        record.status === 'failed' && record.error
          ? `failed in ${record.error.phase ?? 'the workflow'}: ${record.error.message}`
          : `is ${record.status}`;
      throw new Conflict('no-result', `The decision ${why}; it has no result`);
    }
    return record.result;
  }

  /**
   * A page of the decisions the caller may see, newest first; from Temporal's visibility (in its
   * order) when the projection's index cannot be read, or when the cursor came from there.
   */
  async list({ caller, cursor, ...query }: ListOptions): Promise<ListPage> {
    const owner = caller.admin ? undefined : caller.principal;
    if (cursor && 'visibility' in cursor) {
      return this.listFromVisibility({ ...query, owner }, cursor.visibility);
    }
    try {
      const page = await this.options.projection.list({ ...query, owner, cursor });
      return { ...page, source: 'projection' };
    } catch (err) {
      this.options.onProjectionError?.(err);
    }
    if (cursor) {
      throw new Unavailable(
        'The decision index (Redis) does not answer just now, and this cursor pages through it: ' +
          "send the request again shortly, or list from the start to page through Temporal's visibility instead",
      );
    }
    return this.listFromVisibility({ ...query, owner });
  }

  private async listFromVisibility(
    query: Omit<ListQuery, 'cursor'>,
    pageToken?: string,
  ): Promise<ListPage> {
    try {
      const page = await this.temporal.read(() =>
        listFromVisibility(this.options.client, {
          ...query,
          taskQueue: this.options.taskQueue,
          pageToken,
        }),
      );
      return {
        items: page.items,
        next: page.next === null ? null : { visibility: page.next },
        source: 'visibility',
      };
    } catch (err) {
      // Visibility refuses a page token it did not issue (or can no longer read).
      if (
        pageToken !== undefined &&
        isGrpcServiceError(err) &&
        Number(err.code) === INVALID_ARGUMENT
      ) {
        const message = 'is not a cursor of a listing this API can continue: list from the start';
        throw new InvalidRequest(`cursor ${message}`, [{ path: 'cursor', message }]);
      }
      if (!isUnreachable(err)) throw err;
      throw new Unavailable(
        "Neither the decision index (Redis) nor Temporal's visibility answers just now: list again in a few seconds",
        { cause: err },
      );
    }
  }

  /** Waits up to `timeoutMs` for the decision to finish; `finished` says whether it did. */
  async wait(options: WaitOptions): Promise<{ record: ReadRecord; finished: boolean }> {
    let record: ReadRecord;
    if ('record' in options) {
      record = options.record;
      if (!canSee(options.caller, record)) throw new DecisionNotFound(record.process_id);
    } else {
      record = await this.get(options);
    }
    return this.waitFor(record, options.timeoutMs);
  }

  /** Waits for a decision the request has read: reads it again only once the wait is over. */
  private async waitFor(
    record: ReadRecord,
    timeoutMs: number,
  ): Promise<{ record: ReadRecord; finished: boolean }> {
    // A stale end may be an earlier run's (a retry's run has not written yet): not confirmed.
    if (isTerminal(record.status) && !record.stale) return { record, finished: true };
    const id = record.process_id;
    const handle = this.options.client.workflow.getHandle(id);
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      await this.options.client
        .withAbortSignal(abort.signal, () => handle.result())
        .catch(() => undefined);
    } finally {
      clearTimeout(timer);
    }
    // The workflow writes its final state to the projection before it completes; should that
    // write have been lost, Temporal's own record says how it ended.
    let latest = await this.reads.read(id);
    if (!latest) throw new DecisionNotFound(id);
    if ((!isTerminal(latest.status) || latest.stale) && !abort.signal.aborted) {
      const { stale: _stale, ...projected } = latest;
      const truth = await this.reads.fromTemporal(id).then(
        (found) => ({ found }),
        (err: unknown) => {
          if (isUnreachable(err)) return null;
          throw err;
        },
      );
      // Without Temporal to say how it ended, the record as it is must do, marked stale.
      if (!truth) latest = { ...projected, stale: true };
      else if (truth.found) latest = await this.reads.repair(projected, truth.found);
    }
    return { record: latest, finished: isTerminal(latest.status) && !latest.stale };
  }

  /**
   * Requests cancellation; the workflow records it and stops at its current phase. Answers with
   * the decision once that is recorded, or as it is after a few seconds without.
   */
  async cancel({ id, caller }: DecisionRequest): Promise<ReadRecord> {
    const record = await this.get({ id, caller });
    if (isTerminal(record.status) && record.stale) {
      // The end may be an earlier run's, a retry's run not written yet: only Temporal can tell.
      throw new Unavailable(
        `Temporal did not answer within ${this.temporal.deadlines.readMs / 1000} s, so whether the decision has ended cannot be told: send the cancellation again in a few seconds`,
      );
    }
    if (isTerminal(record.status)) {
      throw new Conflict('finished', `The decision has already ${record.status}`);
    }
    try {
      const handle = this.options.client.workflow.getHandle(id);
      await this.temporal.write(() => handle.cancel());
    } catch (err) {
      if (err instanceof TemporalUnreachable) {
        throw new Unavailable(
          `Temporal did not answer within ${this.temporal.deadlines.writeMs / 1000} s, so the cancellation may not have been requested: send it again in a few seconds`,
          { cause: err },
        );
      }
      // It finished between the read and the cancel.
      if (!(err instanceof WorkflowNotFoundError)) throw err;
      const now = await this.reads.fromTemporal(id);
      throw new Conflict('finished', `The decision has already ${now?.status ?? 'finished'}`);
    }
    const { record: latest } = await this.waitFor(record, CANCEL_WAIT_MS);
    // It ended otherwise before the cancellation reached it (as far as Temporal confirms).
    if (!latest.stale && (latest.status === 'completed' || latest.status === 'failed')) {
      throw new Conflict('finished', `The decision has already ${latest.status}`);
    }
    return latest;
  }

  /** Delivers a human review as a validated workflow update. */
  async review({
    id,
    caller,
    review,
  }: DecisionRequest & { review: ReviewInput }): Promise<ReviewState> {
    const record = await this.get({ id, caller });
    if (isTerminal(record.status)) {
      throw new Conflict(
        'finished',
        `The decision has already ${record.status}; it takes no review`,
      );
    }
    // The workflow would hold a review sent before its pause until the draft is ready.
    if (record.review.requested && record.status !== 'awaiting_review') {
      throw new Conflict(
        'not-awaiting-review',
        `The decision is not awaiting review (it is ${record.status}, review ${record.review.status})`,
      );
    }
    try {
      // Without a worker the update would wait for one indefinitely; answer within a minute.
      const handle = this.options.client.workflow.getHandle(id);
      return await this.temporal.within(60_000, () =>
        handle.executeUpdate(reviewUpdate, { args: [review] }),
      );
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) {
        throw new Conflict('review-refused', err.cause?.message ?? err.message);
      }
      throw err;
    }
  }

  /** Retries from a phase (the failed one by default): a reset, earlier phases not run again. */
  async retry({ id, caller, ...options }: DecisionRequest & RetryOptions): Promise<RetryResult> {
    await this.get({ id, caller });
    try {
      return await this.temporal.write(() =>
        retryDecision(this.options.client, id, {
          ...options,
          reads: this.reads,
          liveWindowMs: this.options.workers?.liveWindowMs,
        }),
      );
    } catch (err) {
      if (err instanceof RetryError) throw new Conflict('retry-refused', err.message);
      throw err;
    }
  }

  /** A new decision, owned by the caller, that reuses the source's outputs before `from_phase`. */
  async fork({
    id,
    caller,
    request,
  }: DecisionRequest & { request: ForkRequest }): Promise<DecisionRecord> {
    const source = await this.get({ id, caller });
    const before = PHASES.slice(
      0,
      PHASES.findIndex((p) => p.name === request.from_phase),
    );
    const outputs: PhaseOutputs = before.length ? await this.outputsOf(source) : {};
    const missing = before.filter((p) => outputs[p.name] === undefined).map((p) => p.name);
    if (missing.length > 0) {
      throw new Conflict(
        'missing-outputs',
        `Cannot fork from ${request.from_phase}: the source has no output yet for ${missing.join(', ')}`,
      );
    }
    const reused = Object.fromEntries(before.map((p) => [p.name, outputs[p.name]]));
    const { record } = await this.startDecision(
      {
        query: request.query ?? source.query,
        context: request.context ?? source.context,
        metadata: source.metadata,
        // What the fork's budget does not name, it keeps from the source's.
        budget: { ...source.budget, ...request.budget },
        ...(request.webhook ? { webhook: request.webhook } : {}),
      },
      caller.principal,
      undefined,
      { source_id: id, from_phase: request.from_phase, outputs: reused },
    );
    return record;
  }

  private async outputsOf(source: DecisionRecord): Promise<PhaseOutputs> {
    if (source.result) return source.result.phases;
    const handle = this.options.client.workflow.getHandle(source.process_id);
    const timeoutMs = (this.options.queryTimeoutMs ?? 2000) * 2;
    try {
      return await this.temporal.within(timeoutMs, () => handle.query(outputsQuery));
    } catch (err) {
      // Temporal's own words name its internals (addresses, task queues): not the caller's to read.
      throw new Unavailable(
        isUnreachable(err)
          ? `Could not read the source decision's outputs: Temporal or a worker did not answer within ${timeoutMs / 1000} s. Nothing was started; send the fork again in a few seconds`
          : "Could not read the source decision's outputs from a worker just now. Nothing was started; send the fork again in a few seconds",
        { cause: err },
      );
    }
  }
}

const nowIso = () => new Date().toISOString();
