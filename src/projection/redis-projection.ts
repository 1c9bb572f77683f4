import type { Redis } from 'ioredis';
import { isTerminal, type DecisionRecord } from '../domain/decision';
import { DecisionRecordSchema } from '../domain/schemas';

// Applies a write only when its seq is newer than the stored one, so a retried, late or replayed
// write never moves a decision backwards. Everything happens in one script, hence atomically.
// KEYS: record hash, result, created index, completed index.
// ARGV: seq, id, created ms, completed ms ('' while running), ttl s, now ms, result JSON ('' if none),
// then the hash's field/value pairs.
const WRITE_SCRIPT = `
local current = redis.call('HGET', KEYS[1], 'seq')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
local fields = {}
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
if ARGV[4] ~= '' then
  if ARGV[7] ~= '' then
    redis.call('SET', KEYS[2], ARGV[7], 'EX', ARGV[5])
  else
    redis.call('DEL', KEYS[2])
  end
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  local cutoff = tonumber(ARGV[6]) - tonumber(ARGV[5]) * 1000
  local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', cutoff, 'LIMIT', 0, 100)
  if #expired > 0 then
    redis.call('ZREM', KEYS[4], unpack(expired))
    redis.call('ZREM', KEYS[3], unpack(expired))
  end
else
  redis.call('PERSIST', KEYS[1])
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[4], ARGV[2])
end
return 1
`;

export interface ProjectionOptions {
  /** Prefixes every key, so tests and several deployments can share one Redis. */
  prefix: string;
  /** How long a finished decision stays readable. */
  ttlSeconds: number;
  now?: () => number;
}

type ProjectionRedis = Redis & {
  writeDecision(...args: (string | number)[]): Promise<number>;
};

/**
 * The Redis read model of decisions: a hash per decision, its result stored apart, sorted sets of
 * ids by creation and by completion time, and a TTL once a decision has finished.
 */
export class DecisionProjection {
  private readonly redis: ProjectionRedis;
  private readonly now: () => number;

  constructor(
    redis: Redis,
    private readonly options: ProjectionOptions,
  ) {
    if (!('writeDecision' in redis)) {
      redis.defineCommand('writeDecision', { numberOfKeys: 4, lua: WRITE_SCRIPT });
    }
    this.redis = redis as ProjectionRedis;
    this.now = options.now ?? Date.now;
  }

  recordKey(id: string): string {
    return `${this.options.prefix}decision:${id}`;
  }

  resultKey(id: string): string {
    return `${this.options.prefix}decision:${id}:result`;
  }

  get createdIndexKey(): string {
    return `${this.options.prefix}index:created`;
  }

  get completedIndexKey(): string {
    return `${this.options.prefix}index:completed`;
  }

  /** Stores the record unless a newer one (higher seq) is already there; true when it was applied. */
  async write(record: DecisionRecord): Promise<boolean> {
    const id = record.process_id;
    const terminal = isTerminal(record.status);
    const completedMs = terminal && record.completed_at ? Date.parse(record.completed_at) : null;
    const fields: Record<string, string> = {
      process_id: id,
      query: record.query,
      status: record.status,
      current_phase: record.current_phase ?? '',
      phases: JSON.stringify(record.phases),
      error: record.error ? JSON.stringify(record.error) : '',
      created_at: record.created_at,
      updated_at: record.updated_at,
      completed_at: record.completed_at ?? '',
      seq: String(record.seq),
    };
    const applied = await this.redis.writeDecision(
      this.recordKey(id),
      this.resultKey(id),
      this.createdIndexKey,
      this.completedIndexKey,
      record.seq,
      id,
      Date.parse(record.created_at),
      completedMs ?? '',
      this.options.ttlSeconds,
      this.now(),
      record.result ? JSON.stringify(record.result) : '',
      ...Object.entries(fields).flat(),
    );
    return applied === 1;
  }

  /** The stored record, or null when the projection has none. */
  async get(id: string): Promise<DecisionRecord | null> {
    const replies = await this.redis
      .multi()
      .hgetall(this.recordKey(id))
      .get(this.resultKey(id))
      .exec();
    const hash = replies?.[0]?.[1] as Record<string, string> | undefined;
    const result = replies?.[1]?.[1] as string | null | undefined;
    if (!hash || Object.keys(hash).length === 0) return null;
    return DecisionRecordSchema.parse({
      process_id: hash.process_id,
      query: hash.query,
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
  }
}
