import {
  ActivityFailure,
  ApplicationFailure,
  proxyActivities,
  log,
  proxyLocalActivities,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  FINAL_DELIVERY_FAILURES,
  type WebhookDelivery,
  type WebhookMessage,
} from '../domain/webhook';

const { recordDeliveryFailure } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumAttempts: 3 },
});

/**
 * Delivers one decision event to its webhook: a signed POST, retried with backoff (every attempt
 * with the same webhook-id) until the receiver answers 2xx or 410, or the retry period ends. Each
 * attempt is an attempt of one activity, so the Web UI shows them, and a worker that dies
 * mid-attempt is replaced by another. It runs apart from its decision, which never waits for it,
 * on its decision's build (pinned, as the worker pins every workflow): its history only ever
 * replays on the code that wrote it, also across a rollback.
 */
export async function webhookDeliveryWorkflow(message: WebhookMessage): Promise<WebhookDelivery> {
  const { deliverWebhook } = proxyActivities<Activities>({
    // The request's own timeout ends an attempt first; this one catches a worker that died.
    startToCloseTimeout: message.timeout_ms + 5_000,
    scheduleToCloseTimeout: message.retry_ms,
    retry: {
      initialInterval: '2 seconds',
      backoffCoefficient: 2,
      maximumInterval: '1 hour',
      nonRetryableErrorTypes: [...FINAL_DELIVERY_FAILURES],
    },
    summary: `${message.body.type} → ${message.url.slice(0, 200)}`,
  });
  try {
    return await deliverWebhook(message);
  } catch (err) {
    const cause = err instanceof ActivityFailure ? err.cause : err;
    const reason = cause instanceof Error ? cause.message : String(cause);
    try {
      await recordDeliveryFailure(message, `Delivery failed: ${reason}`);
    } catch (recordErr) {
      // The failure below is the truth either way; the status document lags until read again.
      log.warn('Could not record the failed delivery', {
        id: message.id,
        error: String(recordErr),
      });
    }
    throw ApplicationFailure.create({
      type: 'WebhookDeliveryFailed',
      message: `Delivery ${message.id} of ${message.body.type} failed: ${reason}`,
      nonRetryable: true,
      cause: err instanceof Error ? err : undefined,
    });
  }
}
