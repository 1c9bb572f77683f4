import { serve, type ServerType } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import {
  NativeConnection,
  Worker,
  type WorkerOptions,
  type WorkerPlugin,
} from '@temporalio/worker';
import { Hono } from 'hono';
import { bearerAuth } from 'hono/bearer-auth';
import type { RedisClient } from '../projection/redis-client';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { createActivities } from '../activities';
import { createHealthCheck, type HealthCheck } from '../observability/health';
import { decisionLimits, type WorkerConfig } from '../config';
import { RedisBudgetLedger } from '../llm/budget';
import { KnowledgeBase } from '../knowledge/knowledge-base';
import type { LanguageModel } from '../llm/model';
import { createModel, providerLimitKey } from './model';
import { ProviderLimiter } from '../llm/provider-limit';
import { RedisResponseStore } from '../llm/response-store';
import { createRegistry, decisionMetrics, providerLimitMetrics } from '../observability/metrics';
import { LiveChannel } from '../projection/live-channel';
import type { Tracing } from '../observability/tracing';
import { createProjection, duplicateRedis } from '../projection/redis-client';
import { ensureSearchAttributes } from '../temporal/search-attributes';
import { decisionOwners } from '../webhooks/owner';
import { createResolve } from '../webhooks/resolver';
import { connectToTemporal } from '../process/startup';
import {
  activitySlots,
  applyWorkerHeapFlags,
  cgroupMemoryLimitMb,
  DEFAULT_MEMORY_MB,
} from './worker-memory';
import {
  applyPromotionPolicy,
  buildIdFor,
  deploymentNameFor,
  goneAfterWarning,
  loadWorkflowCode,
  takeOverWatch,
  type WorkerVersion,
} from '../temporal/versioning';

export interface RunningWorker {
  worker: Worker;
  /** Settles when the worker has stopped polling and finished its in-flight tasks. */
  done: Promise<void>;
  /** The worker's own HTTP endpoints (/health, /ready, /metrics), when enabled. */
  httpUrl: string | null;
  shutdown(): Promise<void>;
}

/**
 * The worker's activity slots: WORKER_MAX_ACTIVITIES, or as many phases in flight as its memory
 * limit holds (the cgroup's, else DEFAULT_MEMORY_MB).
 */
export function activitySlotCount(
  config: Pick<WorkerConfig, 'WORKER_MAX_ACTIVITIES' | 'WORKER_MAX_CACHED_WORKFLOWS'>,
  memoryLimitMb: number | null = cgroupMemoryLimitMb(),
): number {
  return (
    config.WORKER_MAX_ACTIVITIES ??
    activitySlots(memoryLimitMb ?? DEFAULT_MEMORY_MB, config.WORKER_MAX_CACHED_WORKFLOWS)
  );
}

/** What Worker.create is given from the configuration: queue, versioning, concurrency, shutdown. */
export function workerOptions(
  config: WorkerConfig,
  parts: {
    connection: NativeConnection;
    /** The bundled workflow code (see loadWorkflowCode). */
    workflowCode: string;
    version: WorkerVersion;
    plugins: WorkerPlugin[];
    /** The memory limit the activity slots are derived from; the cgroup's by default. */
    memoryLimitMb?: number | null;
  },
): WorkerOptions {
  const { connection, version, plugins } = parts;
  const versioned = config.WORKER_VERSIONING === 'on';
  const fixed = (numSlots: number) => ({ type: 'fixed-size' as const, numSlots });
  return {
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    // Workflows run bundled, in a separate deterministic context: prebuilt (images bundle at
    // build time, so workers start fast), or bundled at start; see loadWorkflowCode.
    workflowBundle: { code: parts.workflowCode },
    // Each decision stays on the version that started it, to its end (a review can pause it for
    // a day): its history only ever replays on the code that wrote it. Changes that must reach
    // running decisions still go behind patched() (docs/OPERATIONS.md).
    workerDeploymentOptions: versioned
      ? { version, useWorkerVersioning: true, defaultVersioningBehavior: 'PINNED' }
      : undefined,
    // Phases wait on the model, so their slots are as many as memory holds (worker-memory.ts),
    // not a multiple of cores. Not the SDK's resource-based tuner: it steers by the whole
    // machine's CPU and memory, so on a machine shared with Temporal and Redis a busy CPU would
    // hold back phases that only wait, and it adds a slot every 50 ms past its minimum, 15 s to
    // reach 300. Workflow tasks are CPU work, in one thread; local activities keep the SDK's 100.
    tuner: {
      activityTaskSlotSupplier: fixed(activitySlotCount(config, parts.memoryLimitMb)),
      workflowTaskSlotSupplier: fixed(config.WORKER_MAX_WORKFLOW_TASKS),
      localActivityTaskSlotSupplier: fixed(100),
      nexusTaskSlotSupplier: fixed(1),
    },
    maxCachedWorkflows: config.WORKER_MAX_CACHED_WORKFLOWS,
    // Heartbeats carry cancellation to an activity: at most a second apart, a cancelled decision
    // stops its model call (and its spending) within about two (the SDK's default waits up to
    // 24 s here). Phases heartbeat only while they run longer than that.
    maxHeartbeatThrottleInterval: '1 second',
    // On shutdown, activities in flight get this long to finish before they are cancelled.
    shutdownGraceTime: `${config.WORKER_SHUTDOWN_GRACE_SECONDS} seconds`,
    plugins,
  };
}

