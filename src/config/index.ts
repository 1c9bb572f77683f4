import { ApiConfigSchema } from './api';
import { DecideConfigSchema, DecisionsCliConfigSchema } from './cli';
import type { Settings } from './settings';
import { WorkerConfigSchema } from './worker';

// Each process reads only its own settings, from the environment, once at start-up; its entry
// point parses them with its role's schema and passes them down. Nothing else reads process.env.

export { ApiConfigSchema, loadApiConfig, type ApiConfig } from './api';
export {
  DecideConfigSchema,
  DecisionsCliConfigSchema,
  loadDecideConfig,
  loadDecisionsCliConfig,
  type DecideConfig,
  type DecisionsCliConfig,
} from './cli';
export { ConfigError, loadSettings, settingDocs } from './settings';
export { decisionLimits, SHARED_SETTINGS } from './shared';
export { WorkerConfigSchema, loadWorkerConfig, type WorkerConfig } from './worker';

/** The roles and the settings each reads, as the README's table lists them. */
export const ROLES: { name: string; schema: Settings }[] = [
  { name: 'API', schema: ApiConfigSchema },
  { name: 'worker', schema: WorkerConfigSchema },
  { name: '`decisions`', schema: DecisionsCliConfigSchema },
  { name: '`decide`', schema: DecideConfigSchema },
];
