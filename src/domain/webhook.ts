import type { DecisionEvent, DecisionEventType } from './decision';

/** What a webhook receives when its request names no events. */
export const DEFAULT_WEBHOOK_EVENTS: readonly DecisionEventType[] = [
  'decision.completed',
  'decision.failed',
  'decision.cancelled',
  'review.requested',
];

/** Where a decision's events are delivered, and how hard, fixed when it is created. */
export interface WebhookSubscription {
  url: string;
  events: DecisionEventType[];
  /** How long one attempt waits for the receiver. */
  timeout_ms: number;
  /** How long a delivery is retried before it counts as failed. */
  retry_ms: number;
}

export const DELIVERY_STATES = ['pending', 'retrying', 'delivered', 'failed', 'gone'] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

/** One event's delivery, as the status document shows it. */
export interface WebhookDelivery {
  /** The `webhook-id` every attempt of this delivery carries. */
  id: string;
  event: DecisionEventType;
  state: DeliveryState;
  attempts: number;
  /** The receiver's last HTTP status; null before an answer (or after a timeout). */
  last_status: number | null;
  last_error: string | null;
  delivered_at: string | null;
}

/** The webhook part of a decision's record: the subscription and one entry per event sent. */
export interface WebhookState {
  url: string;
  events: DecisionEventType[];
  deliveries: WebhookDelivery[];
}

/** The JSON body a receiver gets, in the Standard Webhooks shape (type, timestamp, data). */
export interface WebhookBody {
  type: DecisionEventType;
  timestamp: string;
  decision_id: string;
  data: Record<string, unknown>;
}

/** What one delivery workflow sends, and where. */
export interface WebhookMessage {
  id: string;
  decision_id: string;
  url: string;
  body: WebhookBody;
  timeout_ms: number;
  retry_ms: number;
}

/** The delivery's id: unique per event and per run (seq grows across resets), stable on replay. */
export function deliveryId(decisionId: string, event: DecisionEvent, seq: number): string {
  return `msg_${decisionId}_${event.n ?? 0}_${seq}`;
}

/** A delivery before its first attempt. */
export function pendingDelivery(id: string, event: DecisionEventType): WebhookDelivery {
  return {
    id,
    event,
    state: 'pending',
    attempts: 0,
    last_status: null,
    last_error: null,
    delivered_at: null,
  };
}

/** Failure types of a delivery attempt that retrying cannot change. */
export const FINAL_DELIVERY_FAILURES = [
  'WebhookGone',
  'WebhookUrlRefused',
  'WebhookNotConfigured',
] as const;

const FINAL_STATES: readonly DeliveryState[] = ['delivered', 'failed', 'gone'];

/**
 * Orders reports of one delivery by when their attempt was scheduled, and at the same attempt a
 * final state after `retrying`: a report that arrives late never moves a delivery backwards, and
 * a delivery reset to run again (attempts counting from 1) moves it forwards.
 */
export function deliveryRank(attemptScheduledMs: number, state: DeliveryState): number {
  return attemptScheduledMs * 10 + (FINAL_STATES.includes(state) ? 1 : 0);
}
