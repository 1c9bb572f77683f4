import { ApplicationFailure } from '@temporalio/common';
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { ModelErrorType } from '../domain/failures';

export { ModelErrorType } from '../domain/failures';

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

/** What the provider said, for the log only: its text can quote the request, even a key. */
export interface ProviderErrorReport {
  model: string;
  type: string;
  status?: number;
  providerMessage: string;
}

const HTTP_MEANING: Record<string, string> = {
  [ModelErrorType.RateLimited]: 'rate limited',
  [ModelErrorType.Authentication]: 'the API key was refused (check LLM_API_KEY)',
  [ModelErrorType.NotFound]: 'no such model or endpoint (check LLM_MODEL and LLM_BASE_URL)',
  [ModelErrorType.InvalidRequest]: 'the request was refused as invalid',
  [ModelErrorType.Unavailable]: 'the server is unavailable',
};

/**
 * Maps a provider error to a Temporal failure: 429 (honouring Retry-After), 5xx, timeouts and
 * connection errors are retried; 400, 401, 403, 404 and refusals fail the decision at once. The
 * failure's message, which every reader of the decision sees, is written here from the status
 * alone; the provider's own words go to `report` (the log).
 */
export function classifyModelError(
  err: unknown,
  model: string,
  report: (r: ProviderErrorReport) => void = () => {},
): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  const raw = err instanceof Error ? err.message : String(err);
  const fail = (
    make: typeof retryable | typeof permanent,
    type: string,
    message: string,
    status?: number,
    delayMs?: number,
  ) => {
    report({ model, type, status, providerMessage: raw });
    return make === retryable ? retryable(type, message, delayMs) : permanent(type, message);
  };
  if (err instanceof APIUserAbortError) {
    return retryable(ModelErrorType.Cancelled, `The call to ${model} was cancelled`);
  }
  if (err instanceof APIConnectionTimeoutError) {
    return fail(retryable, ModelErrorType.Timeout, `${model} did not answer in time`);
  }
  if (err instanceof APIConnectionError) {
    return fail(retryable, ModelErrorType.Connection, `Could not reach ${model}'s server`);
  }
  if (err instanceof APIError && typeof err.status === 'number') {
    const status = err.status;
    const type =
      status === 429
        ? ModelErrorType.RateLimited
        : status === 401 || status === 403
          ? ModelErrorType.Authentication
          : status === 404
            ? ModelErrorType.NotFound
            : status === 408 || status === 409 || status >= 500
              ? ModelErrorType.Unavailable
              : ModelErrorType.InvalidRequest;
    const message = `${model} answered HTTP ${status}: ${HTTP_MEANING[type]}`;
    if (type === ModelErrorType.RateLimited) {
      const delay = retryAfterMs(err.headers as Headers | undefined);
      return fail(retryable, type, message, status, delay);
    }
    return fail(type === ModelErrorType.Unavailable ? retryable : permanent, type, message, status);
  }
  return fail(retryable, ModelErrorType.BadResponse, `Unusable answer from ${model}`);
}
