import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Redis } from 'ioredis';

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
  timeoutMs = 10_000,
): Promise<LocalRedis> {
  if (await redisAnswers(url)) return { url, pid: null, stop: () => Promise.resolve() };
  const { hostname, port } = new URL(url);
  const local = ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(hostname);
  if (!local) {
    throw new Error(
      `Nothing answers at REDIS_URL=${url}. Start that Redis or point REDIS_URL at one.`,
    );
  }
  const args = ['--port', port || '6379', '--bind', '127.0.0.1', '--save', ''];
  if (dataDir) {
    mkdirSync(dataDir, { recursive: true });
    args.push('--dir', resolve(dataDir), '--appendonly', 'yes');
  } else {
    args.push('--appendonly', 'no');
  }
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-2000)));
  child.stderr?.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-2000)));
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT'
          ? new Error(
              `Nothing answers at REDIS_URL=${url} and redis-server is not on PATH. ` +
                'Install Redis (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or point REDIS_URL at a running one.',
            )
          : err,
      ),
    );
    child.once('exit', (code) =>
      reject(new Error(`redis-server exited (code ${code}):\n${output}`)),
    );
  });
  failed.catch(() => undefined);
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((done) => child.once('exit', () => done()));
    child.kill('SIGTERM');
    await gone;
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await Promise.race([redisAnswers(url), failed])) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`redis-server did not answer at ${url} in time:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, pid: child.pid ?? null, stop };
}