/**
 * The live channel of running phases' model output, on the projection's Redis. A write that fails
 * drops its events: counted, and said in the log at most every ten seconds.
 */
function liveChannel(
  redis: RedisClient,
  config: WorkerConfig,
  registry: Registry,
  logger: Logger,
): LiveChannel {
  const dropped = new Counter({
    name: 'decision_live_events_dropped_total',
    help: "Live events (a running phase's model output) dropped because Redis did not take them",
    registers: [registry],
  });
  let warned = 0;
  return new LiveChannel(redis, config.REDIS_KEY_PREFIX, {
    ttlSeconds: config.DECISION_TTL_SECONDS,
    onDropped: (err, events) => {
      dropped.inc(events);
      if (Date.now() - warned < 10_000) return;
      warned = Date.now();
      logger.warn(
        { err: err instanceof Error ? err.message : String(err), events },
        'Live output dropped: Redis did not take it (phases go on; watchers miss some text)',
      );
    },
  });
}

/**
 * The provider limit the settings name (none when neither is set), on the projection's Redis. While
 * Redis does not answer, each worker keeps to the limit alone: said in the log at most every ten
 * seconds.
 */
function providerLimit(
  redis: RedisClient,
  config: WorkerConfig,
  model: LanguageModel,
  registry: Registry,
  logger: Logger,
): { limiter: ProviderLimiter; key: string } | undefined {
  if (config.LLM_REQUESTS_PER_MINUTE <= 0 && config.LLM_TOKENS_PER_MINUTE <= 0) return undefined;
  const metrics = providerLimitMetrics(registry);
  let warned = 0;
  const limiter = new ProviderLimiter(
    redis,
    `${config.REDIS_KEY_PREFIX}provider-limit:`,
    {
      requestsPerMinute: config.LLM_REQUESTS_PER_MINUTE,
      tokensPerMinute: config.LLM_TOKENS_PER_MINUTE,
    },
    {
      onWaited: (key, ms) => metrics.waited(key, ms),
      onStoreError: (err) => {
        if (Date.now() - warned < 10_000) return;
        warned = Date.now();
        logger.warn(
          { err: err instanceof Error ? err.message : String(err) },
          'Provider limit: Redis does not answer; this worker keeps to the limit alone, so workers together may pass it',
        );
      },
    },
  );
  return { limiter, key: providerLimitKey(config, model) };
}

/**
 * An `auto` worker keeps doing what it did at start: while its build is not current, it makes it
 * current once no worker of the current, older build has polled within WORKER_GONE_AFTER_SECONDS
 * on two checks a window apart (takeOverWatch; a worker started just after the current build's
 * last one stopped would otherwise never take over, and new decisions would wait). Checks a third
 * of that window apart, at most every 30 s. Returns what stops it.
 */
