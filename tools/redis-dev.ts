import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Redis } from 'ioredis';
import { StartupError } from '../src/process/startup';
import { startChildService } from './process/child-service';

/** True when a Redis server answers PING at the URL. */
export async function redisAnswers(url: string): Promise<boolean> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 1000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

export interface LocalRedis {
  url: string;
  /** Null when an already running Redis is used. */
  pid: number | null;
  stop(): Promise<void>;
}

/**
 * Uses the Redis at `url` when one answers; otherwise starts `redis-server` on that URL's port,
 * with its data (append-only file) in `dataDir`. Fails with a message saying how to get Redis.
 */
export async function ensureLocalRedis(
  url: string,
  dataDir: string | null,
  options: { timeoutMs?: number; detached?: boolean } = {},
): Promise<LocalRedis> {
  if (await redisAnswers(url)) return { url, pid: null, stop: () => Promise.resolve() };
  const { hostname, port } = new URL(url);
  const local = ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(hostname);
  if (!local) {
    throw new StartupError(`Nothing answers at REDIS_URL=${url}`, {
      hint: 'Start that Redis, or point REDIS_URL at one that runs.',
    });
  }
  const args = ['--port', port || '6379', '--bind', '127.0.0.1', '--save', ''];
  if (dataDir) {
    mkdirSync(dataDir, { recursive: true });
    args.push('--dir', resolve(dataDir), '--appendonly', 'yes');
  } else {
    args.push('--appendonly', 'no');
  }
  const service = await startChildService({
    name: `redis-server at ${url}`,
    command: 'redis-server',
    args,
    answers: () => redisAnswers(url),
    timeoutMs: options.timeoutMs ?? 10_000,
    pollMs: 100,
    detached: options.detached,
    hint:
      `A port in use (${port || '6379'}): stop what holds it (\`ss -ltnp\` names it) or point REDIS_URL at another port.` +
      (dataDir ? ` A damaged append-only file in ${dataDir}: move that folder aside.` : ''),
    onSpawnError: (err) =>
      err.code === 'ENOENT'
        ? new StartupError(`Nothing answers at REDIS_URL=${url} and redis-server is not on PATH`, {
            hint: 'Install Redis (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or point REDIS_URL at a running one.',
          })
        : err,
  });
  return { url, pid: service.process.pid ?? null, stop: service.stop };
}
