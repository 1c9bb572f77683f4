import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { Logger } from 'pino';
import { phaseNamed } from '../phases';
import type { AgentContext, PromptPassage } from '../phases/phase';
import {
  retrieveInformation,
  unansweredNeed,
  type RetrievalAnswer,
} from '../phases/retrieve-information';
import type { InformationNeed } from '../phases/identify-information-needs';
import { MAX_ITEMS } from '../phases/bounds';
import { runAgent, type AgentRun } from './run-agent';
import { metered, spendFrom, withSpend } from './spend';
import {
  DEFAULT_LIMITS,
  type DecisionBudget,
  type DecisionEvent,
  type DecisionRecord,
  type PhaseInput,
  type PhaseResult,
} from '../domain/decision';
import { checkPayload } from '../domain/payload';
import { PHASE_NAMES, type PhaseName } from '../domain/phases';
import { combineRetrievals } from '../domain/retrieval';
import type { KnowledgeBase } from '../knowledge/knowledge-base';
import { withBudget, type BudgetLedger } from '../llm/budget';
import type { LanguageModel } from '../llm/model';
import { withProviderLimit, type ProviderLimiter } from '../llm/provider-limit';
import { withResponseStore, type ResponseStore, type StoredModel } from '../llm/response-store';
import type { DecisionMetrics } from '../observability/metrics';
import type { LiveChannel, LivePublisher } from '../projection/live-channel';
import type { DecisionProjection } from '../projection/redis-projection';
import {
  deliveryRank,
  pendingDelivery,
  type WebhookDelivery,
  type WebhookMessage,
} from '../domain/webhook';
import { WebhookUrlError, type AllowedPorts, type Resolve } from '../webhooks/address';
import { failureKind, postWebhook, type PostOutcome } from '../webhooks/deliver';
import { DecisionOwnerUnknown, type OwnerOf } from '../webhooks/owner';
import { principalSecret } from '../webhooks/secret';
import { Slots } from '../process/slots';

export interface ActivityDeps {
  model: LanguageModel;
  /** Model answers kept so that a retried activity does not pay for them again. */
  responses: ResponseStore;
  /** What each decision has spent; its phases make no call past their budget. */
  budget: BudgetLedger;
  /** The budget of decisions started before budgets were set at creation. */
  defaultBudget?: DecisionBudget;
  /** The payload limit of decisions started before it was set at creation. */
  payloadMaxBytes?: number;
  /** Token caps that replace the ones derived from the answer schemas. */
  maxCompletionTokens?: Partial<Record<PhaseName, number>>;
  /**
   * The provider's limit, shared by every worker on its Redis, and the key of this provider and
   * model in it: each call waits for its share.
   */
  providerLimit?: { limiter: ProviderLimiter; key: string };
  knowledge: KnowledgeBase;
  projection: Pick<DecisionProjection, 'write' | 'writeDelivery' | 'readDelivery'>;
  /** Signs webhook deliveries; without a secret a delivery fails at once, saying why. */
  webhooks?: {
    /** The master (WEBHOOK_SECRET): each decision's owner signs with a secret derived from it. */
    secret: string | null;
    /** While the master is rotated, the one before it: deliveries are signed with both. */
    previousSecret?: string | null;
    /** Whose a decision is: its deliveries are signed with that principal's secret. */
    ownerOf: OwnerOf;
    allowPrivateNetworks: boolean;
    /** The ports deliveries may reach; 80 and 443 by default. */
    allowedPorts?: AllowedPorts;
    /** Resolves receivers' hosts, with a deadline; the system's DNS servers by default. */
    resolve?: Resolve;
    /** Deliveries one principal may have in flight in this process; more are retried later. */
    perPrincipal?: number;
    /**
     * The least wait before the attempt after the 1st, the 2nd, … 4xx that ends a delivery at the
     * third (ms); REJECTED_RETRY_MS by default.
     */
    rejectedRetryMs?: readonly number[];
  };
  /** How many passages each information need is answered from. */
  passagesPerNeed?: number;
  heartbeatIntervalMs?: number;
  /** Counts decision events once per applied projection write. */
  metrics?: DecisionMetrics;
  /** Where a running phase's model output is published as it is written (never awaited). */
  live?: Pick<LiveChannel, 'publisher'>;
  logger?: Pick<Logger, 'warn'>;
}

