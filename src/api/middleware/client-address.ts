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
