import calculateSlot from 'cluster-key-slot';
import { isCluster, RedisKeys, type RedisClient } from './keys';
import {
  isTerminal,
  type DecisionEvent,
  type DecisionRecord,
  type DecisionStatus,
} from '../domain/decision';
import type { PhaseName } from '../domain/phases';
import { DecisionRecordSchema, WebhookDeliverySchema } from '../domain/schemas';
import type { WebhookDelivery, WebhookState } from '../domain/webhook';

// Applies a write only when its seq is newer than the stored one, so a retried, late or replayed
// write never moves a decision backwards. Everything of one decision happens in one script, hence
// atomically (its keys share the decision's hash tag on a cluster).
// The events of a write are appended to the decision's stream only when the write applies, so each
// state change is streamed exactly once however often the write is retried.
// KEYS: record hash, result, event stream.
// ARGV: seq, id, created ms, completed ms ('' while running), ttl s, now ms, result JSON ('' if none),
// events as a JSON array of [type, data JSON, n or null], '1' to announce appended events on the
// stream's shard channel (a cluster's event hubs listen there), who writes ('workflow' or
// 'reconcile'), the workflow run that writes ('' when unknown), then the hash's field/value pairs.
// Returns 1 when applied, 2 when this very state is stored already (a retry), 0 when a newer one is.
const WRITE_SCRIPT = `
local skip_ends = false
local current = redis.call('HGET', KEYS[1], 'seq')
if current then
  local stored, seq = tonumber(current), tonumber(ARGV[1])
  -- The workflow's own write of a state that reconcile copied first still applies: its events
  -- must reach the stream, and a copy carries none.
  local copied = redis.call('HGET', KEYS[1], 'origin') == 'reconcile'
  if stored > seq then return 0 end
  if stored == seq and not (copied and ARGV[10] == 'workflow') then return 2 end
  -- The copy had the end already, with its event: the workflow's own end event would repeat it.
  if stored == seq then skip_ends = true end
end
local was = redis.call('HGET', KEYS[1], 'status')
local finished = ARGV[4] ~= ''
-- Events are numbered by the workflow; one at or below the last appended was appended already, by
-- a write that timed out for its sender but reached Redis all the same.
local appended = tonumber(redis.call('HGET', KEYS[1], 'events_n') or '0')
local run = redis.call('HGET', KEYS[1], 'run')
local new_run = ARGV[11] ~= '' and run and run ~= '' and run ~= ARGV[11]
if new_run or (not finished and (was == 'completed' or was == 'failed' or was == 'cancelled')) then
  -- The decision runs again (a reset, a retry): the old run's story, with its end, is over, and
  -- the new run numbers its events from where it was reset.
  redis.call('DEL', KEYS[3])
  appended = 0
end
local fields = {}
for i = 12, #ARGV do fields[#fields + 1] = ARGV[i] end
fields[#fields + 1] = 'origin'
fields[#fields + 1] = ARGV[10]
if ARGV[11] ~= '' then
  fields[#fields + 1] = 'run'
  fields[#fields + 1] = ARGV[11]
end
redis.call('HSET', KEYS[1], unpack(fields))
local last = appended
local appended_any = false
for _, event in ipairs(cjson.decode(ARGV[8])) do
  local n = event[3]
  local is_end = event[1] == 'decision.completed' or event[1] == 'decision.failed' or event[1] == 'decision.cancelled'
  if (type(n) ~= 'number' or n > appended) and not (skip_ends and is_end) then
    redis.call('XADD', KEYS[3], '*', 'type', event[1], 'data', event[2])
    if type(n) == 'number' and n > last then last = n end
    appended_any = true
  end
end
redis.call('HSET', KEYS[1], 'events_n', last)
if appended_any and ARGV[9] == '1' then redis.call('SPUBLISH', KEYS[3], '') end
if finished then
  if ARGV[7] ~= '' then
    redis.call('SET', KEYS[2], ARGV[7], 'EX', ARGV[5])
  else
    redis.call('DEL', KEYS[2])
  end
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  redis.call('EXPIRE', KEYS[3], ARGV[5])
else
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[3])
  redis.call('DEL', KEYS[2])
end
return 1
`;

