import { Runtime } from '@temporalio/worker';
import { loadConfig } from '../config';
import { createLogger } from '../logger';
import { startWorker } from '../temporal/worker';
import { runMain } from './process';

runMain(async () => {
  const config = loadConfig();
  const logger = createLogger(config.LOG_LEVEL, 'worker');
  // Shutdown is ours (runMain), so the SDK does not install its own signal handlers.
  Runtime.install({ shutdownSignals: [] });
  const worker = await startWorker(config, logger);
  worker.done.catch((err: unknown) => {
    logger.fatal({ err }, 'Worker failed');
    process.exit(1);
  });
  return () => worker.shutdown();
});
