import { Resolver } from 'node:dns';
import { z } from 'zod';
import { DEFAULT_LIMITS, MIN_TOKEN_BUDGET, type DecisionLimits } from '../domain/decision';
import { flag, setting } from './settings';

// The settings more than one role reads, in groups; each role's schema takes the groups it uses.

/** The Temporal server and where decisions run (API, worker, `decisions`). */
export const temporalSettings = {
  TEMPORAL_ADDRESS: setting(
    z
      .string()
      .regex(/^.+:\d+$/, 'must be host:port')
      .default('127.0.0.1:7233'),
    { meaning: 'Temporal frontend (host:port)' },
  ),
  TEMPORAL_NAMESPACE: setting(z.string().min(1).default('default'), {
    meaning: 'Temporal namespace',
  }),
  TEMPORAL_TASK_QUEUE: setting(z.string().min(1).default('decisions'), {
    meaning: 'task queue of the decision workflows and activities',
  }),
};

/** The Redis that holds the projection (API, worker, `decisions`). */
export const redisSettings = {
  REDIS_URL: setting(z.url({ protocol: /^rediss?$/ }).default('redis://127.0.0.1:6379'), {
    meaning: 'Redis holding the projection',
    secret: true,
  }),
  REDIS_CLUSTER_NODES: setting(
    z
      .string()
      .regex(
        /^(rediss?:\/\/[^,\s]+|[^,:\s]+:\d+)(,(rediss?:\/\/[^,\s]+|[^,:\s]+:\d+))*$/,
        'must be host:port,host:port,… (or redis:// URLs)',
      )
      .optional(),
    {
      meaning:
        "a Redis Cluster's nodes (host:port,…; some of them are enough): when set, the projection and everything else in Redis live on that cluster and REDIS_URL is not used",
      secret: true,
    },
  ),
  REDIS_KEY_PREFIX: setting(
    z
      .string()
      .regex(
        /^[^{}]*$/,
        'must not hold { or }: on a Redis Cluster they would put every key in one slot',
      )
      .default('decisions:'),
    { meaning: 'prefix of every Redis key' },
  ),
  REDIS_COMMAND_TIMEOUT_MS: setting(z.coerce.number().int().positive().default(1000), {
    meaning:
      'how long any Redis command may take before it fails (and its caller goes on without Redis)',
  }),
};

/**
 * How long a decision's data stays in Redis: its projection once it has finished, its budget
 * ledger, the model answers its phases stored (worker, `decisions reconcile`).
 */
export const retentionSettings = {
  DECISION_TTL_SECONDS: setting(
    z.coerce
      .number()
      .int()
      .positive()
      .default(7 * 24 * 3600),
    {
      meaning:
        "how long a decision's Redis data is kept: a finished one's projection, its stored model answers and budget ledger",
      shownDefault: '`604800` (7 days)',
    },
  ),
};

/** Logs and traces of the API and the worker. */
export const observabilitySettings = {
  LOG_LEVEL: setting(
    z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    { meaning: 'pino log level' },
  ),
  LOG_FORMAT: setting(z.enum(['auto', 'json', 'pretty']).default('auto'), {
    meaning:
      '`json`, or `pretty` (readable lines); `auto` is readable on a terminal and JSON elsewhere',
  }),
  OTEL_EXPORTER_OTLP_ENDPOINT: setting(z.url().optional(), {
    meaning: 'OTLP/HTTP endpoint for traces; unset turns tracing off',
  }),
};

/**
 * A decision's limits: the API fixes them into each decision it creates; the worker applies them
 * to decisions started before they were, and its model client times out after LLM_TIMEOUT_MS.
 */
export const limitSettings = {
  LLM_TIMEOUT_MS: setting(
    z.coerce.number().int().positive().default(DEFAULT_LIMITS.model_timeout_ms),
    {
      meaning: 'how long one model call may take (a phase attempt gets it per call it may make)',
    },
  ),
  DECISION_MAX_MODEL_CALLS: setting(
    z.coerce.number().int().positive().default(DEFAULT_LIMITS.budget.max_model_calls),
    {
      meaning: 'the most model calls one decision may make (retries, repairs and fan-out included)',
    },
  ),
  DECISION_MAX_TOKENS: setting(
    z.coerce.number().int().min(MIN_TOKEN_BUDGET).default(DEFAULT_LIMITS.budget.max_tokens),
    { meaning: 'the most input + output tokens one decision may spend' },
  ),
  PHASE_PAYLOAD_MAX_BYTES: setting(
    z.coerce
      .number()
      .int()
      .min(16 * 1024)
      .max(1024 * 1024)
      .default(DEFAULT_LIMITS.payload_max_bytes),
    {
      meaning: "the most bytes a phase's input or output may take in history (16 KiB to 1 MiB)",
      shownDefault: '`262144` (256 KiB)',
    },
  ),
};

