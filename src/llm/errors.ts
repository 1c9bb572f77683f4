import { ApplicationFailure } from '@temporalio/common';
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';

/** Failure types a model call ends in; the non-retryable ones fail the decision at once. */
export const ModelErrorType = {
  RateLimited: 'ModelRateLimited',
  Unavailable: 'ModelUnavailable',
  Timeout: 'ModelTimeout',
  Connection: 'ModelConnectionError',
  BadResponse: 'ModelBadResponse',
  InvalidOutput: 'InvalidModelOutput',
  InvalidRequest: 'ModelInvalidRequest',
  Authentication: 'ModelAuthenticationError',
  NotFound: 'ModelNotFound',
  ContentRefused: 'ModelContentRefused',
  Cancelled: 'ModelCallCancelled',
  OutputTooLarge: 'OutputTooLarge',
} as const;

export function retryable(type: string, message: string, nextRetryDelayMs?: number) {
  return ApplicationFailure.create({
    type,
    message,
    nonRetryable: false,
    nextRetryDelay: nextRetryDelayMs,
  });
}

export function permanent(type: string, message: string) {
  return ApplicationFailure.create({ type, message, nonRetryable: true });
}

/**
 * An answer past its phase's bounds fails the attempt for good: the bounds come from the schema
 * with room to spare, so a model that passes them ignores its schema, and another attempt would
 * pay for the same. `truncated`: the provider stopped at the token cap.
 */
export function outputTooLarge(
  phase: string,
  model: string,
  size: { chars: number; maxChars: number } | { maxTokens: number },
) {
  return permanent(
    ModelErrorType.OutputTooLarge,
    'chars' in size
      ? `${phase}: the answer of ${model} is ${size.chars} characters, over the phase's limit of ${size.maxChars}`
      : `${phase}: ${model} reached the phase's cap of ${size.maxTokens} output tokens before finishing its answer (raise it with LLM_MAX_COMPLETION_TOKENS)`,
  );
}

/** Seconds or an HTTP date in Retry-After (or OpenAI's retry-after-ms), as milliseconds. */
export function retryAfterMs(headers: Headers | undefined, now = Date.now()): number | undefined {
  const ms = headers?.get('retry-after-ms');
  if (ms && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const value = headers?.get('retry-after');
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * Maps a provider error to a Temporal failure: 429 (honouring Retry-After), 5xx, timeouts and
 * connection errors are retried; 400, 401, 403, 404 and refusals fail the decision at once.
 */
export function classifyModelError(err: unknown, model: string): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof APIUserAbortError) {
    return retryable(ModelErrorType.Cancelled, `The call to ${model} was cancelled`);
  }
  if (err instanceof APIConnectionTimeoutError) {
    return retryable(ModelErrorType.Timeout, `${model} did not answer in time`);
  }
  if (err instanceof APIConnectionError) {
    return retryable(ModelErrorType.Connection, `Could not reach ${model}: ${err.message}`);
  }
  if (err instanceof APIError && typeof err.status === 'number') {
    const status = err.status;
    // The SDK's message starts with the status again; the provider's own words are what matter.
    const detail = `${model} answered HTTP ${status}: ${err.message.replace(/^\d{3}\s+/, '')}`;
    if (status === 429) {
      return retryable(
        ModelErrorType.RateLimited,
        detail,
        retryAfterMs(err.headers as Headers | undefined),
      );
    }
    if (status === 401 || status === 403) return permanent(ModelErrorType.Authentication, detail);
    if (status === 404) return permanent(ModelErrorType.NotFound, detail);
    if (status === 400 || status === 422) return permanent(ModelErrorType.InvalidRequest, detail);
    if (status === 408 || status === 409 || status >= 500) {
      return retryable(ModelErrorType.Unavailable, detail);
    }
    return permanent(ModelErrorType.InvalidRequest, detail);
  }
  const message = err instanceof Error ? err.message : String(err);
  return retryable(ModelErrorType.BadResponse, `Unusable answer from ${model}: ${message}`);
}
