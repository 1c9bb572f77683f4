import type { LookupAddress, LookupOneOptions, LookupOptions } from 'node:dns';
import ipaddr from 'ipaddr.js';
import { createResolve, type Resolve } from './resolver';

export type { Resolve } from './resolver';

/** A webhook URL this server will not call, with the reason in words the caller can act on. */
export class WebhookUrlError extends Error {
  override name = 'WebhookUrlError';
}

const OPT_IN = 'webhooks reach public addresses only, unless WEBHOOK_ALLOW_PRIVATE_NETWORKS=true';

/** The special range an address lies in (loopback, private, linkLocal, …), or null when public. */
export function nonPublicRange(address: string): string | null {
  if (!ipaddr.isValid(address)) return 'unparsable';
  // process() turns an IPv4-mapped IPv6 address (::ffff:10.0.0.1) into the IPv4 one it carries.
  const parsed = ipaddr.process(address);
  const range = parsed.range();
  if (range !== 'unicast') return range;
  // The deprecated IPv4-compatible form (::127.0.0.1) counts as unicast there; no public
  // receiver has such an address.
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).parts.slice(0, 6).every((p) => p === 0)) {
    return 'ipv4Compatible';
  }
  return null;
}

/**
 * Throws when an address that a webhook host resolved to is not a public one. The message names
 * the kind of address, not the address a name resolved to: callers must not learn this network's
 * internal names from it.
 */
export function assertPublic(host: string, address: string): void {
  const range = nonPublicRange(address);
  if (range !== null) {
    const what = host === address ? `${address}, a` : `${host} resolves to a`;
    throw new WebhookUrlError(`${what} ${range} address: ${OPT_IN}`);
  }
}

/** The URL's host as DNS and ipaddr.js spell it: IPv6 literals lose their brackets. */
export function hostOf(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

/**
 * The URL's host could not be resolved for a reason that may pass (a DNS server that timed out
 * or failed): no verdict on the URL, so the request may be sent again.
 */
export class WebhookCheckUnavailable extends Error {
  override name = 'WebhookCheckUnavailable';
}

/** What resolvers answer for a name that does not exist or has no address: the URL is wrong. */
const NO_SUCH_NAME = new Set(['ENOTFOUND', 'ENODATA', 'EAI_NONAME', 'EAI_NODATA', 'NXDOMAIN']);

let defaultResolve: Resolve | null = null;
/** The system's DNS servers, 5 s a lookup: for callers that give no resolver of their own. */
function systemResolve(): Resolve {
  defaultResolve ??= createResolve({ timeoutMs: 5000 });
  return defaultResolve;
}

/** The ports webhooks may be sent to: a set, or `any` (WEBHOOK_ALLOWED_PORTS=*). */
export type AllowedPorts = ReadonlySet<number> | 'any';

/** Plain HTTP and HTTPS only, unless WEBHOOK_ALLOWED_PORTS widens it. */
export const DEFAULT_ALLOWED_PORTS: AllowedPorts = new Set([80, 443]);

/** The port a URL connects to: the one it names, or its scheme's. */
export function portOf(url: URL): number {
  if (url.port) return Number(url.port);
  return url.protocol === 'https:' ? 443 : 80;
}

/** Whether a webhook may be sent to this URL's port. */
export function portAllowed(url: URL, allowed: AllowedPorts = DEFAULT_ALLOWED_PORTS): boolean {
  return allowed === 'any' || allowed.has(portOf(url));
}

function allowedList(allowed: AllowedPorts): string {
  return allowed === 'any' ? 'any' : [...allowed].sort((a, b) => a - b).join(', ');
}

export interface UrlCheckOptions {
  allowPrivateNetworks: boolean;
  /** The ports webhooks may reach; 80 and 443 by default. Private networks do not widen it. */
  allowedPorts?: AllowedPorts;
  /** Resolves a host's addresses; the system's DNS servers with a 5 s deadline by default. */
  resolve?: Resolve;
}

/**
 * Checks a webhook URL before a decision that uses it starts: http or https, a port webhooks may
 * reach, and unless private networks are allowed, a host whose every address (after DNS
 * resolution) is public.
 */
export async function checkWebhookUrl(text: string, options: UrlCheckOptions): Promise<URL> {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new WebhookUrlError('is not an absolute URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new WebhookUrlError(`must use http or https, not ${url.protocol.slice(0, -1)}`);
  }
  if (url.username || url.password) {
    throw new WebhookUrlError(
      'must not carry credentials (user:password@): they would be kept in the decision and its history; the signature authenticates deliveries',
    );
  }
  if (!portAllowed(url, options.allowedPorts)) {
    throw new WebhookUrlError(
      `uses port ${portOf(url)}: webhooks are sent to ports ${allowedList(options.allowedPorts ?? DEFAULT_ALLOWED_PORTS)} only (WEBHOOK_ALLOWED_PORTS)`,
    );
  }
  if (options.allowPrivateNetworks) return url;
  const host = hostOf(url);
  if (ipaddr.isValid(host)) {
    assertPublic(host, host);
    return url;
  }
  let addresses: LookupAddress[];
  try {
    addresses = await (options.resolve ?? systemResolve())(host);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code && NO_SUCH_NAME.has(code))
      throw new WebhookUrlError(`${host} does not resolve (${code})`);
    throw new WebhookCheckUnavailable(
      `${host} could not be resolved just now (${code ?? String(err)}), so its addresses could not be checked; retry shortly`,
    );
  }
  if (addresses.length === 0) throw new WebhookUrlError(`${host} resolves to no address`);
  for (const { address } of addresses) assertPublic(host, address);
  return url;
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for http.request that resolves through `resolve` (with its deadline, off libuv's
 * thread pool) and refuses non-public addresses when the connection is made, so a name that
 * resolved to a public address when the decision started cannot be pointed at an internal one
 * later (DNS rebinding), and neither can a redirect.
 */
export function guardedLookup(allowPrivateNetworks: boolean, resolve: Resolve = systemResolve()) {
  return (
    host: string,
    options: LookupOptions | LookupOneOptions,
    callback: LookupCallback,
  ): void => {
    resolve(host).then(
      (all) => {
        const family = options.family === 4 || options.family === 6 ? options.family : null;
        const addresses = family ? all.filter((a) => a.family === family) : all;
        try {
          if (!allowPrivateNetworks) {
            for (const { address } of addresses) assertPublic(host, address);
          }
        } catch (refused) {
          return callback(refused as NodeJS.ErrnoException, []);
        }
        if ('all' in options && options.all) return callback(null, addresses);
        const first = addresses[0];
        if (!first) {
          return callback(
            Object.assign(new Error(`${host} resolves to no address`), { code: 'ENODATA' }),
            [],
          );
        }
        callback(null, first.address, first.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, []),
    );
  };
}
