import {
  CancellationScope,
  log,
  ParentClosePolicy,
  proxyLocalActivities,
  startChild,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  isTerminal,
  type DecisionEvent,
  type DecisionRecord,
  type PhaseOutputs,
} from '../domain/decision';
import { apply, stamp } from '../domain/reducer';
import { deliveryId, type WebhookMessage, type WebhookSubscription } from '../domain/webhook';
import { DecisionPhaseAttribute, DecisionStatusAttribute } from '../domain/workflow-api';
import { webhookDeliveryWorkflow } from './webhook-delivery';

// The projection write is a local activity: it is short, needs no queue round trip, and shows in
// history as a marker rather than as ten more activities next to the phases. The next write
// carries the whole state and repairs a lost one, so a write tries twice only: a Redis that hangs
// must not hold up the phases.
const { projectDecision } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '500 milliseconds', maximumAttempts: 2 },
});

// No later write repairs the final one, so it keeps trying for longer before the decision ends.
const { projectDecision: projectFinalState } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  scheduleToCloseTimeout: '10 minutes',
  retry: { initialInterval: '500 milliseconds', maximumInterval: '30 seconds' },
});

/**
 * A decision's record and the events that make it. `queue` folds events into the record (with
 * the reducer, the only code that changes it); `flush` publishes what was queued as one write,
 * to each consumer in one place: webhook deliveries, search attributes, the Redis projection.
 */
export function decisionLog(
  initial: DecisionRecord,
  webhook: WebhookSubscription | null | undefined,
  options: { sparseIndex: boolean },
) {
  let record = initial;
  const outputs: PhaseOutputs = {};
  let queued: DecisionEvent[] = [];
  let unsent: DecisionEvent[] = [];
  let numbered = 0;
  let indexed = { status: '', phase: '' };
  const deliveries: Promise<void>[] = [];

  const queue = (...events: DecisionEvent[]): void => {
    for (const event of events) {
      record = apply(record, event);
      if (event.type === 'phase.completed') {
        (outputs as Record<string, unknown>)[event.data.phase] = event.data.output;
      }
      queued.push(event);
    }
  };

  // Deliveries run as workflows of their own, which outlive the decision; it waits only until
  // each has started, so that none is lost when the decision ends.
  const deliver = (events: readonly DecisionEvent[]): void => {
    if (!webhook) return;
    for (const event of events.filter((e) => webhook.events.includes(e.type))) {
      const id = deliveryId(record.process_id, event, record.seq);
      const message: WebhookMessage = {
        id,
        decision_id: record.process_id,
        url: webhook.url,
        body: {
          type: event.type,
          timestamp: record.updated_at,
          decision_id: record.process_id,
          data: event.data as Record<string, unknown>,
        },
        timeout_ms: webhook.timeout_ms,
        retry_ms: webhook.retry_ms,
      };
      const started = CancellationScope.nonCancellable(() =>
        startChild(webhookDeliveryWorkflow, {
          workflowId: id,
          args: [message],
          parentClosePolicy: ParentClosePolicy.ABANDON,
          memo: { decision_id: record.process_id, event: event.type },
        }),
      );
      deliveries.push(
        started.then(
          () => undefined,
          // A delivery that cannot start never fails the decision.
          (err: unknown) => log.warn('Webhook delivery not started', { id, error: String(err) }),
        ),
      );
    }
  };

  // Decisions started before sparse indexing upsert at every phase; others only when their
  // status changes, with the phase a decision stopped in (none while it runs): each upsert is a
  // history event and a visibility write.
  const index = (): void => {
    const phase =
      options.sparseIndex && record.status === 'running' ? '' : (record.current_phase ?? '');
    if (indexed.status === record.status && indexed.phase === phase) return;
    upsertSearchAttributes([
      { key: DecisionStatusAttribute, value: record.status },
      { key: DecisionPhaseAttribute, value: phase },
    ]);
    indexed = { status: record.status, phase };
  };

  const project = async (events: readonly DecisionEvent[]): Promise<void> => {
    // Events of a failed write ride along with the next one; a write that arrives twice is
    // ignored by its seq, so none is stored twice.
    unsent.push(...events);
    try {
      // The final write lands even when a cancellation arrives meanwhile: nothing after it
      // would repair it, and the decision has ended either way.
      await (isTerminal(record.status)
        ? CancellationScope.nonCancellable(() => projectFinalState(record, unsent))
        : projectDecision(record, unsent));
      unsent = [];
    } catch (err) {
      // Redis is a projection: the next write carries the whole state and repairs this one.
      log.warn('Projection write failed', { error: String(err), seq: record.seq });
    }
  };

  const flush = async (): Promise<void> => {
    const events = queued;
    queued = [];
    for (const event of events) event.n = ++numbered;
    record = stamp(record, events, new Date().toISOString(), Date.now());
    deliver(events);
    index();
    await project(events);
  };

  return {
    get record(): DecisionRecord {
      return record;
    },
    /** Every phase output so far, by phase. */
    outputs,
    queue,
    flush,
    /** Queues the events and publishes everything queued. */
    async emit(...events: DecisionEvent[]): Promise<void> {
      queue(...events);
      await flush();
    },
    /** Resolves once every delivery the decision published has started. */
    deliveriesStarted: () => Promise.all(deliveries),
  };
}

export type DecisionLog = ReturnType<typeof decisionLog>;
