import { isCluster, RedisKeys, type RedisClient } from './keys';
import type { PublishedLiveEvent } from '../domain/live';
import { toEvent, type StoredEvent } from './redis-projection';

/** The most live events a decision's stream keeps; older ones are simply gone. */
export const LIVE_MAX_EVENTS = 2000;
/** A phase's output is written at most this often (one pipelined write). */
export const LIVE_INTERVAL_MS = 50;
/** How long the end of an attempt waits for its last write before it goes on without it. */
const CLOSE_WAIT_MS = 250;
/** How often a write refreshes the stream's TTL (the first write of each attempt always does). */
const EXPIRE_EVERY_MS = 10_000;

/** Where a live event comes from: one attempt of one phase (of one need, for retrieval). */
export interface LiveScope {
  decisionId: string;
  phase: PublishedLiveEvent['data']['phase'];
  index: number;
  attempt: number;
  need: string | null;
}

export interface LiveChannelOptions {
  ttlSeconds: number;
  maxEvents?: number;
  intervalMs?: number;
  /** Called for each write that failed; its events are dropped (counted in `dropped`). */
  onDropped?: (err: unknown, events: number) => void;
}

/** What one attempt publishes: the model's output as it comes, batched. */
export interface LivePublisher {
  /** A retried attempt begins: published first, before this attempt's output. */
  announce(): void;
  /** Text the attempt's `call`-th model call wrote (calls count from 1; a new call starts over). */
  output(call: number, piece: string): void;
  /** Writes what is pending, waiting for it a short while at most. */
  close(): Promise<void>;
}

/** Reads a decision's live events: the API's event streams. */
export class LiveReader {
  protected readonly keys: RedisKeys;

  constructor(
    protected readonly redis: RedisClient,
    prefix: string,
  ) {
    this.keys = new RedisKeys(prefix, isCluster(redis));
  }

  key(decisionId: string): string {
    return this.keys.live(decisionId);
  }

  /** Live events after `afterId` (exclusive; from the start when null) up to `toId` (inclusive). */
  async read(
    decisionId: string,
    afterId: string | null,
    toId = '+',
    count = LIVE_MAX_EVENTS,
  ): Promise<StoredEvent[]> {
    const start = afterId ? `(${afterId}` : '-';
    const entries = await this.redis.xrange(this.key(decisionId), start, toId, 'COUNT', count);
    return entries.map(toEvent);
  }
}

/**
 * The side channel of a decision's live events: a capped Redis stream per decision beside its
 * durable events, written by the activities and read by the API's event streams. Nothing here is
 * durable or awaited by a phase: while Redis is slow, output gathers into the next write; while
 * it is away, writes fail and their events are dropped (the offsets in later deltas show the gap).
 */
export class LiveChannel extends LiveReader {
  /** Events dropped because their write failed, since the process started. */
  dropped = 0;

  constructor(
    redis: RedisClient,
    prefix: string,
    private readonly options: LiveChannelOptions,
  ) {
    super(redis, prefix);
  }

  publisher(scope: LiveScope): LivePublisher {
    const key = this.key(scope.decisionId);
    const interval = this.options.intervalMs ?? LIVE_INTERVAL_MS;
    const base = {
      phase: scope.phase,
      index: scope.index,
      attempt: scope.attempt,
      need: scope.need,
    };
    let announced: PublishedLiveEvent | null = null;
    // The call being written and its text not yet sent; a call's text starts at offset 0.
    let pending: { call: number; offset: number; text: string } | null = null;
    const queue: PublishedLiveEvent[] = [];
    let inFlight: Promise<void> | null = null;
    let timer: NodeJS.Timeout | null = null;
    let lastWrite = 0;
    let lastExpire = 0;

    const take = (): PublishedLiveEvent[] => {
      const events = queue.splice(0);
      if (announced) events.unshift(announced);
      announced = null;
      if (pending && pending.text.length > 0) {
        events.push({ type: 'phase.delta', data: { ...base, ...pending } });
        pending = { call: pending.call, offset: pending.offset + pending.text.length, text: '' };
      }
      return events;
    };

    const write = (): void => {
      timer = null;
      const events = take();
      if (events.length === 0) return;
      const pipeline = this.redis.pipeline();
      for (const event of events) {
        pipeline.xadd(
          key,
          'MAXLEN',
          String(this.options.maxEvents ?? LIVE_MAX_EVENTS),
          '*',
          'type',
          event.type,
          'data',
          JSON.stringify(event.data),
        );
      }
      // A cluster's event hubs read the stream when its shard channel speaks.
      if (this.keys.cluster) pipeline.spublish(key, '');
      const now = Date.now();
      if (now - lastExpire >= EXPIRE_EVERY_MS) {
        pipeline.expire(key, this.options.ttlSeconds);
        lastExpire = now;
      }
      lastWrite = now;
      inFlight = pipeline
        .exec()
        .then((results) => {
          const failed = results?.find(([err]) => err)?.[0];
          if (failed) throw failed;
        })
        .catch((err: unknown) => {
          this.dropped += events.length;
          // The next write sets the TTL again: this one may not have.
          lastExpire = 0;
          this.options.onDropped?.(err, events.length);
        })
        .finally(() => {
          inFlight = null;
          schedule();
        });
    };

    // At most one write in flight, and one per interval: output gathers meanwhile.
    const schedule = (): void => {
      if (timer || inFlight) return;
      if (!announced && queue.length === 0 && !pending?.text) return;
      const wait = lastWrite + interval - Date.now();
      if (wait <= 0) write();
      else timer = setTimeout(write, wait);
    };

    return {
      announce() {
        if (scope.attempt > 1) {
          announced = { type: 'phase.attempt', data: base };
          schedule();
        }
      },
      output(call, piece) {
        if (!pending || pending.call !== call) {
          // The previous call's rest goes first, as its own delta.
          if (pending?.text) {
            queue.push({ type: 'phase.delta', data: { ...base, ...pending } });
          }
          // Calls only count up: a new one starts at the beginning of its answer.
          pending = { call, offset: 0, text: '' };
        }
        pending.text += piece;
        schedule();
      },
      async close() {
        if (timer) {
          clearTimeout(timer);
          timer = null;
        }
        // Read through a function: write() sets it, out of the compiler's sight.
        const flight = (): Promise<void> | null => inFlight;
        const last = async () => {
          for (let f = flight(); f; f = flight()) await f;
          write();
          for (let f = flight(); f; f = flight()) await f;
        };
        let waited: NodeJS.Timeout | undefined;
        await Promise.race([
          last(),
          new Promise<void>((resolve) => (waited = setTimeout(resolve, CLOSE_WAIT_MS))),
        ]);
        clearTimeout(waited);
      },
    };
  }
}
