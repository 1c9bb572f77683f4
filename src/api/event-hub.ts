import { randomUUID } from 'node:crypto';
import type { Cluster } from 'ioredis';
import { reportEvery } from '../process/report-every';
import { hashTag } from '../projection/keys';
import { duplicateRedis, isCluster, type RedisClient } from '../projection/redis-client';
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

type XreadReply = [string, [string, string[]][]][] | null;

/**
 * Serves every open event stream of a process from one blocking Redis connection: one XREAD
 * covers the streams of all subscribers, so a thousand open streams hold one connection, not a
 * thousand. A new subscriber wakes the read at once through a stream of the hub's own. The
 * connection opens with the first subscriber and closes with the last.
 *
 * On a Redis Cluster one command cannot read streams of several slots, so the hub listens
 * instead: writers announce appended events on each stream's shard channel (SPUBLISH, on the
 * stream's own node), the hub subscribes to the channels of the streams it serves (one connection
 * per master) and reads a stream's slot when its channel speaks, and every `blockMs` in case an
 * announcement was lost (a failover).
 */
export class EventHub {
  private readonly subscribers = new Set<Subscriber>();
  private reader: RedisClient | null = null;
  private running = false;
  private readonly wakeKey: string;
  private wakeId = '0-0';
  /** The reader's Redis client name, to find it in CLIENT LIST. */
  readonly connectionName: string;

