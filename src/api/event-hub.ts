import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { toEvent, type StoredEvent } from '../projection/redis-projection';

/** An event and the stream (its Redis key) it came from. */
export type HubEvent = StoredEvent & { key: string };

/** One open event stream's view of the hub: the events after the last it was given. */
export interface EventSubscription {
  /**
   * The events that arrived since the last call, or [] when `timeoutMs` passes first. Events of
   * several streams that arrive together come ordered by id (on a tie, in the order the streams
   * were subscribed).
   */
  next(timeoutMs: number): Promise<HubEvent[]>;
  close(): void;
}

interface Subscriber {
  /** Each stream's key and the last id given from it. */
  last: Map<string, string>;
  queue: HubEvent[];
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
    prefix: string,
    private readonly options: { blockMs?: number; onError?: (err: unknown) => void } = {},
  ) {
    const name = randomUUID();
    this.wakeKey = `${prefix}events-hub:${name}`;
    this.connectionName = `events-hub-${name}`;
  }

  /**
   * Events of one or more streams (Redis keys), each after its `after` (exclusive; from the start
   * when null), as they come.
   */
  subscribe(streams: readonly { key: string; after: string | null }[]): EventSubscription {
    const sub: Subscriber = {
      last: new Map(streams.map((s) => [s.key, s.after ?? '0-0'])),
      queue: [],
      wake: null,
    };
    this.subscribers.add(sub);
    this.start();
    void this.redis.xadd(this.wakeKey, 'MAXLEN', '10', '*', 'wake', '1').catch(() => undefined);
    return {
      next: (timeoutMs) =>
        new Promise<HubEvent[]>((resolve) => {
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
        for (const [key, last] of sub.last) {
          const known = from.get(key);
          if (!known || compareStreamIds(last, known) < 0) from.set(key, last);
        }
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
      const arrived = new Map<string, HubEvent[]>();
      for (const [key, entries] of reply ?? []) {
        if (key === this.wakeKey) {
          this.wakeId = entries.at(-1)?.[0] ?? this.wakeId;
          continue;
        }
        arrived.set(
          key,
          entries.map((entry) => ({ ...toEvent(entry), key })),
        );
      }
      for (const sub of this.subscribers) {
        const fresh: HubEvent[] = [];
        for (const [key, last] of sub.last) {
          const events = (arrived.get(key) ?? []).filter((e) => compareStreamIds(e.id, last) > 0);
          if (events.length === 0) continue;
          fresh.push(...events);
          sub.last.set(key, events.at(-1)!.id);
        }
        if (fresh.length === 0) continue;
        // Stable: on equal ids, the stream subscribed first comes first.
        fresh.sort((a, b) => compareStreamIds(a.id, b.id));
        sub.queue.push(...fresh);
        sub.wake?.();
      }
    }
    await this.redis.del(this.wakeKey).catch(() => undefined);
  }
}
