import { loadWorkerConfig } from '../config';
import type { LanguageModel } from '../llm/model';
import { createLogger } from '../logger';
import { installTemporalRuntime } from '../observability/temporal-runtime';
import { startWorker } from './start-worker';
import { startTracing } from '../observability/tracing';
import { runMain } from './process';

/**
 * The worker process: its settings from the environment, then polling until SIGTERM. `model`
 * replaces the one the settings name: the bench's worker (tools/bench/worker.cjs) runs this with
 * an offline model that answers slowly.
 */
export function main(options: { model?: LanguageModel } = {}): void {
  runMain(async () => {
    const config = loadWorkerConfig();
    const logger = createLogger(config.LOG_LEVEL, 'worker', config.LOG_FORMAT);
    installTemporalRuntime(logger, config.WORKER_SDK_METRICS_ADDRESS);
    const worker = await startWorker(
      config,
      logger,
      startTracing(config.OTEL_EXPORTER_OTLP_ENDPOINT, 'decision-worker'),
      options,
    );
    worker.done.catch((err: unknown) => {
      logger.fatal({ err }, 'Worker failed');
      process.exit(1);
    });
    return () => worker.shutdown();
  });
}

if (require.main === module) main();
