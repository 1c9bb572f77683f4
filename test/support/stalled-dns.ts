import { createSocket } from 'node:dgram';

/** The name a DNS query asks about (its first question), read from the packet. */
export function queriedName(packet: Buffer): string {
  const labels: string[] = [];
  for (let at = 12; at < packet.length && packet[at]! > 0; at += packet[at]! + 1) {
    labels.push(packet.subarray(at + 1, at + 1 + packet[at]!).toString());
  }
  return labels.join('.');
}

/**
 * A DNS server that takes every query and never answers (a resolver that stalls), on a UDP port
 * of 127.0.0.1: `server` is what a Resolver's setServers takes; `queries` what it was asked.
 */
export async function startStalledDns() {
  const socket = createSocket('udp4');
  const queries: string[] = [];
  socket.on('message', (packet) => queries.push(queriedName(packet)));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  return {
    server: `127.0.0.1:${port}`,
    queries,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
