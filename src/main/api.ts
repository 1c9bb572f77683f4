import { startApi } from '../api/server';
import { startTracing } from '../observability/tracing';
import { loadApiConfig } from '../config';
import { createLogger } from '../logger';
import { runMain } from './process';

runMain(async () => {
  const config = loadApiConfig();
  const api = await startApi(config, createLogger(config.LOG_LEVEL, 'api', config.LOG_FORMAT), {
    requireAuth: true,
    tracing: startTracing(config.OTEL_EXPORTER_OTLP_ENDPOINT, 'decision-api'),
  });
  return () => api.close();
});
