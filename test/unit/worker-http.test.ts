import { afterEach, describe, expect, it } from 'vitest';
import { Counter, Registry } from 'prom-client';
import type { ServerType } from '@hono/node-server';
import { loadWorkerConfig } from '../../src/config';
import { listenWorkerHttp } from '../../src/main/start-worker';

describe("the worker's HTTP server", () => {
  const servers: ServerType[] = [];
  afterEach(() => {
    for (const server of servers.splice(0)) server.close();
  });

  const listen = async (env: Record<string, string>) => {
    const config = loadWorkerConfig({
      WORKER_HTTP_PORT: '0',
      WORKER_SDK_METRICS_ADDRESS: 'off',
      ...env,
    });
    const registry = new Registry();
    new Counter({ name: 'worker_http_test_total', help: 'a metric', registers: [registry] });
    const http = await listenWorkerHttp(config, {
      state: () => 'RUNNING',
      health: () => Promise.resolve({ ok: true, checks: {} } as never),
      registry,
    });
    servers.push(http.server);
    const address = http.server.address();
    return { url: http.url, address: typeof address === 'object' && address ? address : null };
  };

  it('listens on the loopback unless told otherwise, whatever HOST the API is given', async () => {
    const { address, url } = await listen({ HOST: '0.0.0.0' });
    expect(address?.address).toBe('127.0.0.1');
    expect(url).toBe(`http://127.0.0.1:${address?.port}`);
    const told = await listen({ WORKER_HTTP_HOST: '0.0.0.0' });
    expect(told.address?.address).toBe('0.0.0.0');
  });

  it('asks for METRICS_TOKEN on /metrics when one is set, and only there', async () => {
    const token = 'metrics-token-0123456789';
    const { url } = await listen({ METRICS_TOKEN: token });
    const get = (path: string, key?: string) =>
      fetch(`${url}${path}`, key ? { headers: { Authorization: `Bearer ${key}` } } : {});
    expect((await get('/metrics')).status).toBe(401);
    expect((await get('/metrics', 'metrics-token-wrong-6789')).status).toBe(401);
    const metrics = await get('/metrics', token);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('worker_http_test_total');
    expect((await get('/health')).status).toBe(200);
    expect((await get('/ready')).status).toBe(200);
    // Without a token, no question asked.
    const open = await listen({});
    expect((await fetch(`${open.url}/metrics`)).status).toBe(200);
  });

  it('refuses a METRICS_TOKEN under 16 characters', () => {
    expect(() => loadWorkerConfig({ METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN/);
  });
});
