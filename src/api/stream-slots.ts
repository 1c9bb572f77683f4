import { randomUUID } from 'node:crypto';
import type { RedisClient } from '../projection/redis-client';
import { reportEvery } from '../process/report-every';
import { Slots } from '../process/slots';

// The clock is Redis's own (TIME), so that API processes whose clocks differ agree on which
// leases have run out. A key is one principal's open streams: a sorted set of stream ids scored by
// when their lease runs out (ms); the key itself expires with its last lease.

// Drops the leases that ran out, then adds the stream unless the principal holds `limit` already.
// KEYS: the principal's streams. ARGV: the stream's id, the limit, the lease in ms.
const TAKE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`;

// Renews the leases of streams still open; one that ran out (a Redis that did not answer for a
// while, a stream taken while it did not) is added again: it is open, so it counts.
// KEYS: the principal's streams. ARGV: the lease in ms, then the ids of the streams.
const RENEW_SCRIPT = `
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], until_ms, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`;

// How many of the principal's leases have not run out. KEYS: the principal's streams.
const COUNT_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
`;

type SlotsRedis = RedisClient & {
  takeStreamSlot(key: string, id: string, limit: number, leaseMs: number): Promise<number>;
  renewStreamSlots(key: string, leaseMs: number, ...ids: string[]): Promise<number>;
  countStreamSlots(key: string): Promise<number>;
};

/** Counts what one key (principal) holds open at once; see StreamSlots. */
export interface SlotCounter {
  /**
   * Takes one of `key`'s slots, if fewer than `limit` are held: the function that gives it back
   * (safe to call more than once), or null when there is none to take.
   */
  tryTake(key: string, limit: number): Promise<(() => void) | null>;
  /** Whether `key` holds fewer than `limit` slots: what a take would be told, nothing taken. */
  hasRoom(key: string, limit: number): Promise<boolean>;
}

export interface StreamSlotsOptions {
  /**
   * How long a slot counts without being renewed: the open streams of a process that died stop
   * counting within it. Renewed every third of it while the stream is open.
   */
  leaseMs?: number;
  /**
   * Redis did not answer: this process's own count decided alone. At most once every 5 s: `more`
   * is how many failed calls came meanwhile and were not reported.
   */
  onError?: (err: unknown, more: number) => void;
}

/**
 * Event streams open per principal, counted in Redis so that the cap holds across API processes:
 * each stream holds a lease in its principal's sorted set, taken and checked in one script and
 * renewed while the stream is open, so that a process that dies without giving its streams back
 * holds them one lease at most. Each process also counts its own streams; while Redis does not
 * answer, that count alone decides (the cap protects the service: a Redis outage must neither
 * lift it nor stop requests), and the streams it lets open are counted in Redis at the next
 * renewal once Redis answers.
 */
export class StreamSlots implements SlotCounter {
  private readonly redis: SlotsRedis;
  private readonly local = new Slots();
  private readonly leaseMs: number;
  /** The streams this process holds open, by Redis key: renewed together, one call a key. */
  private readonly held = new Map<string, Set<string>>();
  private readonly pending = new Set<Promise<unknown>>();
  private renewer: NodeJS.Timeout | null = null;
  private closed = false;

  private readonly report: (err: unknown) => void;

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
    private readonly options: StreamSlotsOptions = {},
  ) {
    if (!('takeStreamSlot' in redis)) {
      redis.defineCommand('takeStreamSlot', { numberOfKeys: 1, lua: TAKE_SCRIPT });
      redis.defineCommand('renewStreamSlots', { numberOfKeys: 1, lua: RENEW_SCRIPT });
      redis.defineCommand('countStreamSlots', { numberOfKeys: 1, lua: COUNT_SCRIPT });
    }
    this.redis = redis as SlotsRedis;
    this.leaseMs = options.leaseMs ?? 30_000;
    this.report = reportEvery(5000, options.onError);
  }

  /** The Redis key of a principal's open streams: hash-tagged, one cluster slot per principal. */
  keyOf(principal: string): string {
    return `${this.prefix}{streams:${principal}}`;
  }

  async tryTake(principal: string, limit: number): Promise<(() => void) | null> {
    // This process's own streams are counted in Redis too: its count alone never refuses what
    // Redis would allow, and it holds while Redis does not answer.
    const local = this.local.tryTake(principal, limit);
    if (!local) return null;
    const key = this.keyOf(principal);
    const id = randomUUID();
    try {
      if ((await this.redis.takeStreamSlot(key, id, limit, this.leaseMs)) !== 1) {
        local();
        return null;
      }
    } catch (err) {
      this.report(err);
    }
    this.hold(key, id);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      local();
      this.unhold(key, id);
      if (!this.closed) this.track(this.redis.zrem(key, id));
    };
  }

  async hasRoom(principal: string, limit: number): Promise<boolean> {
    if (this.local.count(principal) >= limit) return false;
    try {
      return (await this.redis.countStreamSlots(this.keyOf(principal))) < limit;
    } catch (err) {
      this.report(err);
      return true;
    }
  }

  /** Gives back every slot still held (a process that stops), and waits for Redis to hear it. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopRenewing();
    for (const [key, ids] of this.held) this.track(this.redis.zrem(key, ...ids));
    this.held.clear();
    await Promise.all(this.pending);
  }

  private hold(key: string, id: string): void {
    let ids = this.held.get(key);
    if (!ids) this.held.set(key, (ids = new Set()));
    ids.add(id);
    if (!this.renewer) {
      this.renewer = setInterval(() => this.renew(), Math.max(100, Math.floor(this.leaseMs / 3)));
      this.renewer.unref();
    }
  }

  private unhold(key: string, id: string): void {
    const ids = this.held.get(key);
    ids?.delete(id);
    if (ids?.size === 0) this.held.delete(key);
    if (this.held.size === 0) this.stopRenewing();
  }

  private renew(): void {
    for (const [key, ids] of this.held) {
      this.track(this.redis.renewStreamSlots(key, this.leaseMs, ...ids));
    }
  }

  private stopRenewing(): void {
    if (this.renewer) clearInterval(this.renewer);
    this.renewer = null;
  }

  /** A call whose failure only means a lease runs out on its own. */
  private track(call: Promise<unknown>): void {
    const settled = call.catch((err: unknown) => this.report(err));
    this.pending.add(settled);
    void settled.finally(() => this.pending.delete(settled));
  }
}
