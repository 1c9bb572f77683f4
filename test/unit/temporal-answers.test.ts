import { createServer, type Http2Server } from 'node:http2';
import { createServer as createTcpServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { temporalAnswers } from '../../tools/temporal/dev-server';
import { freePort } from '../support/ports';

const GET_SYSTEM_INFO = '/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo';

/**
 * The one call a probe makes, answered as a Temporal frontend does over gRPC (HTTP/2 without
 * TLS): GetSystemInfo with an empty response message; anything else is UNIMPLEMENTED.
 */
function fakeFrontend(port: number): Promise<Http2Server> {
  const server = createServer();
  server.on('stream', (stream, headers) => {
    const known = headers[':path'] === GET_SYSTEM_INFO;
    stream.respond(
      { ':status': 200, 'content-type': 'application/grpc' },
      { waitForTrailers: true },
    );
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': known ? '0' : '12' }));
    // One message frame: not compressed, length 0.
    stream.end(known ? Buffer.alloc(5) : undefined);
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

describe('temporalAnswers', () => {
  let server: Http2Server | undefined;
  afterEach(() => new Promise<void>((done) => (server ? server.close(() => done()) : done())));

  it('says false at once when nothing listens, and true from a frontend that answers', async () => {
    const port = await freePort();
    const started = Date.now();
    expect(await temporalAnswers(`127.0.0.1:${port}`, 2000)).toBe(false);
    expect(Date.now() - started).toBeLessThan(1000);
    server = await fakeFrontend(port);
    expect(await temporalAnswers(`127.0.0.1:${port}`, 2000)).toBe(true);
  });

  // The first `npm start` after the CLI's build: probes failed for as long as the build took, the
  // server came up, and gRPC's reconnect backoff, shared between probes, hid it for a minute.
  it('sees a server that comes up after seconds of failed probes on its first probe after', async () => {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const until = Date.now() + 8000;
    while (Date.now() < until) {
      expect(await temporalAnswers(address, 1000)).toBe(false);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    server = await fakeFrontend(port);
    expect(await temporalAnswers(address, 1000)).toBe(true);
  }, 20_000);

  // A server that holds its port before it serves gRPC: the TCP check passes, and each probe's
  // gRPC connection fails. Those failures must not delay the probe after it serves.
  it('sees a frontend on its first probe after seconds of gRPC failures on a port that accepted', async () => {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const refusing: Server = createTcpServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => refusing.listen(port, '127.0.0.1', resolve));
    try {
      const until = Date.now() + 8000;
      while (Date.now() < until) {
        expect(await temporalAnswers(address, 1000)).toBe(false);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    } finally {
      await new Promise<void>((resolve) => refusing.close(() => resolve()));
    }
    server = await fakeFrontend(port);
    expect(await temporalAnswers(address, 1000)).toBe(true);
  }, 30_000);
});
