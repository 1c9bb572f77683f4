import { Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { Logger } from 'pino';
import { createActivities } from '../activities';
import type { Config } from '../config';
import { KnowledgeBase } from '../knowledge/knowledge-base';
import { createModel } from '../llm';
import { RedisResponseStore } from '../llm/response-store';
import { DecisionProjection } from '../projection/redis-projection';
import { createRedis } from '../projection/redis-client';
import { ensureSearchAttributes } from './search-attributes';

export interface RunningWorker {
  worker: Worker;
  /** Settles when the worker has stopped polling and finished its in-flight tasks. */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

/** Connects to Temporal and Redis and starts polling the decision task queue. */
export async function startWorker(config: Config, logger: Logger): Promise<RunningWorker> {
  // The worker's NativeConnection has no operator service; a short-lived client connection does.
  const admin = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  try {
    const added = await ensureSearchAttributes(admin, config.TEMPORAL_NAMESPACE);
    if (added.length > 0) logger.info({ added }, 'Registered search attributes');
  } finally {
    await admin.close();
  }

  const knowledge = await KnowledgeBase.load(config.KNOWLEDGE_DIR).catch((err: unknown) => {
    throw new Error(`Cannot load the knowledge base from KNOWLEDGE_DIR=${config.KNOWLEDGE_DIR}`, {
      cause: err,
    });
  });
  const model = createModel(config);
  logger.info(
    { model: model.name, provider: config.LLM_PROVIDER, passages: knowledge.size },
    'Model and knowledge base ready',
  );
  const redis = createRedis(config.REDIS_URL);
  const projection = new DecisionProjection(redis, {
    prefix: config.REDIS_KEY_PREFIX,
    ttlSeconds: config.DECISION_TTL_SECONDS,
  });
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const worker = await Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    // Workflows are registered by path: they run bundled, in a separate deterministic context.
    workflowsPath: require.resolve('../workflows'),
    // On shutdown, activities in flight get this long to finish before they are cancelled.
    shutdownGraceTime: `${config.WORKER_SHUTDOWN_GRACE_SECONDS} seconds`,
    activities: createActivities({
      model,
      responses: new RedisResponseStore(
        redis,
        `${config.REDIS_KEY_PREFIX}llm:`,
        config.LLM_RESPONSE_TTL_SECONDS,
      ),
      knowledge,
      projection,
      logger,
    }),
  });
  logger.info(
    { taskQueue: config.TEMPORAL_TASK_QUEUE, namespace: config.TEMPORAL_NAMESPACE },
    'Worker polling',
  );
  const done = worker.run().finally(async () => {
    await connection.close();
    redis.disconnect();
  });
  return {
    worker,
    done,
    async shutdown() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await done;
    },
  };
}
