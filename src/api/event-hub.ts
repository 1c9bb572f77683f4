import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { toEvent, type StoredEvent } from '../projection/redis-projection';

/** One open event stream's view of the hub: the events after the last it was given. */
export interface EventSubscription {
  /** The events that arrived since the last call, or [] when `timeoutMs` passes first. */
  next(timeoutMs: number): Promise<StoredEvent[]>;
  close(): void;
}

interface Subscriber {
  key: string;
  last: string;
  queue: StoredEvent[];
  wake: (() => void) | null;
}

/** Orders Redis stream ids ("ms-seq"). */
export function compareStreamIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am - bm || as - bs;
}

/**
 * Serves every open event stream of a process from one blocking Redis connection: one XREAD
 * covers the streams of all subscribers, so a thousand open streams hold one connection, not a
 * thousand. A new subscriber wakes the read at once through a stream of the hub's own. The
 * connection opens with the first subscriber and closes with the last.
 */
export class EventHub {
  private readonly subscribers = new Set<Subscriber>();
  private reader: Redis | null = null;
  private running = false;
  private readonly wakeKey: string;
  private wakeId = '0-0';
  /** The reader's Redis client name, to find it in CLIENT LIST. */
  readonly connectionName: string;

  constructor(
    private readonly redis: Redis,
    private readonly keyOf: (decisionId: string) => string,
    prefix: string,
    private readonly options: { blockMs?: number; onError?: (err: unknown) => void } = {},
  ) {
    const name = randomUUID();
    this.wakeKey = `${prefix}events-hub:${name}`;
    this.connectionName = `events-hub-${name}`;
  }

  /** Events of a decision after `after` (exclusive; from the start when null) as they come. */
  subscribe(decisionId: string, after: string | null): EventSubscription {
    const sub: Subscriber = {
      key: this.keyOf(decisionId),
      last: after ?? '0-0',
      queue: [],
      wake: null,
    };
    this.subscribers.add(sub);
    this.start();
    void this.redis.xadd(this.wakeKey, 'MAXLEN', '10', '*', 'wake', '1').catch(() => undefined);
    return {
      next: (timeoutMs) =>
        new Promise<StoredEvent[]>((resolve) => {
          const take = () => {
            clearTimeout(timer);
            sub.wake = null;
            resolve(sub.queue.splice(0));
          };
          const timer = setTimeout(take, timeoutMs);
          if (sub.queue.length > 0) take();
          else sub.wake = take;
        }),
      close: () => {
        this.subscribers.delete(sub);
        sub.wake?.();
      },
    };
  }

  private start(): void {
    if (this.running) return;
    this.running = true;
    // Its reads block on purpose: longer than the block, not the client's command timeout.
    this.reader = this.redis.duplicate({
      connectionName: this.connectionName,
      commandTimeout: (this.options.blockMs ?? 5000) + 2000,
    });
    this.reader.on('error', (err: unknown) => this.options.onError?.(err));
    void this.loop().finally(() => {
      this.reader?.disconnect();
      this.reader = null;
      this.running = false;
      // Someone subscribed while the loop was ending.
      if (this.subscribers.size > 0) this.start();
    });
  }

  private async loop(): Promise<void> {
    while (this.subscribers.size > 0) {
      // Each stream is read from the earliest position any of its subscribers needs.
      const from = new Map<string, string>();
      for (const sub of this.subscribers) {
        const known = from.get(sub.key);
        if (!known || compareStreamIds(sub.last, known) < 0) from.set(sub.key, sub.last);
      }
      let reply: [string, [string, string[]][]][] | null;
      try {
        reply = await this.reader!.xread(
          'COUNT',
          500,
          'BLOCK',
          this.options.blockMs ?? 5000,
          'STREAMS',
          ...from.keys(),
          this.wakeKey,
          ...from.values(),
          this.wakeId,
        );
      } catch (err) {
        this.options.onError?.(err);
        await new Promise((resolve) => setTimeout(resolve, 1000));
        continue;
      }
      for (const [key, entries] of reply ?? []) {
        if (key === this.wakeKey) {
          this.wakeId = entries.at(-1)?.[0] ?? this.wakeId;
          continue;
        }
        const events = entries.map(toEvent);
        for (const sub of this.subscribers) {
          if (sub.key !== key) continue;
          const fresh = events.filter((e) => compareStreamIds(e.id, sub.last) > 0);
          if (fresh.length === 0) continue;
          sub.queue.push(...fresh);
          sub.last = fresh.at(-1)!.id;
          sub.wake?.();
        }
      }
    }
    await this.redis.del(this.wakeKey).catch(() => undefined);
  }
}