function watchCurrentBuild(
  client: Connection,
  config: WorkerConfig,
  version: WorkerVersion,
  logger: Logger,
): () => void {
  const liveWindowMs = config.WORKER_GONE_AFTER_SECONDS * 1000;
  const takeOver = takeOverWatch(client.workflowService, {
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    version,
    liveWindowMs,
  });
  let checking = false;
  let warned = 0;
  const timer = setInterval(
    () => {
      if (checking) return;
      checking = true;
      takeOver()
        .then((took) => {
          if (!took) return;
          logger.warn(
            { buildId: version.buildId, previousBuildId: took.previous },
            `No worker of the current build ${took.previous} polled in the last ${config.WORKER_GONE_AFTER_SECONDS} s, on two checks that far apart, and this build is newer: it is current now (WORKER_PROMOTION=auto)`,
          );
        })
        .catch((err: unknown) => {
          if (Date.now() - warned < 60_000) return;
          warned = Date.now();
          logger.warn(
            { err: err instanceof Error ? err.message : String(err) },
            'Could not check whether the current build has workers',
          );
        })
        .finally(() => (checking = false));
    },
    Math.min(30_000, Math.max(1000, liveWindowMs / 3)),
  );
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * The worker's own HTTP server: `/health` (the worker polls), `/ready` (and Temporal and Redis
 * answer), `/metrics` (its own and the SDK's). It listens on WORKER_HTTP_HOST, the loopback unless
 * told otherwise, and `/metrics` asks for METRICS_TOKEN as a bearer token when one is set.
 */
export async function listenWorkerHttp(
  config: Pick<
    WorkerConfig,
    'WORKER_HTTP_HOST' | 'WORKER_HTTP_PORT' | 'WORKER_SDK_METRICS_ADDRESS' | 'METRICS_TOKEN'
  >,
  parts: { state: () => string; health: HealthCheck; registry: Registry },
): Promise<{ server: ServerType; url: string }> {
  const { state, health, registry } = parts;
  const app = new Hono();
  app.get('/health', (c) => {
    const now = state();
    return c.json(
      { status: now === 'RUNNING' ? 'ok' : 'unavailable', worker: now },
      now === 'RUNNING' ? 200 : 503,
    );
  });
  app.get('/ready', async (c) => {
    const report = await health();
    const ok = report.ok && state() === 'RUNNING';
    return c.json(
      { status: ok ? 'ok' : 'unavailable', worker: state(), checks: report.checks },
      ok ? 200 : 503,
    );
  });
  if (config.METRICS_TOKEN) app.use('/metrics', bearerAuth({ token: config.METRICS_TOKEN }));
  app.get('/metrics', async (c) => {
    const own = await registry.metrics();
    // The SDK serves its metrics (task slots, polls, latencies) on its own port; one scrape
    // target per worker is simpler to operate, so they are served here together.
    const sdk = config.WORKER_SDK_METRICS_ADDRESS
      ? await fetch(`http://${config.WORKER_SDK_METRICS_ADDRESS}/metrics`).then(
          (r) => (r.ok ? r.text() : ''),
          () => '',
        )
      : '';
    return c.text(`${own}\n${sdk}`, 200, { 'Content-Type': registry.contentType });
  });
  const host = config.WORKER_HTTP_HOST;
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: host, port: config.WORKER_HTTP_PORT ?? 0 }, () =>
      resolve(s),
    );
    s.once('error', reject);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.WORKER_HTTP_PORT;
  return { server, url: `http://${host.includes(':') ? `[${host}]` : host}:${port}` };
}

/**
 * Connects to Temporal and Redis and starts polling the decision task queue. `model` replaces
 * the one the settings name (the bench's offline model that answers slowly).
 */