/** The limits every new decision gets from the configuration. */
export function decisionLimits(config: z.infer<z.ZodObject<typeof limitSettings>>): DecisionLimits {
  return {
    budget: {
      max_model_calls: config.DECISION_MAX_MODEL_CALLS,
      max_tokens: config.DECISION_MAX_TOKENS,
    },
    model_timeout_ms: config.LLM_TIMEOUT_MS,
    payload_max_bytes: config.PHASE_PAYLOAD_MAX_BYTES,
  };
}

export const webhookSecret = z
  .string()
  .regex(
    /^whsec_[A-Za-z0-9+/]{16,}={0,2}$/,
    'must be whsec_ followed by a base64 key of at least 12 bytes',
  );

/** Webhooks: the API accepts them only with a secret; the worker signs and delivers. */
export const webhookSettings = {
  WEBHOOK_SECRET: setting(webhookSecret.optional(), {
    meaning: '`whsec_…` key that signs deliveries; unset refuses `webhook` with 400',
    secret: true,
  }),
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: setting(flag.default(false), {
    meaning: 'let webhook URLs reach loopback, private and link-local addresses (not other ports)',
  }),
  WEBHOOK_ALLOWED_PORTS: setting(
    z
      .string()
      .default('80,443')
      .transform((text, ctx): ReadonlySet<number> | 'any' => {
        if (text.trim() === '*') return 'any';
        const ports = text.split(',').map((p) => p.trim());
        if (ports.some((p) => !/^\d{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535)) {
          ctx.addIssue({
            code: 'custom',
            message: 'must be a comma-separated list of ports (1-65535), such as 80,443,8443, or *',
          });
          return z.NEVER;
        }
        return new Set(ports.map(Number));
      }),
    {
      meaning:
        'ports webhook URLs (and their redirects) may use, comma-separated; `*` for any (local receivers)',
      shownDefault: '`80,443`',
    },
  ),
  WEBHOOK_DNS_SERVERS: setting(
    z
      .string()
      .optional()
      .transform((text, ctx) => {
        const servers = (text ?? '')
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        // What c-ares itself accepts: an address in range, and a port from 1 to 65535.
        const bad = servers.find((s) => {
          try {
            new Resolver().setServers([s]);
            return false;
          } catch {
            return true;
          }
        });
        if (bad !== undefined) {
          ctx.addIssue({
            code: 'custom',
            message:
              'must be comma-separated server addresses (1.1.1.1, 1.1.1.1:53, [2606:4700::1111]:53)',
          });
          return z.NEVER;
        }
        return servers;
      }),
    {
      meaning:
        "DNS servers that webhook hosts are resolved with; the system's (resolv.conf) if unset",
      shownDefault: "(the system's)",
    },
  ),
  WEBHOOK_DNS_TIMEOUT_MS: setting(z.coerce.number().int().min(100).max(30_000).default(2000), {
    meaning:
      "how long resolving a webhook's host may take before the check answers 503 (or the attempt fails)",
  }),
};

/** The Worker Deployment the workers poll as, and when its builds count as gone (worker, API, `decisions`). */
export const deploymentSettings = {
  WORKER_DEPLOYMENT_NAME: setting(
    z
      .string()
      .regex(
        /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/,
        'must be 1-100 letters, digits, - or _ (Temporal refuses . and : in a deployment name)',
      )
      .optional(),
    {
      meaning: "the Worker Deployment the worker polls as; a task queue's `.` and `:` become `-`",
      shownDefault: "(the task queue's name)",
    },
  ),
  /**
   * Above the server's long poll (60 s), or running workers count as gone between two polls: the
   * server refreshes a poller's last access time only when a long poll starts or ends, so an idle
   * worker is seen once a minute. The worker and the API warn at start below 65 s
   * (MIN_GONE_AFTER_SECONDS in src/temporal/versioning.ts); docs/OPERATIONS.md says why.
   */
  WORKER_GONE_AFTER_SECONDS: setting(z.coerce.number().int().positive().default(90), {
    meaning:
      'a build none of whose workers polled for this long has none: auto takes over, creates 503; 65 or more',
  }),
};

/** The shared groups, in the order the README lists them. */
export const SHARED_SETTINGS = [
  temporalSettings,
  redisSettings,
  retentionSettings,
  observabilitySettings,
  limitSettings,
  webhookSettings,
  deploymentSettings,
];
