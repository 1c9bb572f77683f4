import { z } from 'zod';
import { loadSettings, port, setting } from '../src/config/settings';
import { temporalSettings } from '../src/config/shared';

/**
 * The settings of the local scaffolding itself (`npm start`, `npm run temporal`, `npm run
 * cluster`): the servers it starts on this machine. No product process reads them.
 */
export const LocalSettingsSchema = z.object({
  TEMPORAL_UI_PORT: setting(port.default(8233), {
    meaning: 'Web UI port of the Temporal server `npm start` or `npm run cluster` launches',
  }),
  TEMPORAL_DB_FILE: setting(z.string().min(1).default('.data/temporal.sqlite'), {
    meaning: "the dev server's history file",
  }),
  REDIS_DATA_DIR: setting(z.string().min(1).default('.data/redis'), {
    meaning: 'data folder of a `redis-server` that `npm start` starts',
  }),
});

export type LocalSettings = z.infer<typeof LocalSettingsSchema>;

export function loadLocalSettings(env: NodeJS.ProcessEnv = process.env): LocalSettings {
  return loadSettings(LocalSettingsSchema, env);
}

/** What `npm run temporal` reads: where the dev server listens, and its own settings. */
export const TemporalDevSettingsSchema = LocalSettingsSchema.extend({
  TEMPORAL_ADDRESS: temporalSettings.TEMPORAL_ADDRESS,
  TEMPORAL_NAMESPACE: temporalSettings.TEMPORAL_NAMESPACE,
});

export type TemporalDevSettings = z.infer<typeof TemporalDevSettingsSchema>;