// Files a decision in its bucket of the indexes across decisions, by the state a write stored:
// by creation time, and by completion time once it has finished. A finished write also drops the
// bucket's entries of decisions that finished longer ago than the TTL (their records are gone).
// KEYS: the bucket's created index, its completed index (one slot on a cluster).
// ARGV: id, created ms, completed ms ('' while running), ttl s, now ms.
const INDEX_SCRIPT = `
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 1
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local cutoff = tonumber(ARGV[5]) - tonumber(ARGV[4]) * 1000
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', cutoff, 'LIMIT', 0, 100)
if #expired > 0 then
  redis.call('ZREM', KEYS[2], unpack(expired))
  redis.call('ZREM', KEYS[1], unpack(expired))
end
return 1
`;

// Stores one webhook delivery's state in its decision's hash, unless a report of a later attempt
// (or this attempt's final state) is there already, and moves the hash's deliveries counter so
// that a record kept parsed is read again. A decision whose record has expired is left alone.
// KEYS: record hash. ARGV: delivery id, its state as JSON, its rank (see deliveryRank).
const DELIVERY_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local stored = redis.call('HGET', KEYS[1], 'delivery_rank:' .. ARGV[1])
if stored and tonumber(stored) > tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'delivery:' .. ARGV[1], ARGV[2], 'delivery_rank:' .. ARGV[1], ARGV[3])
redis.call('HINCRBY', KEYS[1], 'deliveries_v', 1)
return 1
`;

// An operator's action through Temporal (a retry's reset) started this run: until a write of it
// lands, the stored record is the old run's and the read rule goes to Temporal.
const EXPECT_RUN_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'awaiting_run', ARGV[1])
return 1
`;

export interface ProjectionOptions {
  /** Prefixes every key, so tests and several deployments can share one Redis. */
  prefix: string;
  /** How long a finished decision stays readable. */
  ttlSeconds: number;
  now?: () => number;
}

type ProjectionRedis = RedisClient & {
  writeDecision(...args: (string | number)[]): Promise<number>;
  indexDecision(...args: (string | number)[]): Promise<number>;
  writeDelivery(key: string, id: string, state: string, rank: number): Promise<number>;
  expectRun(key: string, runId: string): Promise<number>;
};

/** A stored record, and the run an operator's action started whose writes have not landed yet. */
export interface ProjectionEntry {
  record: DecisionRecord;
  awaitingRun: string | null;
}

// How long a write on a cluster waits for its master's replica to have it.
const REPLICA_WAIT_MS = 200;

// Finished records kept parsed per process, oldest dropped first.
const FINISHED_KEPT = 1000;

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/**
 * The Redis read model of decisions: a hash per decision, its result stored apart, sorted sets of
 * ids by creation and by completion time, and a TTL once a decision has finished.
 */
export class DecisionProjection {
  private readonly redis: ProjectionRedis;
  private readonly now: () => number;
  readonly keys: RedisKeys;
  private readonly finished = new Map<
    string,
    { record: DecisionRecord; deliveries: string | null; awaiting: string | null }
  >();

  constructor(
    redis: RedisClient,
    private readonly options: ProjectionOptions,
  ) {
    if (!('writeDecision' in redis)) {
      redis.defineCommand('writeDecision', { numberOfKeys: 3, lua: WRITE_SCRIPT });
      redis.defineCommand('indexDecision', { numberOfKeys: 2, lua: INDEX_SCRIPT });
      redis.defineCommand('writeDelivery', { numberOfKeys: 1, lua: DELIVERY_SCRIPT });
      redis.defineCommand('expectRun', { numberOfKeys: 1, lua: EXPECT_RUN_SCRIPT });
    }
    this.redis = redis as ProjectionRedis;
    this.now = options.now ?? Date.now;
    this.keys = new RedisKeys(options.prefix, isCluster(redis));
  }

  recordKey(id: string): string {
    return this.keys.record(id);
  }

  resultKey(id: string): string {
    return this.keys.result(id);
  }

  eventsKey(id: string): string {
    return this.keys.events(id);
  }