export async function startWorker(
  config: WorkerConfig,
  logger: Logger,
  tracing: Tracing | null = null,
  options: { model?: LanguageModel } = {},
): Promise<RunningWorker> {
  applyWorkerHeapFlags();
  // The worker's NativeConnection has no operator service; a client connection does, and it
  // also answers the readiness checks.
  const client = await connectToTemporal(config.TEMPORAL_ADDRESS, () =>
    Connection.connect({ address: config.TEMPORAL_ADDRESS }),
  );
  const added = await ensureSearchAttributes(client, config.TEMPORAL_NAMESPACE);
  if (added.length > 0) logger.info({ added }, 'Registered search attributes');

  const knowledge = await KnowledgeBase.load(config.KNOWLEDGE_DIR).catch((err: unknown) => {
    throw new Error(`Cannot load the knowledge base from KNOWLEDGE_DIR=${config.KNOWLEDGE_DIR}`, {
      cause: err,
    });
  });
  const model =
    options.model ??
    createModel(config, {
      onProviderError: (report) => logger.warn(report, 'The model provider answered with an error'),
      onUsageEstimated: (name) =>
        logger.warn(
          { model: name },
          'The model provider streams without token usage: token counts are estimated (about four characters a token)',
        ),
    });
  if (!config.LLM_PROVIDER) {
    logger.warn(
      '!!! LLM_PROVIDER IS NOT SET: decisions are made by the offline stand-in, a fixed-rule heuristic, not a language model. Set LLM_PROVIDER=openai (with LLM_MODEL and LLM_BASE_URL or LLM_API_KEY) for real answers, or LLM_PROVIDER=offline to choose the stand-in on purpose. !!!',
    );
  }
  logger.info(
    { model: model.name, provider: config.LLM_PROVIDER ?? 'offline', passages: knowledge.size },
    'Model and knowledge base ready',
  );
  const { redis, projection } = createProjection(config);
  redis.on('error', (err: Error) => logger.warn({ err: err.message }, 'Redis connection error'));
  // The live output has a connection of its own: its writes never queue ahead of a projection
  // write or a budget reservation.
  const liveRedis = duplicateRedis(redis);
  liveRedis.on('error', () => undefined);
  const registry = createRegistry('worker');
  const code = await loadWorkflowCode(config.WORKFLOW_BUNDLE_PATH, tracing);
  const version: WorkerVersion = {
    deploymentName: deploymentNameFor(config),
    buildId: config.WORKER_BUILD_ID ?? buildIdFor(code.plain),
  };
  const versioned = config.WORKER_VERSIONING === 'on';
  const tooShort = goneAfterWarning(config.WORKER_GONE_AFTER_SECONDS);
  if (versioned && tooShort) logger.warn(tooShort);
  const connection = await connectToTemporal(config.TEMPORAL_ADDRESS, () =>
    NativeConnection.connect({ address: config.TEMPORAL_ADDRESS }),
  );
  const worker = await Worker.create({
    ...workerOptions(config, {
      connection,
      workflowCode: code.run,
      version,
      plugins: tracing ? [tracing.plugin] : [],
    }),
    activities: createActivities({
      model,
      responses: new RedisResponseStore(
        redis,
        `${config.REDIS_KEY_PREFIX}llm:`,
        config.DECISION_TTL_SECONDS,
      ),
      budget: new RedisBudgetLedger(
        redis,
        `${config.REDIS_KEY_PREFIX}budget:`,
        config.DECISION_TTL_SECONDS,
      ),
      providerLimit: providerLimit(redis, config, model, registry, logger),
      defaultBudget: decisionLimits(config).budget,
      payloadMaxBytes: config.PHASE_PAYLOAD_MAX_BYTES,
      maxCompletionTokens: config.LLM_MAX_COMPLETION_TOKENS,
      knowledge,
      projection,
      webhooks: {
        secret: config.WEBHOOK_SECRET ?? null,
        previousSecret: config.WEBHOOK_PREVIOUS_SECRET ?? null,
        ownerOf: decisionOwners(
          new Client({ connection: client, namespace: config.TEMPORAL_NAMESPACE }),
          projection,
        ),
        allowPrivateNetworks: config.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
        allowedPorts: config.WEBHOOK_ALLOWED_PORTS,
        resolve: createResolve({
          servers: config.WEBHOOK_DNS_SERVERS,
          timeoutMs: config.WEBHOOK_DNS_TIMEOUT_MS,
        }),
        perPrincipal: config.WEBHOOK_DELIVERIES_PER_PRINCIPAL,
        rejectedRetryMs: config.WEBHOOK_REJECTED_RETRY_SECONDS,
      },
      metrics: decisionMetrics(registry),
      live: liveChannel(liveRedis, config, registry, logger),
      logger,
    }),
  });

  const health = createHealthCheck({
    connection: client,
    redis,
    onFailure: (dependency, error) =>
      logger.warn({ dependency, error }, 'Health check: a dependency does not answer'),
  });
  const http =
    config.WORKER_HTTP_PORT === null
      ? null
      : await listenWorkerHttp(config, {
          state: () => worker.getState(),
          health,
          registry,
        });
  const server = http?.server ?? null;
  const httpUrl = http?.url ?? null;

  let stopWatching = () => {};
  const done = worker.run().finally(async () => {
    stopWatching();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await connection.close();
    await client.close();
    redis.disconnect();
    liveRedis.disconnect();
    await tracing?.shutdown();
  });
  // The server learns of a version from its polls, so the policy applies once the worker runs;
  // a worker that fails meanwhile fails the start rather than the wait.
  const routing = await Promise.race([
    versioned
      ? applyPromotionPolicy(client.workflowService, {
          namespace: config.TEMPORAL_NAMESPACE,
          taskQueue: config.TEMPORAL_TASK_QUEUE,
          version,
          policy: config.WORKER_PROMOTION,
          liveWindowMs: config.WORKER_GONE_AFTER_SECONDS * 1000,
        })
      : { promoted: false, current: null },
    done.then(() => {
      throw new Error('The worker stopped before its version was routed');
    }),
  ]).catch(async (err: unknown) => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
    await done.catch(() => undefined);
    throw err;
  });
  if (versioned && config.WORKER_PROMOTION === 'auto') {
    stopWatching = watchCurrentBuild(client, config, version, logger);
  }
  logger.info(
    {
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      namespace: config.TEMPORAL_NAMESPACE,
      identity: worker.options.identity,
      ...(versioned
        ? {
            deployment: version.deploymentName,
            buildId: version.buildId,
            currentBuildId: routing.current,
            promoted: routing.promoted,
          }
        : { versioning: 'off' }),
      http: httpUrl,
      activitySlots: activitySlotCount(config),
    },
    !versioned || routing.current === version.buildId
      ? 'Worker polling'
      : 'Worker polling, not current: it takes new decisions once its build is promoted or ramped',
  );
  return {
    worker,
    done,
    httpUrl,
    async shutdown() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await done;
    },
  };
}
