import { startApi } from '../api/server';
import { loadConfig } from '../config';
import { createLogger } from '../logger';
import { runMain } from './process';

runMain(async () => {
  const config = loadConfig();
  const api = await startApi(config, createLogger(config.LOG_LEVEL, 'api'), { requireAuth: true });
  return () => api.close();
});