  /**
   * Stores the record unless a newer one (higher seq) is already there; true when it was applied.
   * `reconcile` marks a copy read from Temporal: the workflow's own write of the same state
   * replaces it, events included.
   */
  async write(
    record: DecisionRecord,
    events: readonly DecisionEvent[] = [],
    origin: 'workflow' | 'reconcile' = 'workflow',
    runId = '',
  ): Promise<boolean> {
    const id = record.process_id;
    const terminal = isTerminal(record.status);
    const completedMs = terminal && record.completed_at ? Date.parse(record.completed_at) : null;
    const fields: Record<string, string> = {
      process_id: id,
      owner: record.owner ?? '',
      query: record.query,
      context: record.context ?? '',
      metadata: JSON.stringify(record.metadata),
      review: JSON.stringify(record.review),
      forked_from: record.forked_from ? JSON.stringify(record.forked_from) : '',
      budget: record.budget ? JSON.stringify(record.budget) : '',
      webhook: record.webhook ? JSON.stringify(record.webhook) : '',
      status: record.status,
      current_phase: record.current_phase ?? '',
      phases: JSON.stringify(record.phases),
      error: record.error ? JSON.stringify(record.error) : '',
      created_at: record.created_at,
      updated_at: record.updated_at,
      completed_at: record.completed_at ?? '',
      seq: String(record.seq),
    };
    const createdMs = Date.parse(record.created_at);
    const now = this.now();
    const stored = await this.writeAcknowledged(
      this.recordKey(id),
      this.resultKey(id),
      this.eventsKey(id),
      record.seq,
      id,
      createdMs,
      completedMs ?? '',
      this.options.ttlSeconds,
      now,
      record.result ? JSON.stringify(record.result) : '',
      JSON.stringify(events.map((e) => [e.type, JSON.stringify(e.data), e.n ?? null])),
      this.keys.cluster ? '1' : '0',
      origin,
      runId,
      ...Object.entries(fields).flat(),
    );
    // The indexes follow the state stored, also on a retry whose first try stored the record
    // but not them; a write that lost to a newer one leaves them to that one.
    if (stored !== 0) {
      const bucket = this.keys.bucketOf(id);
      await Promise.all([
        this.redis.indexDecision(
          this.keys.created(bucket),
          this.keys.completed(bucket),
          id,
          createdMs,
          completedMs ?? '',
          this.options.ttlSeconds,
          now,
        ),
        record.owner ? this.redis.zadd(this.keys.owner(record.owner), createdMs, id) : null,
      ]);
    }
    return stored === 1;
  }

  /**
   * Runs the write script. On a cluster whose master of the record's slot has a replica, the
   * write is acknowledged once the replica has it too (WAIT, in the same batch to the same
   * master), or after REPLICA_WAIT_MS without it: a master that dies after acknowledging a write
   * loses none of it to its replica's promotion, and a write it had not acknowledged is sent
   * again by Temporal's retry, events and all.
   */
  private async writeAcknowledged(...args: (string | number)[]): Promise<number> {
    const record = String(args[0]);
    const replicas = isCluster(this.redis)
      ? (this.redis.slots[calculateSlot(record)]?.length ?? 1) - 1
      : 0;
    if (replicas <= 0) return this.redis.writeDecision(...args);
    const pipeline = this.redis.pipeline() as ReturnType<RedisClient['pipeline']> & {
      writeDecision(...args: (string | number)[]): unknown;
    };
    pipeline.writeDecision(...args);
    pipeline.wait(1, REPLICA_WAIT_MS);
    const [written] = (await pipeline.exec()) ?? [];
    if (!written) throw new Error('The projection write got no answer');
    if (written[0]) throw written[0];
    return written[1] as number;
  }

  /**
   * The decision's record, or null when the projection has none. A finished record is kept, parsed and frozen, after its first read
   * (status polls read finished decisions over and over, and a result is tens of KB to parse and
   * validate); each later read asks Redis for its seq only, which any write (a repair, a reset
   * run) moves, and which is gone once the record has expired.
   */
  async get(id: string): Promise<DecisionRecord | null> {
    return (await this.entry(id))?.record ?? null;
  }

  /** The record as `get` reads it, and whether an operator's action awaits a run's first write. */
  async entry(id: string): Promise<ProjectionEntry | null> {
    const kept = this.finished.get(id);
    if (kept) {
      const [seq, deliveries, awaiting] = await this.redis.hmget(
        this.recordKey(id),
        'seq',
        'deliveries_v',
        'awaiting_run',
      );
      if (
        seq !== null &&
        Number(seq) === kept.record.seq &&
        deliveries === kept.deliveries &&
        awaiting === kept.awaiting
      ) {
        return { record: kept.record, awaitingRun: null };
      }
      this.finished.delete(id);
    }
    const read = await this.read(id);
    if (!read) return null;
    if (isTerminal(read.record.status) && !read.awaitingRun) {
      if (this.finished.size >= FINISHED_KEPT) {
        this.finished.delete(this.finished.keys().next().value!);
      }
      this.finished.set(id, {
        record: deepFreeze(read.record),
        deliveries: read.deliveries,
        awaiting: read.awaiting,
      });
    }
    return { record: read.record, awaitingRun: read.awaitingRun };
  }

