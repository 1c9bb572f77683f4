import { z } from 'zod';
import {
  ConfigError,
  loadApiConfig,
  loadSettings,
  loadWorkerConfig,
  type ApiConfig,
  type WorkerConfig,
} from '../../src/config';
import { loadLocalSettings, type LocalSettings } from '../settings';
import { DEFAULT_TEMPORAL_PORTS, type TemporalPorts } from './topology';

/** The PostgreSQL of this machine, as the project's machines run it (trust auth). */
export const DEFAULT_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432';

const temporalPort = z.coerce.number().int().min(1).max(32767);

const database = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'must be a plain PostgreSQL name (letters, digits, _)');

/** The settings `npm run cluster` reads besides the processes' own (src/config/). */
export const ClusterSettingsSchema = z.object({
  POSTGRES_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be postgres://[user[:password]@]host[:port]')
    .default(DEFAULT_POSTGRES_URL),
  TEMPORAL_DB_NAME: database.default('temporal'),
  TEMPORAL_VISIBILITY_DB_NAME: database.default('temporal_visibility'),
  /** How long a closed decision's history is kept; at least DECISION_TTL_SECONDS. */
  TEMPORAL_NAMESPACE_RETENTION_HOURS: z.coerce.number().int().min(1).default(168),
  /** The Temporal server's Prometheus endpoint on this host, or off. */
  TEMPORAL_METRICS_PORT: z
    .string()
    .default('8000')
    .transform((v) => (v === 'off' ? null : Number(v)))
    .pipe(z.number().int().min(1).max(65535).nullable()),
  /** The Temporal server's log level (its own variable is LOG_LEVEL, which the roles use). */
  TEMPORAL_LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  /**
   * The Temporal server's other ports, under the names temporal/server/production.yaml reads
   * (its frontend's is TEMPORAL_ADDRESS's). Below 32768: the server stores them as smallint.
   */
  FRONTEND_HTTP_PORT: temporalPort.default(DEFAULT_TEMPORAL_PORTS.frontendHttp),
  FRONTEND_MEMBERSHIP_PORT: temporalPort.default(DEFAULT_TEMPORAL_PORTS.frontendMembership),
  HISTORY_GRPC_PORT: temporalPort.default(DEFAULT_TEMPORAL_PORTS.history),
  HISTORY_MEMBERSHIP_PORT: temporalPort.default(DEFAULT_TEMPORAL_PORTS.historyMembership),
  MATCHING_GRPC_PORT: temporalPort.default(DEFAULT_TEMPORAL_PORTS.matching),
  MATCHING_MEMBERSHIP_PORT: temporalPort.default(DEFAULT_TEMPORAL_PORTS.matchingMembership),
  WORKER_GRPC_PORT: temporalPort.default(DEFAULT_TEMPORAL_PORTS.worker),
  WORKER_MEMBERSHIP_PORT: temporalPort.default(DEFAULT_TEMPORAL_PORTS.workerMembership),
  CLUSTER_WORKERS: z.coerce.number().int().min(1).max(16).default(2),
  CLUSTER_DATA_DIR: z.string().min(1).default('.data/cluster'),
  /** The cluster's Redis: one it starts there, with an append-only file, unless one answers. */
  CLUSTER_REDIS_URL: z.url({ protocol: /^redis$/ }).default('redis://127.0.0.1:6380'),
});

export type ClusterSettings = z.infer<typeof ClusterSettingsSchema> & {
  /** The API's and the workers' settings, checked before anything starts. */
  api: ApiConfig;
  worker: WorkerConfig;
  local: LocalSettings;
};

export function loadClusterSettings(env: NodeJS.ProcessEnv = process.env): ClusterSettings {
  const api = loadApiConfig(env);
  const worker = loadWorkerConfig(env);
  const local = loadLocalSettings(env);
  const settings = loadSettings(ClusterSettingsSchema, env);
  if (settings.TEMPORAL_DB_NAME === settings.TEMPORAL_VISIBILITY_DB_NAME) {
    throw new ConfigError(
      'Invalid configuration:\n  TEMPORAL_VISIBILITY_DB_NAME: must differ from TEMPORAL_DB_NAME',
    );
  }
  return { ...settings, api, worker, local };
}

/** The Temporal server's ports: the frontend's from TEMPORAL_ADDRESS, the others from settings. */
export function clusterTemporalPorts(settings: ClusterSettings, frontend: number): TemporalPorts {
  return {
    frontend,
    frontendHttp: settings.FRONTEND_HTTP_PORT,
    frontendMembership: settings.FRONTEND_MEMBERSHIP_PORT,
    history: settings.HISTORY_GRPC_PORT,
    historyMembership: settings.HISTORY_MEMBERSHIP_PORT,
    matching: settings.MATCHING_GRPC_PORT,
    matchingMembership: settings.MATCHING_MEMBERSHIP_PORT,
    worker: settings.WORKER_GRPC_PORT,
    workerMembership: settings.WORKER_MEMBERSHIP_PORT,
  };
}
