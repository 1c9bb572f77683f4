import { z } from 'zod';
import { loadSettings, setting } from './settings';
import { deploymentSettings, redisSettings, retentionSettings, temporalSettings } from './shared';

/**
 * The settings the operators' `decisions` command reads: Temporal for every command, Redis for
 * `reconcile`, the Worker Deployment for `deploy`. The API's container has them all.
 */
export const DecisionsCliConfigSchema = z.object({
  ...temporalSettings,
  ...redisSettings,
  ...retentionSettings,
  ...deploymentSettings,
});

export type DecisionsCliConfig = z.infer<typeof DecisionsCliConfigSchema>;

export function loadDecisionsCliConfig(env: NodeJS.ProcessEnv = process.env): DecisionsCliConfig {
  return loadSettings(DecisionsCliConfigSchema, env);
}

export const DEFAULT_API_URL = 'http://127.0.0.1:8001';

/**
 * The settings of `decide`, the terminal client: where the API is and the key it sends, the
 * defaults of `--api` and `--api-key` (which check them).
 */
export const DecideConfigSchema = z.object({
  DECISIONS_API_URL: setting(z.string().default(DEFAULT_API_URL), {
    meaning: 'the API base URL when `--api` is not given',
  }),
  DECISIONS_API_KEY: setting(z.string().optional(), {
    meaning: 'the bearer token it sends when `--api-key` is not given',
  }),
});

export type DecideConfig = z.infer<typeof DecideConfigSchema>;

export function loadDecideConfig(env: NodeJS.ProcessEnv = process.env): DecideConfig {
  return loadSettings(DecideConfigSchema, env);
}
