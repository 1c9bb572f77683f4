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

  it('writes the message from the status alone; the provider text goes to the report', () => {
    const leaky = APIError.generate(
      401,
      { error: { message: 'Incorrect API key provided: sk-proj-abcd****************wxyz' } },
      undefined,
      new Headers(),
    );
    const reports: unknown[] = [];
    const failure = classifyModelError(leaky, 'm', (r) => reports.push(r));
    expect(failure.message).toBe(
      'm answered HTTP 401: the API key was refused (check LLM_API_KEY)',
    );
    expect(failure.message).not.toContain('sk-');
    expect(reports).toEqual([
      {
        model: 'm',
        type: 'ModelAuthenticationError',
        status: 401,
        providerMessage: expect.stringContaining('sk-proj-abcd'),
      },
    ]);
    const garbled = classifyModelError(new SyntaxError('Unexpected token s in "sk-1234"'), 'm');
    expect(garbled.message).toBe('Unusable answer from m');
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
