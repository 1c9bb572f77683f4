import { serve, type ServerType } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import type { Logger } from 'pino';
import { ConfigError, decisionLimits, type ApiConfig } from '../config';
import { createRegistry } from '../observability/metrics';
import type { Tracing } from '../observability/tracing';
import { parseApiKeys, type ApiKey } from './middleware/auth';
import { createProjection } from '../projection/redis-client';
import { createApp } from './app';
import { StreamSlots } from './stream-slots';
import { DecisionService } from './decision-service';
import { createHealthCheck } from '../observability/health';
import { retryWithinDeadline } from '../temporal/deadlines';
import { ensureSearchAttributes } from '../temporal/search-attributes';
import { BuildWatch } from '../temporal/build-watch';
import { deploymentNameFor, goneAfterWarning } from '../temporal/versioning';
import { createResolve } from '../webhooks/resolver';
import { principalSecret } from '../webhooks/secret';
import { connectToTemporal } from '../process/startup';

export interface RunningApi {
  url: string;
  close(): Promise<void>;
}

/** Starts the HTTP API: one Temporal connection and one Redis client for the whole process. */
export async function startApi(
  config: ApiConfig,
  logger: Logger,
  options: { requireAuth: boolean; tracing?: Tracing | null },
): Promise<RunningApi> {
  const tracing = options.tracing ?? null;
  let apiKeys: ApiKey[] | null;
  try {
    apiKeys = config.API_KEYS
      ? parseApiKeys(config.API_KEYS, {
          // Keys guessed over the network must be out of reach: 24 characters and up in production.
          minLength: options.requireAuth ? 24 : 8,
          secret: config.API_KEY_SECRET,
        })
      : null;
  } catch (err) {
    throw new ConfigError(`Invalid configuration:\n  ${(err as Error).message}`);
  }
  // A key's id owns its decisions: derived from the whole key set, it would move whenever another
  // key is added or changed, and the decisions would be lost to it.
  if (options.requireAuth && !config.API_KEY_SECRET && apiKeys?.some((key) => !key.named)) {
    throw new ConfigError(
      'Invalid configuration:\n  API_KEYS: name every key (<key>=<scopes>@<name>) or set ' +
        'API_KEY_SECRET (openssl rand -hex 32): a key owns the decisions it creates by its id, ' +
        'which must not change when other keys do',
    );
  }
  if (!apiKeys) {
    if (options.requireAuth && !config.AUTH_DISABLED) {
      throw new ConfigError(
        'API_KEYS is not set. Set API_KEYS=<key>=<scope>+<scope>,… (scopes: decisions:read, ' +
          'decisions:write, decisions:admin), or AUTH_DISABLED=true to run without authentication.',
      );
    }
    logger.warn(
      '!!! AUTHENTICATION IS OFF: anyone who can reach this API can start, read and cancel decisions. Set API_KEYS to turn it on. !!!',
    );
  }
  // The SDK retries a call that failed for about 20 s; the API's calls have deadlines, and
  // stop retrying at them.
  const connection = await connectToTemporal(config.TEMPORAL_ADDRESS, () =>
    Connection.connect({
      address: config.TEMPORAL_ADDRESS,
      interceptors: [retryWithinDeadline()],
    }),
  );
  const client = new Client({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    plugins: tracing ? [tracing.plugin] : [],
  });
  // Decisions start with DecisionStatus set, so the attribute must exist before the first one.
  await ensureSearchAttributes(connection, config.TEMPORAL_NAMESPACE).then(
    (added) => added.length > 0 && logger.info({ added }, 'Registered search attributes'),
    (err: unknown) => logger.warn({ err }, 'Could not check the search attributes'),
  );
  const { redis, projection } = createProjection(config);
  redis.on('error', (err: Error) => logger.warn({ err: err.message }, 'Redis connection error'));
  const tooShort = goneAfterWarning(config.WORKER_GONE_AFTER_SECONDS);
  if (tooShort) logger.warn(tooShort);
  const workers = new BuildWatch(client, {
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    deploymentName: deploymentNameFor(config),
    liveWindowMs: config.WORKER_GONE_AFTER_SECONDS * 1000,
  });
  const decisions = new DecisionService({
    client,
    workers,
    projection,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    reviewTimeoutMs: config.REVIEW_TIMEOUT_SECONDS * 1000,
    limits: decisionLimits(config),
    webhooks: config.WEBHOOK_SECRET
      ? {
          allowPrivateNetworks: config.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
          allowedPorts: config.WEBHOOK_ALLOWED_PORTS,
          resolve: createResolve({
            servers: config.WEBHOOK_DNS_SERVERS,
            timeoutMs: config.WEBHOOK_DNS_TIMEOUT_MS,
          }),
          timeoutMs: config.WEBHOOK_TIMEOUT_SECONDS * 1000,
          retryMs: config.WEBHOOK_RETRY_HOURS * 3_600_000,
        }
      : null,
    onProjectionError: (err) =>
      logger.warn({ err }, 'Projection read failed; reading from Temporal instead'),
  });
  const streamSlots = new StreamSlots(redis, config.REDIS_KEY_PREFIX, {
    leaseMs: config.EVENT_STREAM_LEASE_SECONDS * 1000,
    onError: (err, more) =>
      logger.warn({ err, more }, 'Event stream slots unavailable in Redis; counted per process'),
  });
  const app = createApp({
    decisions,
    health: createHealthCheck({
      connection,
      redis,
      onFailure: (dependency, error) =>
        logger.warn({ dependency, error }, 'Health check: a dependency does not answer'),
    }),
    workers,
    projection,
    redis,
    keyPrefix: config.REDIS_KEY_PREFIX,
    publicUrl: config.API_PUBLIC_URL,
    maxQueryChars: config.MAX_QUERY_CHARS,
    maxWaitSeconds: config.MAX_WAIT_SECONDS,
    maxBudget: decisionLimits(config).budget,
    authFailuresPerMinute: config.AUTH_FAILURES_PER_MINUTE,
    trustProxy: config.TRUST_PROXY,
    maxStreamsPerKey: config.EVENT_STREAMS_PER_KEY,
    streamSlots,
    apiKeys,
    webhookSecretOf: config.WEBHOOK_SECRET
      ? (principal) => principalSecret(config.WEBHOOK_SECRET!, principal)
      : null,
    rateLimitPerMinute: config.RATE_LIMIT_PER_MINUTE,
    corsOrigins: config.CORS_ORIGINS.split(',')
      .map((o) => o.trim())
      .filter(Boolean),
    temporalUi: { url: config.TEMPORAL_UI_URL, namespace: config.TEMPORAL_NAMESPACE },
    metrics: createRegistry('api'),
    tracer: tracing?.tracer,
    logger,
  });

  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: config.HOST, port: config.PORT }, () =>
      resolve(s),
    );
    s.once('error', reject);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.PORT;
  const url = `http://${config.HOST.includes(':') ? `[${config.HOST}]` : config.HOST}:${port}`;
  logger.info({ url }, 'API listening');
  return {
    url,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Event streams stay open for long; end them rather than wait for their clients.
      if ('closeAllConnections' in server) server.closeAllConnections();
      await closed;
      // The streams just ended give their slots back at once, not when their leases run out.
      await streamSlots.close();
      await connection.close();
      redis.disconnect();
      await tracing?.shutdown();
    },
  };
}