export type PhaseActivity = (input: PhaseInput) => Promise<PhaseResult>;

/** 4xx answers that may pass (timeout, conflict, too early, too many requests): retried as 5xx. */
const RETRIED_CLIENT_ERRORS = new Set([408, 409, 425, 429]);
/** Other 4xx answers end a delivery once the receiver has given this many. */
const MAX_CLIENT_ERRORS = 3;
/**
 * The least wait after the 1st and the 2nd such 4xx: a receiver misdeployed for a few minutes, or
 * still verifying with an old secret (401), has about 11 minutes to recover before a delivery is
 * given up, rather than the retry policy's 6 s (2 s, 4 s).
 */
export const REJECTED_RETRY_MS = [60_000, 600_000] as const;
/**
 * The delivery workflow's retry policy (initial interval, coefficient 2, maximum interval): the
 * activity sets each retry's delay itself from the attempts that reached the receiver, since
 * WebhookBusy attempts, which did not, count in Temporal's attempt number.
 */
const RETRY_INITIAL_MS = 2_000;
const RETRY_MAX_MS = 3_600_000;

/** The model with each call's output handed to `publisher`, numbered by call from 1. */
function live(model: StoredModel, publisher: LivePublisher): StoredModel {
  let calls = 0;
  return {
    ...model,
    generate(request) {
      const call = ++calls;
      return model.generate({
        ...request,
        onOutput: (piece, tokens) => {
          publisher.output(call, piece);
          request.onOutput?.(piece, tokens);
        },
      });
    },
    forget: () => model.forget(),
  };
}

/** When this attempt times out (ms since the epoch): start to close, or schedule to close. */
function attemptDeadline(ctx: Context, startedAt: number): number {
  const { startToCloseTimeoutMs, scheduleToCloseTimeoutMs, scheduledTimestampMs } = ctx.info;
  return Math.min(
    startToCloseTimeoutMs > 0 ? startedAt + startToCloseTimeoutMs : Infinity,
    scheduleToCloseTimeoutMs > 0 ? scheduledTimestampMs + scheduleToCloseTimeoutMs : Infinity,
  );
}

function invalidInput(message: string): never {
  throw ApplicationFailure.create({ type: 'InvalidPhaseInput', message, nonRetryable: true });
}

/** What answering one information need is asked with: its question's passages, numbered. */
export function needContext(
  query: string,
  need: InformationNeed,
  knowledge: Pick<KnowledgeBase, 'search'>,
  passagesPerNeed: number,
): AgentContext & { passages: PromptPassage[] } {
  const hits = knowledge.search(need.question, passagesPerNeed);
  return { query, outputs: {}, need, passages: hits.map((h, i) => ({ ...h, ref: `P${i + 1}` })) };
}

