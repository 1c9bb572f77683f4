import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createModelServer, type SentMarkers } from '../../tools/bench/model-server';

const body = JSON.stringify({
  model: 'bench',
  stream: true,
  messages: [{ role: 'user', content: 'q' }],
  response_format: {
    json_schema: {
      schema: {
        type: 'object',
        properties: { answer: { type: 'string', maxLength: 200 } },
        required: ['answer'],
      },
    },
  },
});

describe("the bench's model server", () => {
  // The slow-model part reads `max_open` to tell whether the worker's slots held calls back.
  it('counts the most calls it had open at once, and starts over from those still open', async () => {
    const server = createModelServer({ chunks: 10, intervalMs: 50 });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const call = async () => {
      const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', body });
      return res.text();
    };
    const markers = async () => (await (await fetch(`${url}/bench/markers`)).json()) as SentMarkers;
    try {
      await Promise.all(Array.from({ length: 5 }, call));
      await call();
      const first = await markers();
      expect(first).toMatchObject({ calls: 6, streamed: 6, max_open: 5 });
      const open = call();
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect((await markers()).max_open).toBe(1);
      await open;
      expect(await markers()).toMatchObject({ calls: 0, max_open: 1 });
      expect((await markers()).max_open).toBe(0);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
