import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the receiver got, and what it answered (null while it is held, or if the caller went away). */
export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  answered: number | null;
  /** When it arrived (Date.now()). */
  at: number;
}

/**
 * What to do with a request: answer with a status, or `hold` it unanswered until the caller
 * gives up (a receiver that hangs, or one whose sender dies mid-request).
 */
export type Answer = number | 'hold';

/**
 * Checks a delivery the way a receiver following Standard Webhooks does, with node:crypto alone
 * (not the library that signed it): HMAC-SHA256 of `id.timestamp.body` under the base64 key that
 * follows `whsec_`, compared in constant time against each `v1,` signature in the header.
 */
export function verifySignature(secret: string, headers: IncomingHttpHeaders, body: string) {
  const id = headers['webhook-id'];
  const timestamp = headers['webhook-timestamp'];
  const signatures = headers['webhook-signature'];
  if (typeof id !== 'string' || typeof timestamp !== 'string' || typeof signatures !== 'string') {
    return false;
  }
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest();
  return signatures.split(' ').some((entry) => {
    const [version, value = ''] = entry.split(',');
    const given = Buffer.from(value, 'base64');
    return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected);
  });
}

/** A local webhook receiver that records every request and answers as `answer` decides. */
export async function startReceiver(answer: (request: Received, index: number) => Answer) {
  const received: Received[] = [];
  const held: ServerResponse[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request: Received = {
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
        answered: null,
        at: Date.now(),
      };
      received.push(request);
      const what = answer(request, received.length - 1);
      if (what === 'hold') {
        held.push(res);
        return;
      }
      request.answered = what;
      res.writeHead(what).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/decisions`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of held) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
