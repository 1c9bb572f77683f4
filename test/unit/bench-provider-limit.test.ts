import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { mostInWindow } from '../../tools/bench/measure';
import { createModelServer, type ReceivedRequests } from '../../tools/bench/model-server';
import { perMinute, shortestSpan } from '../../tools/bench/provider-limit';

describe("the bench's provider limit figures", () => {
  it('count the most calls in any window, wherever it starts', () => {
    // Fixed windows of 1000 ms from 0 hold 2 each; the span from 900 holds 4.
    expect(mostInWindow([0, 900, 950, 1000, 1100, 2500], 1000)).toBe(4);
    // A call a window after another is in the next window, not in the same.
    expect(mostInWindow([0, 1000, 2000], 1000)).toBe(1);
    expect(mostInWindow([], 1000)).toBe(0);
  });

  it('find the shortest time in which one call more than a limit fell', () => {
    expect(shortestSpan([0, 500, 61_000, 61_200, 200_000], 3)).toBe(60.7);
    expect(shortestSpan([0, 500], 3)).toBeNull();
  });

  it('count calls a minute over whole bursts of the limit', () => {
    // Bursts of 600 every 62 s: 1200 calls from the first to the 1201st, 124 s apart.
    const times = [
      ...Array.from({ length: 600 }, (_, i) => i * 10),
      ...Array.from({ length: 600 }, (_, i) => 62_000 + i * 10),
      124_000,
      124_010,
    ];
    expect(perMinute(times, 600)).toEqual({ perMinute: 580.6, counted: 1200 });
    expect(perMinute(times.slice(0, 600), 600)).toEqual({ perMinute: 0, counted: 0 });
  });
});

describe("the bench's model server with a limit", () => {
  it('answers 429 with Retry-After a call over the limit in the trailing minute, and records every arrival', async () => {
    const server = createModelServer({ chunks: 1, intervalMs: 10, limitPerMinute: 3 });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const call = () =>
        fetch(`${url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({
            model: 'bench',
            messages: [{ role: 'user', content: 'q' }],
            response_format: {
              type: 'json_schema',
              json_schema: {
                name: 'a',
                schema: { type: 'object', properties: { a: { type: 'string' } } },
              },
            },
          }),
        });
      const answers = [];
      for (let i = 0; i < 4; i++) answers.push(await call());
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 429]);
      const retryAfter = Number(answers[3]!.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThan(58);
      expect(retryAfter).toBeLessThanOrEqual(60);
      const received = (await (await fetch(`${url}/bench/requests`)).json()) as ReceivedRequests;
      expect(received.arrivals).toHaveLength(4);
      expect(received.refused).toBe(1);
    } finally {
      server.close();
    }
  });
});
