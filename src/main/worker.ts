import { loadWorkerConfig } from '../config';
import { createLogger } from '../logger';
import { installTemporalRuntime } from '../observability/temporal-runtime';
import { startWorker } from './start-worker';
import { startTracing } from '../observability/tracing';
import { runMain } from './process';

runMain(async () => {
  const config = loadWorkerConfig();
  const logger = createLogger(config.LOG_LEVEL, 'worker', config.LOG_FORMAT);
  installTemporalRuntime(logger, config.WORKER_SDK_METRICS_ADDRESS);
  const worker = await startWorker(
    config,
    logger,
    startTracing(config.OTEL_EXPORTER_OTLP_ENDPOINT, 'decision-worker'),
  );
  worker.done.catch((err: unknown) => {
    logger.fatal({ err }, 'Worker failed');
    process.exit(1);
  });
  return () => worker.shutdown();
});