  /**
   * Says that an operator's action (a retry's reset) started `runId`: until that run's first
   * write lands, readers are sent to Temporal instead of the old run's record. False when the
   * projection has no record of the decision.
   */
  async expectRun(id: string, runId: string): Promise<boolean> {
    this.finished.delete(id);
    return (await this.redis.expectRun(this.recordKey(id), runId)) === 1;
  }

  /**
   * Stores what a webhook delivery's attempt did, unless a report of higher rank (deliveryRank)
   * is stored. False when it was ignored or the decision's record is gone.
   */
  async writeDelivery(
    decisionId: string,
    delivery: WebhookDelivery,
    rank: number,
  ): Promise<boolean> {
    const applied = await this.redis.writeDelivery(
      this.recordKey(decisionId),
      delivery.id,
      JSON.stringify(delivery),
      rank,
    );
    return applied === 1;
  }

  /** The delivery's last stored report and its rank, or null when no attempt has reported. */
  async readDelivery(
    decisionId: string,
    deliveryId: string,
  ): Promise<{ delivery: WebhookDelivery; rank: number } | null> {
    const [text, rank] = await this.redis.hmget(
      this.recordKey(decisionId),
      `delivery:${deliveryId}`,
      `delivery_rank:${deliveryId}`,
    );
    if (!text) return null;
    return { delivery: WebhookDeliverySchema.parse(JSON.parse(text)), rank: Number(rank ?? 0) };
  }

  private async read(id: string): Promise<{
    record: DecisionRecord;
    deliveries: string | null;
    awaiting: string | null;
    awaitingRun: string | null;
  } | null> {
    const replies = await this.redis
      .multi()
      .hgetall(this.recordKey(id))
      .get(this.resultKey(id))
      .exec();
    const hash = replies?.[0]?.[1] as Record<string, string> | undefined;
    const result = replies?.[1]?.[1] as string | null | undefined;
    if (!hash || Object.keys(hash).length === 0) return null;
    const webhook = hash.webhook ? (JSON.parse(hash.webhook) as WebhookState) : null;
    if (webhook) {
      // The workflow lists the deliveries it started; their attempts report here on their own.
      webhook.deliveries = webhook.deliveries.map((d) => {
        const reported = hash[`delivery:${d.id}`];
        return reported ? (JSON.parse(reported) as WebhookDelivery) : d;
      });
    }
    const record = DecisionRecordSchema.parse({
      process_id: hash.process_id,
      owner: hash.owner || null,
      query: hash.query,
      context: hash.context || null,
      metadata: hash.metadata ? (JSON.parse(hash.metadata) as unknown) : {},
      review: hash.review ? (JSON.parse(hash.review) as unknown) : undefined,
      forked_from: hash.forked_from ? (JSON.parse(hash.forked_from) as unknown) : null,
      budget: hash.budget ? (JSON.parse(hash.budget) as unknown) : null,
      webhook,
      status: hash.status,
      current_phase: hash.current_phase || null,
      phases: JSON.parse(hash.phases ?? '[]') as unknown,
      result: result ? (JSON.parse(result) as unknown) : null,
      error: hash.error ? (JSON.parse(hash.error) as unknown) : null,
      created_at: hash.created_at,
      updated_at: hash.updated_at,
      completed_at: hash.completed_at || null,
      seq: Number(hash.seq),
    });
    const awaiting = hash.awaiting_run ?? null;
    return {
      record,
      deliveries: hash.deliveries_v ?? null,
      awaiting,
      // Landed once the run it names has written.
      awaitingRun: awaiting && awaiting !== hash.run ? awaiting : null,
    };
  }

  /** Events after `afterId` (exclusive; from the start when null), oldest first. */
  async readEvents(id: string, afterId: string | null, count = 500): Promise<StoredEvent[]> {
    const start = afterId ? `(${afterId}` : '-';
    const entries = await this.redis.xrange(this.eventsKey(id), start, '+', 'COUNT', count);
    return entries.map(toEvent);
  }

