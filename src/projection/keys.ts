import type { Cluster, Redis } from 'ioredis';

/**
 * The Redis the project keeps its data in: one server (REDIS_URL) or a Redis Cluster
 * (REDIS_CLUSTER_NODES). Every key is built so that what one script or transaction touches
 * shares a hash tag (see RedisKeys), so the same code runs on both.
 */
export type RedisClient = Redis | Cluster;

/** True when the client talks to a Redis Cluster. */
export function isCluster(redis: RedisClient): redis is Cluster {
  return redis.isCluster;
}

/**
 * The part of a key Redis Cluster hashes to find its slot: the first non-empty `{…}`, or the
 * whole key. Keys with the same one can be read by one command.
 */
export function hashTag(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

/**
 * The names of the projection's Redis keys. On a Redis Cluster, everything one decision's writes
 * touch together (its record, result, event stream and live stream) carries the decision's id as
 * its hash tag, so a script over them runs in one slot; indexes across decisions are split into
 * buckets that spread over the cluster's slots. On a single Redis the names stay as they always
 * were, so data stored before keeps being found.
 */
export class RedisKeys {
  /** How many buckets the indexes across decisions are split into. */
  readonly indexBuckets: number;

  constructor(
    readonly prefix: string,
    readonly cluster: boolean,
  ) {
    this.indexBuckets = cluster ? CLUSTER_INDEX_BUCKETS : 1;
  }

  /** `part` as a hash tag on a cluster. */
  private tag(part: string): string {
    return this.cluster ? `{${part}}` : part;
  }

  record(id: string): string {
    return `${this.prefix}decision:${this.tag(id)}`;
  }

  result(id: string): string {
    return `${this.record(id)}:result`;
  }

  events(id: string): string {
    return `${this.record(id)}:events`;
  }

  live(id: string): string {
    return `${this.record(id)}:live`;
  }

  /** The bucket of the indexes across decisions that holds `id`. */
  bucketOf(id: string): number {
    return this.indexBuckets === 1 ? 0 : fnv1a(id) % this.indexBuckets;
  }

  /** Ids by creation time, in one bucket. */
  created(bucket: number): string {
    return this.cluster
      ? `${this.prefix}index:created:{index:${bucket}}`
      : `${this.prefix}index:created`;
  }

  /** Ids of finished decisions by completion time, in the same slot as `created(bucket)`. */
  completed(bucket: number): string {
    return this.cluster
      ? `${this.prefix}index:completed:{index:${bucket}}`
      : `${this.prefix}index:completed`;
  }

  /** Ids of one owner's decisions by creation time. */
  owner(owner: string): string {
    return `${this.prefix}index:owner:${this.tag(owner)}`;
  }
}

// Enough to spread the indexes' writes over a cluster of a dozen masters, few enough that a list
// merging every bucket stays a handful of commands per node.
const CLUSTER_INDEX_BUCKETS = 16;

/** FNV-1a over the UTF-16 code units: a stable, cheap spread of ids over the buckets. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
