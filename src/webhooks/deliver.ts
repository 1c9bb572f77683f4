import { randomBytes } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import ipaddr from 'ipaddr.js';
import { Webhook } from 'standardwebhooks';
import type { WebhookMessage } from '../domain/webhook';
import {
  assertPublic,
  guardedLookup,
  hostOf,
  portAllowed,
  WebhookUrlError,
  type AllowedPorts,
  type Resolve,
} from './address';

/** A new signing secret in the Standard Webhooks form: `whsec_` and a base64 key of 32 bytes. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

// Agents of their own: the global ones may send through a proxy (NODE_USE_ENV_PROXY), whose
// address the guarded lookup would check instead of the receiver's.
const agents = { http: new HttpAgent(), https: new HttpsAgent() };

// Only these keep the method and the body; a 301/302/303 would turn the POST into a GET.
const FOLLOWED_REDIRECTS = new Set([307, 308]);
const MAX_REDIRECTS = 3;

export interface PostOptions {
  secret: string;
  /**
   * While the secret is rotated, the one before it: the delivery carries a signature made with
   * each, so receivers that still hold the old secret verify it too (Standard Webhooks' list of
   * space-separated signatures).
   */
  previousSecret?: string | null;
  allowPrivateNetworks: boolean;
  /** The ports deliveries (and the redirects they follow) may reach; 80 and 443 by default. */
  allowedPorts?: AllowedPorts;
  /** Resolves the receiver's host, with a deadline (see createResolve). */
  resolve?: Resolve;
  /** Aborts the attempt (the activity's cancellation). */
  signal?: AbortSignal;
  userAgent?: string;
}

/** The receiver's answer to one attempt: its status, and the URL that gave it. */
export interface PostOutcome {
  status: number;
  url: string;
}

/**
 * POSTs a message signed per Standard Webhooks (`webhook-id`, `webhook-timestamp` of this
 * attempt, `webhook-signature`), following 307/308 redirects with the same checks as the first
 * URL. Resolves with any HTTP status; rejects when no answer came (refused address, connection
 * error, timeout).
 */
export async function postWebhook(
  message: WebhookMessage,
  options: PostOptions,
): Promise<PostOutcome> {
  const payload = JSON.stringify(message.body);
  const timestamp = new Date();
  const headers = {
    'content-type': 'application/json',
    'user-agent': options.userAgent ?? 'decision-backend-webhooks',
    'webhook-id': message.id,
    'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
    'webhook-signature': [options.secret, options.previousSecret]
      .filter((secret): secret is string => Boolean(secret))
      .map((secret) => new Webhook(secret).sign(message.id, timestamp, payload))
      .join(' '),
  };
  const signal = AbortSignal.any([
    AbortSignal.timeout(message.timeout_ms),
    ...(options.signal ? [options.signal] : []),
  ]);
  let url = new URL(message.url);
  if (!portAllowed(url, options.allowedPorts)) {
    throw new WebhookUrlError(`uses a port webhooks are not sent to (WEBHOOK_ALLOWED_PORTS)`);
  }
  for (let redirects = 0; ; redirects++) {
    let response: IncomingMessage;
    try {
      response = await send(url, payload, headers, options, signal);
    } catch (err) {
      // Where a redirect led is the receiver's to say, not the decision's owner's to learn.
      if (redirects > 0 && err instanceof WebhookUrlError) {
        throw new WebhookUrlError('was redirected to an address webhooks may not reach');
      }
      throw err;
    }
    const location = response.headers.location;
    if (!FOLLOWED_REDIRECTS.has(response.statusCode ?? 0) || !location) {
      return { status: response.statusCode ?? 0, url: url.href };
    }
    if (redirects >= MAX_REDIRECTS) {
      throw new WebhookUrlError(`more than ${MAX_REDIRECTS} redirects from ${message.url}`);
    }
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      throw new WebhookUrlError('was redirected to something that is not a URL');
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new WebhookUrlError(`was redirected to a ${next.protocol.slice(0, -1)} URL`);
    }
    if (!portAllowed(next, options.allowedPorts)) {
      throw new WebhookUrlError(
        'was redirected to a port webhooks are not sent to (WEBHOOK_ALLOWED_PORTS)',
      );
    }
    url = next;
  }
}

function send(
  url: URL,
  payload: string,
  headers: Record<string, string>,
  options: Pick<PostOptions, 'allowPrivateNetworks' | 'resolve'>,
  signal: AbortSignal,
): Promise<IncomingMessage> {
  const { allowPrivateNetworks } = options;
  const host = hostOf(url);
  // A literal address is connected to without a lookup, so it is checked here.
  if (!allowPrivateNetworks && ipaddr.isValid(host)) assertPublic(host, host);
  const https = url.protocol === 'https:';
  const request = https ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent: https ? agents.https : agents.http,
        headers: { ...headers, 'content-length': String(Buffer.byteLength(payload)) },
        lookup: guardedLookup(allowPrivateNetworks, options.resolve),
        signal,
      },
      (response) => {
        // The body is not read for anything; draining it frees the connection.
        response.resume();
        response.once('end', () => resolve(response));
        response.once('error', reject);
      },
    );
    req.once('error', (err) =>
      reject(signal.aborted && !(err instanceof WebhookUrlError) ? abortReason(signal) : err),
    );
    req.end(payload);
  });
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(String(reason));
}

const DNS_FAILURES: Record<string, string> = {
  ENOTFOUND: 'DNS: no such host',
  ENODATA: 'DNS: no address',
  ETIMEOUT: 'DNS timeout',
  EAI_AGAIN: 'DNS timeout',
  ESERVFAIL: 'DNS server failure',
  EREFUSED: 'DNS server refused',
  ECANCELLED: 'DNS timeout',
};

const CONNECTION_FAILURES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection reset',
  ETIMEDOUT: 'connect timeout',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EADDRNOTAVAIL: 'address not available',
};

/**
 * What kind of failure left an attempt without an answer, in words that name no address or
 * port (Node's error texts carry the target's, and a delivery's errors are shown to its owner,
 * who must not learn where a name or a redirect led): timeout, connection refused, DNS timeout,
 * TLS error (CERT_HAS_EXPIRED), ….
 */
export function failureKind(err: unknown): string {
  if (!(err instanceof Error)) return 'connection failed';
  if (err.name === 'TimeoutError') return 'timeout';
  if (err.name === 'AbortError') return 'cancelled';
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const known = CONNECTION_FAILURES[code] ?? DNS_FAILURES[code];
  if (known) return known;
  if (/^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED)/.test(code)) {
    return `TLS error (${code})`;
  }
  if (code.startsWith('HPE_')) return 'invalid HTTP response';
  return 'connection failed';
}
