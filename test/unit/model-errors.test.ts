import { ApplicationFailure } from '@temporalio/common';
import { APIConnectionError, APIConnectionTimeoutError, APIError } from 'openai';
import { describe, expect, it } from 'vitest';
import { classifyModelError, retryAfterMs } from '../../src/llm/errors';

const apiError = (status: number, headers: Record<string, string> = {}) =>
  APIError.generate(
    status,
    { error: { message: `status ${status}` } },
    undefined,
    new Headers(headers),
  );

describe('classifyModelError', () => {
  it.each([
    [429, 'ModelRateLimited', false],
    [500, 'ModelUnavailable', false],
    [503, 'ModelUnavailable', false],
    [400, 'ModelInvalidRequest', true],
    [401, 'ModelAuthenticationError', true],
    [403, 'ModelAuthenticationError', true],
    [404, 'ModelNotFound', true],
  ])('HTTP %i → %s (nonRetryable: %s)', (status, type, nonRetryable) => {
    const failure = classifyModelError(apiError(status), 'm');
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ type, nonRetryable });
    expect(failure.message).toContain(`m answered HTTP ${status}`);
  });

  it('passes Retry-After on as the next retry delay', () => {
    expect(classifyModelError(apiError(429, { 'retry-after': '7' }), 'm').nextRetryDelay).toBe(
      7000,
    );
  });

  it('retries timeouts, connection errors and unusable answers', () => {
    expect(classifyModelError(new APIConnectionTimeoutError(), 'm')).toMatchObject({
      type: 'ModelTimeout',
      nonRetryable: false,
    });
    expect(classifyModelError(new APIConnectionError({ message: 'reset' }), 'm')).toMatchObject({
      type: 'ModelConnectionError',
      nonRetryable: false,
    });
    expect(classifyModelError(new SyntaxError('Unexpected token'), 'm')).toMatchObject({
      type: 'ModelBadResponse',
      nonRetryable: false,
    });
  });
});

describe('retryAfterMs', () => {
  it('reads seconds, milliseconds and HTTP dates', () => {
    expect(retryAfterMs(new Headers({ 'retry-after': '2' }))).toBe(2000);
    expect(retryAfterMs(new Headers({ 'retry-after-ms': '150' }))).toBe(150);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs(new Headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:03 GMT' }), now)).toBe(
      3000,
    );
    expect(retryAfterMs(new Headers({}))).toBeUndefined();
  });
});
