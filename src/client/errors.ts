import type { Problem } from './types';

/**
 * The API answered with an error: `problem` is the RFC 9457 document it sent. An answer that
 * carries none (a proxy's error page) gets one made as RFC 9457 says for a bare status: type
 * `about:blank`, the status text as its title, and the answer's text as its detail.
 */
export class DecisionApiError extends Error {
  override name = 'DecisionApiError';
  /** Seconds to wait before sending the request again, when the answer said (Retry-After). */
  readonly retryAfter: number | undefined;

  constructor(
    /** The HTTP status. */
    readonly status: number,
    readonly problem: Problem,
    /** The answer, its body already read: its headers (X-Request-Id, RateLimit-*) are here. */
    readonly response: Response,
    /** The answer's body: its JSON, or its text when it is not JSON. */
    readonly body: unknown,
  ) {
    super(`${status} ${problem.title}: ${problem.detail}`);
    this.retryAfter = retryAfterSeconds(response.headers.get('Retry-After'));
  }
}

/** The API sent something the client cannot read (data that is not JSON); no retry will help. */
export class DecisionProtocolError extends Error {
  override name = 'DecisionProtocolError';
}

/** An event stream could not be resumed: every reconnect the client allows itself failed. */
export class DecisionStreamLostError extends Error {
  override name = 'DecisionStreamLostError';
}

/** The error for an answer that is no success; `body` as openapi-fetch read it. */
export function apiError(response: Response, body: unknown): DecisionApiError {
  return new DecisionApiError(response.status, problemOf(response, body), response, body);
}

function problemOf(response: Response, body: unknown): Problem {
  if (
    typeof body === 'object' &&
    body !== null &&
    typeof (body as Partial<Problem>).type === 'string' &&
    typeof (body as Partial<Problem>).title === 'string' &&
    typeof (body as Partial<Problem>).detail === 'string'
  ) {
    return body as Problem;
  }
  const title = response.statusText || `HTTP ${response.status}`;
  const text = (typeof body === 'string' ? body : (JSON.stringify(body) ?? '')).trim();
  return { type: 'about:blank', title, status: response.status, detail: text || title };
}

/** Retry-After in seconds: given as seconds, or as a date (RFC 9110, section 10.2.3). */
function retryAfterSeconds(value: string | null): number | undefined {
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}
