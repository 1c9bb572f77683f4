import ipaddr from 'ipaddr.js';
import type { Context } from 'hono';

/**
 * The client's address: the socket's, or with `trustProxy` the last one in X-Forwarded-For (the
 * one the proxy in front added). Never the first: a client writes that one itself.
 */
export function clientAddress(c: Context, trustProxy = false): string {
  if (trustProxy) {
    const forwarded = c.req.header('X-Forwarded-For')?.split(',').at(-1)?.trim();
    if (forwarded) return forwarded;
  }
  const incoming = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)
    ?.incoming;
  return incoming?.socket?.remoteAddress ?? 'unknown';
}

/**
 * What limits count an address under: an IPv4 address as it is (an IPv4-mapped IPv6 one too), an
 * IPv6 address by its /64, the least a site or a single host is given, so that one host cannot
 * take a fresh count with each of its addresses. Anything else counts as itself.
 */
export function addressBucket(address: string): string {
  if (!ipaddr.isValid(address)) return address.slice(0, 100);
  const parsed = ipaddr.process(address);
  if (parsed.kind() === 'ipv4') return parsed.toString();
  const parts = (parsed as ipaddr.IPv6).parts.slice(0, 4);
  return `${new ipaddr.IPv6([...parts, 0, 0, 0, 0]).toString()}/64`;
}
