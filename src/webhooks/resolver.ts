import { readFileSync } from 'node:fs';
import type { LookupAddress } from 'node:dns';
import { Resolver } from 'node:dns/promises';
import ipaddr from 'ipaddr.js';

export interface DnsOptions {
  /** DNS servers (`host` or `host:port`, IPv6 in brackets with a port); the system's by default. */
  servers?: readonly string[];
  /** How long one lookup may take in all, a wait for a free lookup slot included. */
  timeoutMs: number;
  /** Lookups in flight at once in this process; more wait for a slot, within their timeout. */
  maxInFlight?: number;
  /** The hosts file read once at start (`/etc/hosts`); null reads none. */
  hostsFile?: string | null;
}

/** The code a lookup that ran out of time fails with, as c-ares names its own timeouts. */
const TIMED_OUT = 'ETIMEOUT';

/** The least time left worth sending a query with. */
const MIN_QUERY_MS = 50;

/** What a name resolved to: every address, each with its family. */
export type Resolve = (host: string) => Promise<LookupAddress[]>;

/** A DNS failure with the code resolvers use (ENOTFOUND, ENODATA, ETIMEOUT, ESERVFAIL, …). */
function dnsError(code: string, host: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`DNS lookup of ${host} failed (${code})`), { code });
}

/** 4 or 6, as LookupAddress says it, for a valid address. */
const familyOf = (address: string) => (ipaddr.parse(address).kind() === 'ipv4' ? 4 : 6);

/** Names and their addresses from a hosts file: `address name alias…` lines, # comments. */
export function parseHosts(text: string): Map<string, LookupAddress[]> {
  const hosts = new Map<string, LookupAddress[]>();
  for (const line of text.split('\n')) {
    const [address, ...names] = line.replace(/#.*/, '').trim().split(/\s+/);
    if (!address || names.length === 0 || !ipaddr.isValid(address)) continue;
    const family = familyOf(address);
    for (const name of names) {
      const key = name.toLowerCase();
      hosts.set(key, [...(hosts.get(key) ?? []), { address, family }]);
    }
  }
  return hosts;
}

function readHosts(file: string | null): Map<string, LookupAddress[]> {
  if (file === null) return new Map();
  try {
    return parseHosts(readFileSync(file, 'utf8'));
  } catch {
    return new Map();
  }
}

/** A counting semaphore whose waiters give up when their signal aborts. */
function slots(size: number) {
  let free = size;
  const waiting: (() => void)[] = [];
  return {
    async acquire(signal: AbortSignal): Promise<() => void> {
      if (free > 0) free--;
      else {
        await new Promise<void>((granted, refused) => {
          const wake = () => {
            signal.removeEventListener('abort', abandon);
            granted();
          };
          const abandon = () => {
            waiting.splice(waiting.indexOf(wake), 1);
            refused(dnsError(TIMED_OUT, 'a slot'));
          };
          waiting.push(wake);
          signal.addEventListener('abort', abandon, { once: true });
        });
      }
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const next = waiting.shift();
        if (next) next();
        else free++;
      };
    },
  };
}

/**
 * Resolves webhook hosts with c-ares (node:dns's Resolver: its own sockets, not libuv's four
 * threads that `dns.lookup`, and so every connection the process makes, share), each lookup
 * within `timeoutMs` and at most `maxInFlight` at once: a DNS server that stalls costs a webhook
 * check its timeout, and nothing else in the process. A and AAAA are asked together; a name
 * answers with the addresses of either. `localhost` and its subdomains are loopback (RFC 6761),
 * names in the hosts file (read once, at start) answer from it, and every other name goes to
 * the DNS servers: no NSS, mDNS or search domains, as `dns.lookup` would use.
 */
export function createResolve(options: DnsOptions): Resolve {
  const hosts = readHosts(options.hostsFile === undefined ? '/etc/hosts' : options.hostsFile);
  const inFlight = slots(options.maxInFlight ?? 16);
  const servers = options.servers?.length ? [...options.servers] : null;
  // Servers c-ares refuses are refused here, at start, not at every lookup.
  if (servers) new Resolver().setServers(servers);
  return async (host) => {
    const name = host.toLowerCase().replace(/\.$/, '');
    if (ipaddr.isValid(name)) {
      return [{ address: name, family: familyOf(name) }];
    }
    if (name === 'localhost' || name.endsWith('.localhost')) {
      return [
        { address: '127.0.0.1', family: 4 },
        { address: '::1', family: 6 },
      ];
    }
    const listed = hosts.get(name);
    if (listed) return listed;

    const started = performance.now();
    const deadline = AbortSignal.timeout(options.timeoutMs);
    const release = await inFlight.acquire(deadline).catch(() => {
      throw dnsError(TIMED_OUT, host);
    });
    let resolver: Resolver | null = null;
    const stop = () => resolver?.cancel();
    deadline.addEventListener('abort', stop, { once: true });
    try {
      // A slot that came too late for a query to be answered: none is sent.
      const left = options.timeoutMs - (performance.now() - started);
      if (left < MIN_QUERY_MS || deadline.aborted) throw dnsError(TIMED_OUT, host);
      // A resolver per lookup, so that its queries are cancelled at the deadline; c-ares retries
      // within what is left (each try waits a share of it).
      const tries = 2;
      resolver = new Resolver({ timeout: Math.max(1, Math.floor(left / tries)), tries });
      if (servers) resolver.setServers(servers);
      const [v4, v6] = await Promise.allSettled([resolver.resolve4(name), resolver.resolve6(name)]);
      const addresses: LookupAddress[] = [
        ...(v4.status === 'fulfilled' ? v4.value.map((address) => ({ address, family: 4 })) : []),
        ...(v6.status === 'fulfilled' ? v6.value.map((address) => ({ address, family: 6 })) : []),
      ];
      if (addresses.length > 0) return addresses;
      const codes = [v4, v6].map((r) =>
        r.status === 'rejected'
          ? String((r.reason as NodeJS.ErrnoException).code ?? 'EFAIL')
          : 'ENODATA',
      );
      if (deadline.aborted) throw dnsError(TIMED_OUT, host);
      // A name that does not exist, or has no address: either answer alone says so.
      if (codes.includes('ENOTFOUND')) throw dnsError('ENOTFOUND', host);
      if (codes.every((code) => code === 'ENODATA')) throw dnsError('ENODATA', host);
      throw dnsError(codes.find((code) => code !== 'ENODATA') ?? TIMED_OUT, host);
    } finally {
      deadline.removeEventListener('abort', stop);
      release();
    }
  };
}