/** The worker's activities: one per phase (named after it) and the projection write. */
export function createActivities(deps: ActivityDeps) {
  // Never more than an answer may cite.
  const passagesPerNeed = Math.min(deps.passagesPerNeed ?? 4, MAX_ITEMS.passages);

  const answerNeed = async (
    query: string,
    need: InformationNeed,
    model: StoredModel,
    signal: AbortSignal,
  ): Promise<AgentRun<RetrievalAnswer>> => {
    const ctx = needContext(query, need, deps.knowledge, passagesPerNeed);
    if (ctx.passages.length === 0) {
      const usage = { input_tokens: 0, output_tokens: 0 };
      return {
        output: unansweredNeed(ctx),
        model: model.name,
        model_calls: 0,
        repair_rounds: 0,
        usage,
        latency_ms: 0,
      };
    }
    return runAgent(retrieveInformation, ctx, model, {
      signal,
      maxOutputTokens: deps.maxCompletionTokens?.retrieveInformation,
    });
  };

  const runPhase = async (phase: PhaseName, input: PhaseInput): Promise<PhaseResult> => {
    if (typeof input?.query !== 'string' || input.query.trim() === '') {
      invalidInput(`${phase} needs a non-empty question`);
    }
    const ctx = Context.current();
    const startedAt = Date.now();
    const { workflowExecution, activityId, attempt } = ctx.info;
    const runScope = `${workflowExecution?.workflowId}:${workflowExecution?.runId}`;
    const budget = input.budget ?? {
      ...(deps.defaultBudget ?? DEFAULT_LIMITS.budget),
      spent: { model_calls: 0, tokens: 0 },
    };
    // What this phase's earlier attempts paid for, and from here on this one's calls too.
    const spend = spendFrom(ctx.info.heartbeatDetails);
    // The store is outside the budget: an answer reused from it was paid for and counted once.
    // Only a retry can find an answer there: a first attempt does not look.
    const budgeted = withBudget(metered(deps.model, spend), deps.budget, runScope, budget, {
      onLedgerError: (err) =>
        deps.logger?.warn(
          { err, phase },
          'Budget ledger unavailable; checking the budget against what this activity knows',
        ),
      earlier: {
        model_calls: spend.model_calls,
        tokens: spend.input_tokens + spend.output_tokens,
      },
      // Retrievals started before they said how many run together assume the most there are.
      parallel: input.need ? (input.parallel ?? MAX_ITEMS.needs) : 1,
    });
    // A call waits for the provider's limit before its budget is reserved, and only a call that
    // reaches the provider (not an answer reused from the store) takes from the limit. It never
    // waits past the attempt's own deadline, and heartbeats (below) go on while it waits.
    const model = withResponseStore(
      deps.providerLimit
        ? withProviderLimit(budgeted, deps.providerLimit.limiter, deps.providerLimit.key, {
            signal: ctx.cancellationSignal,
            deadline: attemptDeadline(ctx, startedAt),
          })
        : budgeted,
      deps.responses,
      `${runScope}:${activityId}`,
      (err) => deps.logger?.warn({ err, phase }, 'Model response store unavailable'),
      { lookup: attempt > 1 },
    );
    // The model's output as it comes, to the decision's live channel: a retried attempt says so
    // first, so that whoever watches starts afresh.
    const publisher = deps.live?.publisher({
      decisionId: input.decision_id ?? workflowExecution?.workflowId ?? '',
      phase,
      index: PHASE_NAMES.indexOf(phase),
      attempt,
      need: input.need?.id ?? null,
    });
    publisher?.announce();
    // Heartbeats let Temporal notice a dead worker within the heartbeat timeout, and deliver
    // cancellation, which aborts the model call (its HTTP request) through the signal: a second
    // apart (the worker's throttle too), a cancelled decision stops its model within about two.
    // None at the start: the timeout counts from it, and a phase that ends sooner needs no
    // heartbeat round trip at all. Each carries the spend, which the next attempt takes over.
    const heartbeat = setInterval(() => ctx.heartbeat(spend), deps.heartbeatIntervalMs ?? 1000);
    try {
      const result = await attemptPhase(
        phase,
        input,
        publisher ? live(model, publisher) : model,
        ctx,
        attempt,
      );
      // Every call the phase paid for, in every attempt: the ledger counted them all.
      return {
        ...result,
        model_calls: spend.model_calls,
        repair_rounds: spend.repair_rounds,
        usage: { input_tokens: spend.input_tokens, output_tokens: spend.output_tokens },
        latency_ms: spend.latency_ms,
      };
    } catch (err) {
      // The failure carries the last heartbeat's details to the next attempt.
      ctx.heartbeat(spend);
      // An attempt whose model call was aborted because the decision was cancelled (or ended:
      // nobody takes the result any more) ends as cancelled, not as a failed attempt; a worker's
      // shutdown or a time-out is an attempt to retry.
      const why = ctx.cancellationDetails;
      if (ctx.cancellationSignal.aborted && (why?.cancelRequested || why?.notFound)) {
        throw new CancelledFailure(
          `${phase} was cancelled`,
          [],
          err instanceof Error ? err : undefined,
        );
      }
      throw withSpend(err, {
        attempts: attempt,
        model: deps.model.name,
        model_calls: spend.model_calls,
        repair_rounds: spend.repair_rounds,
        usage: { input_tokens: spend.input_tokens, output_tokens: spend.output_tokens },
        latency_ms: spend.latency_ms,
      });
    } finally {
      clearInterval(heartbeat);
      await publisher?.close();
    }
  };

  const attemptPhase = async (
    phase: PhaseName,
    input: PhaseInput,
    model: StoredModel,
    ctx: Context,
    attempt: number,
  ): Promise<PhaseResult> => {
    let run: AgentRun<unknown>;
    if (phase === 'retrieveInformation' && input.need) {
      run = await answerNeed(input.query, input.need, model, ctx.cancellationSignal);
    } else if (phase === 'retrieveInformation') {
      // Decisions started before retrieval fanned out send no need: answer all of them here.
      const needs = input.outputs.identifyInformationNeeds?.needs;
      if (!needs) invalidInput('retrieveInformation needs the identifyInformationNeeds output');
      const runs: AgentRun<RetrievalAnswer>[] = [];
      for (const need of needs)
        runs.push(await answerNeed(input.query, need, model, ctx.cancellationSignal));
      run = { ...combineRetrievals(runs), model: model.name };
    } else {
      run = await runAgent(
        phaseNamed(phase),
        {
          query: input.query,
          outputs: input.outputs,
          context: input.context ?? null,
          review: input.review ?? null,
        },
        model,
        { signal: ctx.cancellationSignal, maxOutputTokens: deps.maxCompletionTokens?.[phase] },
      );
    }
    // What goes back into the decision's history is measured before it goes.
    checkPayload(phase, 'output', run.output, input.payload_max_bytes ?? deps.payloadMaxBytes);
    // The activity logger adds workflowId, runId and the activity (phase) to the line.
    ctx.log.info('Phase completed', {
      model: run.model,
      model_calls: run.model_calls,
      repair_rounds: run.repair_rounds,
      latency_ms: run.latency_ms,
      attempt,
    });
    return { ...run, attempt, finished_at: new Date().toISOString() };
  };

  /** Reports an attempt's outcome; the delivery goes on whether or not Redis takes it. */
  const report = async (message: WebhookMessage, delivery: WebhookDelivery): Promise<void> => {
    const scheduled = Context.current().info.currentAttemptScheduledTimestampMs;
    await deps.projection
      .writeDelivery(message.decision_id, delivery, deliveryRank(scheduled, delivery.state))
      .catch((err: unknown) =>
        deps.logger?.warn({ err, delivery: delivery.id }, 'Could not store a delivery state'),
      );
  };

  // Deliveries in flight in this process, per principal.
  const inFlight = new Slots();

  const deliverWebhook = async (message: WebhookMessage): Promise<WebhookDelivery> => {
    const ctx = Context.current();
    const attempt = ctx.info.attempt;
    // How many times the receiver refused it with a 4xx, and how many attempts were not made
    // (WebhookBusy), carried from attempt to attempt.
    const carried = ctx.info.heartbeatDetails as { rejected?: number; busy?: number } | undefined;
    const rejected = typeof carried?.rejected === 'number' ? carried.rejected : 0;
    const busy = typeof carried?.busy === 'number' ? carried.busy : 0;
    // The attempts that were made: Temporal's number counts the busy ones too.
    const made = Math.max(1, attempt - busy);
    const base = { ...pendingDelivery(message.id, message.body.type), attempts: made };
    const rejectedRetryMs = deps.webhooks?.rejectedRetryMs ?? REJECTED_RETRY_MS;
    const fail = async (
      type: string,
      error: string,
      status: number | null,
      final: boolean,
      carry = rejected,
    ) => {
      ctx.heartbeat({ rejected: carry, busy });
      const state = type === 'WebhookGone' ? 'gone' : final ? 'failed' : 'retrying';
      await report(message, { ...base, state, last_status: status, last_error: error });
      // The policy's backoff by the attempts made, and after a 4xx no sooner than its spacing.
      const backoff = Math.min(RETRY_INITIAL_MS * 2 ** (made - 1), RETRY_MAX_MS);
      const spacing = carry > rejected ? (rejectedRetryMs[carry - 1] ?? 0) : 0;
      throw ApplicationFailure.create({
        type,
        message: error,
        nonRetryable: final,
        nextRetryDelay: final ? undefined : Math.max(backoff, spacing),
      });
    };
    const settings = deps.webhooks;
    if (!settings?.secret) {
      return fail(
        'WebhookNotConfigured',
        'WEBHOOK_SECRET is not set on the worker, so it cannot sign deliveries',
        null,
        true,
      );
    }
    let owner: string;
    try {
      owner = await settings.ownerOf(message.decision_id);
    } catch (err) {
      if (err instanceof DecisionOwnerUnknown) {
        return fail('WebhookOwnerUnknown', `Not signed: ${err.message}`, null, true);
      }
      return fail(
        'WebhookOwnerUnavailable',
        'Not sent: whose decision this is could not be read from Temporal just now',
        null,
        false,
      );
    }
    const limit = settings.perPrincipal ?? 10;
    const slot = inFlight.tryTake(owner, limit);
    if (!slot) {
      // Over its share: tried again later, without a report (the last attempt's stays shown),
      // and counted apart, so that it neither shows as an attempt nor lengthens the backoff.
      ctx.heartbeat({ rejected, busy: busy + 1 });
      throw ApplicationFailure.create({
        type: 'WebhookBusy',
        message: `${limit} deliveries of this principal are in flight on this worker already`,
        nextRetryDelay: 5_000 + Math.floor(Math.random() * 10_000),
      });
    }
    let outcome: PostOutcome;
    try {
      outcome = await postWebhook(message, {
        secret: principalSecret(settings.secret, owner),
        previousSecret: settings.previousSecret
          ? principalSecret(settings.previousSecret, owner)
          : null,
        allowPrivateNetworks: settings.allowPrivateNetworks,
        allowedPorts: settings.allowedPorts,
        resolve: settings.resolve,
        signal: ctx.cancellationSignal,
      });
    } catch (err) {
      if (err instanceof WebhookUrlError) {
        return fail('WebhookUrlRefused', `The URL ${err.message}`, null, true);
      }
      return fail('WebhookUnreachable', `No answer: ${failureKind(err)}`, null, false);
    } finally {
      slot();
    }
    const { status } = outcome;
    if (status >= 200 && status < 300) {
      const delivered: WebhookDelivery = {
        ...base,
        state: 'delivered',
        last_status: status,
        delivered_at: new Date().toISOString(),
      };
      await report(message, delivered);
      ctx.log.info('Webhook delivered', { delivery: message.id, status, attempt: made });
      return delivered;
    }
    if (status === 410) {
      return fail('WebhookGone', 'The receiver answered 410 Gone: no more attempts', status, true);
    }
    if (status >= 400 && status < 500 && !RETRIED_CLIENT_ERRORS.has(status)) {
      // A receiver that refuses the request keeps refusing it: after a few, it is not sent again
      // (and a URL aimed at something that is no receiver stops being called).
      const count = rejected + 1;
      const final = count >= MAX_CLIENT_ERRORS;
      return fail(
        'WebhookRejected',
        `The receiver answered ${status}${final ? `, ${count} times: no more attempts` : ''}`,
        status,
        final,
        count,
      );
    }
    return fail('WebhookRejected', `The receiver answered ${status}`, status, false);
  };

  const phases = {} as Record<PhaseName, PhaseActivity>;
  for (const name of PHASE_NAMES) phases[name] = (input) => runPhase(name, input);
  return {
    ...phases,
    /** Writes the decision's state to the Redis projection; a stale write is ignored there. */
    async projectDecision(record: DecisionRecord, events: DecisionEvent[] = []): Promise<void> {
      // The run's id tells the projection when a reset run starts its story again.
      const runId = Context.current().info.workflowExecution?.runId ?? '';
      const applied = await deps.projection.write(record, events, 'workflow', runId);
      if (applied) deps.metrics?.record(events);
    },
    /** One signed POST of a decision event; Temporal retries it with the same webhook-id. */
    deliverWebhook,
    /** Marks a delivery failed once its retries are used up, keeping its last attempt's details. */
    async recordDeliveryFailure(message: WebhookMessage, error: string): Promise<void> {
      const stored = await deps.projection.readDelivery(message.decision_id, message.id);
      const last = stored?.delivery;
      if (last && last.state !== 'pending' && last.state !== 'retrying') return;
      // Final: above any report of an attempt scheduled before now, such as one that timed out
      // on the server but still reports from its worker; a reset's later attempts rank higher.
      await deps.projection.writeDelivery(
        message.decision_id,
        {
          ...(last ?? pendingDelivery(message.id, message.body.type)),
          state: 'failed',
          last_error: last?.last_error ? `${error}; last: ${last.last_error}` : error,
        },
        Math.max((stored?.rank ?? 0) + 1, deliveryRank(Date.now(), 'failed')),
      );
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
