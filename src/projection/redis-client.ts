import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { WorkerConfig } from '../config';
import { isCluster, type RedisClient } from './keys';
import { DecisionProjection } from './redis-projection';

export { isCluster, type RedisClient } from './keys';

/** The nodes of REDIS_CLUSTER_NODES, and the credentials and TLS the first URL among them gives. */
export function clusterNodes(setting: string): {
  nodes: { host: string; port: number }[];
  options: RedisOptions;
} {
  const options: RedisOptions = {};
  const nodes = setting.split(',').map((entry) => {
    const url = new URL(entry.includes('://') ? entry : `redis://${entry}`);
    if (entry.includes('://')) {
      if (url.username && !options.username) options.username = decodeURIComponent(url.username);
      if (url.password && !options.password) options.password = decodeURIComponent(url.password);
      if (url.protocol === 'rediss:') options.tls ??= {};
    }
    return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 6379) };
  });
  return { nodes, options };
}

/**
 * A Redis client that fails fast while Redis is away or hung instead of queueing or waiting for
 * minutes: every command has `commandTimeoutMs` and one retry. Temporal retries projection writes,
 * the API falls back to Temporal for reads, and the response store and the budget ledger go on
 * without it. On a cluster, commands are sent in one batch per node each tick (auto-pipelining),
 * and a command to a master that is failing over waits for its replica's promotion no longer than
 * its timeout.
 */
export function createRedis(url: string, commandTimeoutMs = 1000): Redis {
  return new Redis(url, { ...failFast(commandTimeoutMs), lazyConnect: false });
}

/** A Redis Cluster client on REDIS_CLUSTER_NODES, failing fast as `createRedis` does. */
export function createCluster(nodesSetting: string, commandTimeoutMs = 1000): Cluster {
  const cluster = clusterNodes(nodesSetting);
  return new Cluster(cluster.nodes, {
    redisOptions: { ...failFast(commandTimeoutMs), ...cluster.options },
    enableAutoPipelining: true,
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    retryDelayOnTryAgain: 100,
    slotsRefreshTimeout: 2000,
    // The slots' replicas too are read again every few seconds (a replica is listed once it has
    // replicated something, and one comes and goes with failovers): projection writes wait for
    // the replicas this table lists.
    slotsRefreshInterval: 5000,
  });
}

function failFast(commandTimeoutMs: number): RedisOptions {
  return { maxRetriesPerRequest: 1, connectTimeout: 2000, commandTimeout: commandTimeoutMs };
}

/** The Redis client the configuration names: the cluster when REDIS_CLUSTER_NODES is set. */
function redisFromConfig(
  config: Pick<WorkerConfig, 'REDIS_URL' | 'REDIS_CLUSTER_NODES' | 'REDIS_COMMAND_TIMEOUT_MS'>,
): RedisClient {
  return config.REDIS_CLUSTER_NODES
    ? createCluster(config.REDIS_CLUSTER_NODES, config.REDIS_COMMAND_TIMEOUT_MS)
    : createRedis(config.REDIS_URL, config.REDIS_COMMAND_TIMEOUT_MS);
}

/**
 * A second connection (or set of connections, on a cluster) like `redis`, for commands that block
 * or subscribe, with its own name and command timeout. On a cluster it can take shard-channel
 * subscriptions (SSUBSCRIBE), one connection per master.
 */
export function duplicateRedis(
  redis: RedisClient,
  options: { connectionName?: string; commandTimeout?: number } = {},
): RedisClient {
  if (isCluster(redis)) {
    return redis.duplicate([], {
      redisOptions: { ...redis.options.redisOptions, ...options },
      shardedSubscribers: true,
      // Subscriptions go out at once, not with the next tick's batch (which may find it closed).
      enableAutoPipelining: false,
    });
  }
  return redis.duplicate(options);
}

/** The Redis client and the projection on it, as the configuration names them. */
export function createProjection(
  config: Pick<
    WorkerConfig,
    | 'REDIS_URL'
    | 'REDIS_CLUSTER_NODES'
    | 'REDIS_COMMAND_TIMEOUT_MS'
    | 'REDIS_KEY_PREFIX'
    | 'DECISION_TTL_SECONDS'
  >,
): { redis: RedisClient; projection: DecisionProjection } {
  const redis = redisFromConfig(config);
  const projection = new DecisionProjection(redis, {
    prefix: config.REDIS_KEY_PREFIX,
    ttlSeconds: config.DECISION_TTL_SECONDS,
  });
  return { redis, projection };
}