  /**
   * Decisions newest first from the creation index, filtered by status and phase, a page at a
   * time. The cursor is the last item's (creation ms, id); ties are ordered by id.
   */
  async list(query: ListQuery): Promise<{ items: DecisionSummary[]; next: ListCursor | null }> {
    const items: DecisionSummary[] = [];
    // One owner's index is one key; the index of all decisions is split into buckets, merged here.
    const indexes =
      query.owner !== undefined
        ? [this.keys.owner(query.owner)]
        : Array.from({ length: this.keys.indexBuckets }, (_, b) => this.keys.created(b));
    const min = query.createdAfter !== undefined ? `(${query.createdAfter}` : '-inf';
    const top = query.createdBefore !== undefined ? `(${query.createdBefore}` : '+inf';
    const batch = Math.max(query.limit * 2, 50);
    // Each batch starts at the last entry seen (inclusive, skipping what was seen), not at an
    // offset, so decisions created while paging cannot shift entries into a page twice.
    let after = query.cursor ?? null;
    for (let scanned = 0; scanned < MAX_SCAN; scanned += batch) {
      const from = after ? String(after.score) : top;
      const replies = await Promise.all(
        indexes.map(async (index) => {
          const flat = await this.redis.zrange(
            index,
            from,
            min,
            'BYSCORE',
            'REV',
            'LIMIT',
            0,
            batch,
            'WITHSCORES',
          );
          const entries: (ListCursor & { index: string })[] = [];
          for (let i = 0; i < flat.length; i += 2) {
            entries.push({ id: flat[i]!, score: Number(flat[i + 1]), index });
          }
          return entries;
        }),
      );
      // Newest first, equal scores in descending id order, as one sorted set gives them; the
      // first `batch` of all buckets are among the first `batch` of each.
      const merged = replies
        .flat()
        .sort((a, b) => b.score - a.score || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
        .slice(0, batch);
      // Equal scores come in descending id order: those at or above the bound were seen.
      const page = merged.filter(
        (entry) => !(after && entry.score === after.score && entry.id >= after.id),
      );
      if (page.length === 0) return { items, next: null };
      const rows = await Promise.all(
        page.map((entry) => this.redis.hmget(this.recordKey(entry.id), ...SUMMARY_FIELDS)),
      );
      for (const [i, entry] of page.entries()) {
        after = { score: entry.score, id: entry.id };
        const values = rows[i];
        if (!values?.[0]) {
          // The decision expired (an owner's index has no cleanup of its own), or its record
          // was lost with a Redis node: reconcile files it again.
          await this.redis.zrem(entry.index, entry.id);
          continue;
        }
        const summary = toSummary(values);
        if (query.status && summary.status !== query.status) continue;
        if (query.phase && summary.current_phase !== query.phase) continue;
        items.push(summary);
        if (items.length === query.limit) return { items, next: after };
      }
      // Fewer than a batch anywhere: nothing older is left.
      if (merged.length < batch) return { items, next: null };
    }
    return { items, next: after };
  }
}

const MAX_SCAN = 5000;

const SUMMARY_FIELDS = [
  'process_id',
  'query',
  'status',
  'current_phase',
  'created_at',
  'updated_at',
  'completed_at',
] as const;

export interface DecisionSummary {
  process_id: string;
  query: string;
  status: DecisionStatus;
  current_phase: PhaseName | null;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
}

function toSummary(values: (string | null)[]): DecisionSummary {
  const [process_id, query, status, phase, created_at, updated_at, completed_at] = values;
  return {
    process_id: process_id!,
    query: query ?? '',
    status: (status ?? 'pending') as DecisionStatus,
    current_phase: (phase || null) as PhaseName | null,
    created_at: created_at ?? '',
    updated_at: updated_at ?? '',
    completed_at: completed_at || null,
  };
}

export interface ListCursor {
  score: number;
  id: string;
}

export interface ListQuery {
  /** Only this principal's decisions. */
  owner?: string;
  status?: DecisionStatus;
  phase?: PhaseName;
  /** Creation time bounds in ms, both exclusive. */
  createdAfter?: number;
  createdBefore?: number;
  limit: number;
  cursor?: ListCursor;
}

/** One entry of a decision's event stream; `id` is the stream entry id (the SSE event id). */
export interface StoredEvent {
  id: string;
  type: string;
  data: unknown;
}

/** A Redis stream entry as an event. */
export function toEvent([id, fields]: [string, string[]]): StoredEvent {
  const get = (name: string) => fields[fields.indexOf(name) + 1];
  return { id, type: get('type') ?? 'unknown', data: JSON.parse(get('data') ?? 'null') as unknown };
}