  // On a cluster: how many subscribers each stream (channel) has, the slots (hash tags) to read
  // again, and those whose read is in flight.
  private readonly channels = new Map<string, number>();
  private readonly dirty = new Set<string>();
  private readonly reading = new Set<string>();
  private flushing = false;
  private endSweep: (() => void) | null = null;
  private readonly report: (err: unknown) => void;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
    private readonly options: {
      blockMs?: number;
      /**
       * A Redis error, reported at most once every 5 s (a failover fails many reads at
       * once): `more` is how many came since the last report and were not.
       */
      onError?: (err: unknown, more: number) => void;
    } = {},
  ) {
    const name = randomUUID();
    this.wakeKey = `${prefix}events-hub:${name}`;
    this.connectionName = `events-hub-${name}`;
    this.report = reportEvery(5000, options.onError);
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
    if (isCluster(this.redis)) this.listen(sub);
    else {
      void this.redis.xadd(this.wakeKey, 'MAXLEN', '10', '*', 'wake', '1').catch(() => undefined);
    }
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
        if (!this.subscribers.delete(sub)) return;
        sub.wake?.();
        if (isCluster(this.redis)) this.unlisten(sub);
      },
    };
  }

  private start(): void {
    if (this.running) return;
    this.running = true;
    // Its reads block on purpose: longer than the block, not the client's command timeout.
    const reader = duplicateRedis(this.redis, {
      connectionName: this.connectionName,
      commandTimeout: (this.options.blockMs ?? 5000) + 2000,
    });
    this.reader = reader;
    if (isCluster(reader)) {
      reader.on('smessage', (channel: string) => this.read([hashTag(channel)]));
      // Streams subscribed while the last reader was closing.
      for (const key of this.channels.keys()) this.ssubscribe(key);
    }
    // What a reader says once it is being closed (a cluster closed while connecting) is no news.
    reader.on('error', (err: unknown) => {
      if (this.reader === reader) this.report(err);
    });
    void (isCluster(this.redis) ? this.listening() : this.loop()).finally(() => {
      this.reader = null;
      reader.disconnect();
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
      let reply: XreadReply;
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
        this.report(err);
        await new Promise((resolve) => setTimeout(resolve, 1000));
        continue;
      }
      const wake = reply?.find(([key]) => key === this.wakeKey);
      if (wake) this.wakeId = wake[1].at(-1)?.[0] ?? this.wakeId;
      this.deliver(reply?.filter(([key]) => key !== this.wakeKey) ?? null, from);
    }
    await this.redis.del(this.wakeKey).catch(() => undefined);
  }

  /**
   * Gives each subscriber the events of its streams after the last it was given. `from` is where
   * the read started on each stream: a subscriber that came meanwhile with an earlier position is
   * left to the next read, which starts from its position (these events would skip what it has
   * not seen between the two); true when one was.
   */
  private deliver(reply: XreadReply, from: ReadonlyMap<string, string>): boolean {
    let behind = false;
    const arrived = new Map<string, HubEvent[]>();
    for (const [key, entries] of reply ?? []) {
      arrived.set(
        key,
        entries.map((entry) => ({ ...toEvent(entry), key })),
      );
    }
    for (const sub of this.subscribers) {
      // Behind on one of its streams: all of them wait, so that they stay merged in id order.
      const late = [...sub.last].some(([key, last]) => {
        const start = from.get(key);
        return start !== undefined && compareStreamIds(last, start) < 0;
      });
      if (late) {
        behind = true;
        continue;
      }
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
    return behind;
  }

  /** On a cluster: subscribes to the channels of `sub`'s streams, then reads them. */
  private listen(sub: Subscriber): void {
    const tags = new Set<string>();
    for (const key of sub.last.keys()) {
      tags.add(hashTag(key));
      const count = this.channels.get(key) ?? 0;
      this.channels.set(key, count + 1);
      if (count === 0) this.ssubscribe(key);
    }
    this.read([...tags]);
  }

  private ssubscribe(key: string): void {
    // Read once subscribed too: what was appended before the subscription took is read then.
    void (this.reader as Cluster)
      .ssubscribe(key)
      .then(() => this.read([hashTag(key)]))
      .catch((err: unknown) => this.report(err));
  }

  private unlisten(sub: Subscriber): void {
    for (const key of sub.last.keys()) {
      const count = (this.channels.get(key) ?? 1) - 1;
      if (count > 0) {
        this.channels.set(key, count);
        continue;
      }
      this.channels.delete(key);
      // With the last subscriber gone, the connections close, subscriptions and all.
      if (this.subscribers.size === 0) continue;
      void (this.reader as Cluster | null)
        ?.sunsubscribe(key)
        .catch((err: unknown) => this.report(err));
    }
    if (this.subscribers.size === 0) this.endSweep?.();
  }

  /** On a cluster: lives while there are subscribers, reading every slot each `blockMs`. */
  private async listening(): Promise<void> {
    const every = this.options.blockMs ?? 5000;
    while (this.subscribers.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, every);
        this.endSweep = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.endSweep = null;
      this.read([...new Set([...this.channels.keys()].map(hashTag))]);
    }
  }

  /** On a cluster: reads the streams of these slots (hash tags), each slot by one XREAD. */
  private read(tags: readonly string[]): void {
    for (const tag of tags) this.dirty.add(tag);
    if (this.flushing) return;
    this.flushing = true;
    queueMicrotask(() => {
      this.flushing = false;
      for (const tag of this.dirty) {
        if (this.reading.has(tag)) continue;
        this.dirty.delete(tag);
        this.reading.add(tag);
        void this.readSlot(tag)
          .catch((err: unknown) => this.report(err))
          .finally(() => {
            this.reading.delete(tag);
            // Spoken again while it was read.
            if (this.dirty.has(tag)) this.read([]);
          });
      }
    });
  }

  private async readSlot(tag: string): Promise<void> {
    const from = new Map<string, string>();
    for (const sub of this.subscribers) {
      for (const [key, last] of sub.last) {
        if (hashTag(key) !== tag) continue;
        const known = from.get(key);
        if (!known || compareStreamIds(last, known) < 0) from.set(key, last);
      }
    }
    if (from.size === 0) return;
    const reply: XreadReply = await this.redis.xread(
      'COUNT',
      500,
      'STREAMS',
      ...from.keys(),
      ...from.values(),
    );
    const behind = this.deliver(reply, from);
    // A full page: more may wait; or a subscriber came meanwhile from further back.
    if (behind || reply?.some(([, entries]) => entries.length === 500)) this.read([tag]);
  }
}
