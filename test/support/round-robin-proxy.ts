import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The response header that says which upstream (its index) answered a request. */
export const UPSTREAM_HEADER = 'x-upstream';

/**
 * One address in front of several API processes, as a load balancer puts them: each request goes
 * to the next upstream in turn (not each connection, so that a client reusing its connection
 * still reaches them all), and to the one after when an upstream is not there (a dead process).
 * Responses stream through unbuffered (event streams), with `x-upstream` added; a client that
 * goes away closes its upstream request, and an upstream that goes away ends its client's
 * response.
 */
export async function startRoundRobinProxy(upstreams: readonly string[]) {
  let next = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => forward(Buffer.concat(chunks), 0));
    const forward = (body: Buffer, tried: number) => {
      const index = next++ % upstreams.length;
      const target = new URL(upstreams[index]!);
      const upstream = request(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: target.host },
          agent: false,
        },
        (answer: IncomingMessage) => {
          res.writeHead(answer.statusCode ?? 502, {
            ...answer.headers,
            [UPSTREAM_HEADER]: String(index),
          });
          res.flushHeaders();
          answer.pipe(res);
          answer.on('aborted', () => res.destroy());
          answer.on('error', () => res.destroy());
        },
      );
      upstream.on('error', (err: NodeJS.ErrnoException) => {
        // As nginx's proxy_next_upstream: a refused connection never reached the upstream; one
        // reset before any answer (a process dying) is tried again for a read only.
        const retry =
          err.code === 'ECONNREFUSED' ||
          (err.code === 'ECONNRESET' && (req.method === 'GET' || req.method === 'HEAD'));
        if (!res.headersSent && retry && tried + 1 < upstreams.length) {
          forward(body, tried + 1);
        } else {
          res.destroy();
        }
      });
      res.on('close', () => upstream.destroy());
      upstream.end(body);
    };
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
