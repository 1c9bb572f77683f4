import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { DEFAULT_LIMITS, MIN_TOKEN_BUDGET, type DecisionLimits } from './domain/decision';
import { isPhaseName, PHASE_NAMES, type PhaseName } from './domain/phases';

/** Settings that may be given as NAME_FILE, a path to a file holding the value. */
const SECRETS = [
  'LLM_API_KEY',
  'API_KEYS',
  'API_KEY_SECRET',
  'REDIS_URL',
  'WEBHOOK_SECRET',
  'WEBHOOK_PREVIOUS_SECRET',
] as const;

const port = z.coerce.number().int().min(0).max(65535);
const webhookSecret = z
  .string()
  .regex(
    /^whsec_[A-Za-z0-9+/]{16,}={0,2}$/,
    'must be whsec_ followed by a base64 key of at least 12 bytes',
  );
const flag = z.enum(['true', 'false']).transform((v) => v === 'true');

/**
 * `LLM_MAX_COMPLETION_TOKENS`: one number for every phase, or `phase=N` pairs separated by
 * commas; a phase not named keeps the cap derived from its answer schema.
 */
function parseTokenCaps(
  value: string | undefined,
  ctx: z.RefinementCtx,
): Partial<Record<PhaseName, number>> {
  if (value === undefined) return {};
  const positive = (text: string) => (/^\d+$/.test(text) && Number(text) > 0 ? Number(text) : null);
  const all = positive(value.trim());
  if (all !== null) return Object.fromEntries(PHASE_NAMES.map((p) => [p, all]));
  const caps: Partial<Record<PhaseName, number>> = {};
  for (const pair of value.split(',')) {
    const [phase = '', n = ''] = pair.split('=').map((s) => s.trim());
    const cap = positive(n);
    if (!isPhaseName(phase) || cap === null) {
      ctx.addIssue({
        code: 'custom',
        message: `"${pair.trim()}" is not phase=N (a phase name and a positive number of tokens)`,
      });
      continue;
    }
    caps[phase] = cap;
  }
  return caps;
}

/** Every setting the processes read, with its default. Read once at start-up, then passed down. */
export const ConfigSchema = z
  .object({
    HOST: z.string().min(1).default('127.0.0.1'),
    PORT: port.default(8001),
    TEMPORAL_ADDRESS: z
      .string()
      .regex(/^.+:\d+$/, 'must be host:port')
      .default('127.0.0.1:7233'),
    TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
    TEMPORAL_TASK_QUEUE: z.string().min(1).default('decisions'),
    TEMPORAL_UI_PORT: port.default(8233),
    TEMPORAL_DB_FILE: z.string().min(1).default('.data/temporal.sqlite'),
    REDIS_URL: z.url({ protocol: /^rediss?$/ }).default('redis://127.0.0.1:6379'),
    REDIS_KEY_PREFIX: z.string().default('decisions:'),
    REDIS_COMMAND_TIMEOUT_MS: z.coerce.number().int().positive().default(1000),
    REDIS_DATA_DIR: z.string().min(1).default('.data/redis'),
    DECISION_TTL_SECONDS: z.coerce
      .number()
      .int()
      .positive()
      .default(7 * 24 * 3600),
    MAX_QUERY_CHARS: z.coerce.number().int().positive().default(4000),
    LOG_LEVEL: z
      .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
      .default('info'),
    /** JSON lines, or readable lines (`pretty`); `auto` is readable on a terminal only. */
    LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
    /** Unset means the offline stand-in, with a loud warning: production names its provider. */
    LLM_PROVIDER: z.enum(['offline', 'openai']).optional(),
    LLM_MODEL: z.string().min(1).optional(),
    /** The offline model's answer delay per call, for benchmarks that stand in for a slow model. */
    LLM_OFFLINE_DELAY_MS: z.coerce.number().int().min(0).max(600_000).default(0),
    LLM_BASE_URL: z.url({ protocol: /^https?$/ }).optional(),
    LLM_API_KEY: z.string().min(1).optional(),
    LLM_TIMEOUT_MS: z.coerce.number().int().positive().default(DEFAULT_LIMITS.model_timeout_ms),
    LLM_RESPONSE_FORMAT: z.enum(['json_schema', 'json_object']).default('json_schema'),
    LLM_STRICT_SCHEMA: flag.default(true),
    LLM_TOKEN_LIMIT_FIELD: z
      .enum(['max_completion_tokens', 'max_tokens'])
      .default('max_completion_tokens'),
    LLM_MAX_COMPLETION_TOKENS: z
      .string()
      .optional()
      .transform((value, ctx) => parseTokenCaps(value, ctx)),
    DECISION_MAX_MODEL_CALLS: z.coerce
      .number()
      .int()
      .positive()
      .default(DEFAULT_LIMITS.budget.max_model_calls),
    DECISION_MAX_TOKENS: z.coerce
      .number()
      .int()
      .min(MIN_TOKEN_BUDGET)
      .default(DEFAULT_LIMITS.budget.max_tokens),
    PHASE_PAYLOAD_MAX_BYTES: z.coerce
      .number()
      .int()
      .min(16 * 1024)
      .max(1024 * 1024)
      .default(DEFAULT_LIMITS.payload_max_bytes),
    LLM_RESPONSE_TTL_SECONDS: z.coerce
      .number()
      .int()
      .positive()
      .default(7 * 24 * 3600),
    KNOWLEDGE_DIR: z.string().min(1).default('knowledge'),
    API_KEYS: z.string().optional(),
    AUTH_DISABLED: flag.default(false),
    API_KEY_SECRET: z.string().min(16, 'must have at least 16 characters').optional(),
    AUTH_FAILURES_PER_MINUTE: z.coerce.number().int().min(0).default(20),
    TRUST_PROXY: flag.default(false),
    EVENT_STREAMS_PER_KEY: z.coerce.number().int().positive().default(20),
    RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(0).default(120),
    CORS_ORIGINS: z.string().default(''),
    REVIEW_TIMEOUT_SECONDS: z.coerce.number().int().positive().default(86_400),
    MAX_WAIT_SECONDS: z.coerce.number().int().positive().default(120),
    WORKER_SHUTDOWN_GRACE_SECONDS: z.coerce.number().int().min(0).default(30),
    WORKER_HTTP_PORT: z
      .string()
      .default('8002')
      .transform((v) => (v === 'off' ? null : Number(v)))
      .pipe(z.number().int().min(0).max(65535).nullable()),
    WORKER_SDK_METRICS_ADDRESS: z
      .string()
      .regex(/^(.+:\d+|off)$/, 'must be host:port or off')
      .default('127.0.0.1:9464')
      .transform((v) => (v === 'off' ? null : v)),
    OTEL_EXPORTER_OTLP_ENDPOINT: z.url().optional(),
    WORKER_MAX_ACTIVITIES: z.coerce.number().int().positive().default(100),
    WORKER_MAX_WORKFLOW_TASKS: z.coerce.number().int().min(2).default(40),
    WORKER_MAX_CACHED_WORKFLOWS: z.coerce.number().int().min(0).default(1000),
    /** The Worker Deployment the worker polls as; unset, named after TEMPORAL_TASK_QUEUE. */
    WORKER_DEPLOYMENT_NAME: z
      .string()
      .regex(
        /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/,
        'must be 1-100 letters, digits, - or _ (Temporal refuses . and : in a deployment name)',
      )
      .optional(),
    /** The worker's build id; unset, the package version and the workflow bundle's hash. */
    WORKER_BUILD_ID: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$/, 'must be 1-100 letters, digits, ., +, - or _')
      .optional(),
    /** Whether a starting worker makes its version current: auto, manual or always (dev). */
    WORKER_PROMOTION: z.enum(['auto', 'manual', 'always']).default('auto'),
    /**
     * `off` polls without Worker Deployment Versioning, for a Temporal server without its APIs
     * (before 1.27): decisions then move to whichever worker polls, and only patched() guards
     * changes. Not to be mixed with versioned workers on one task queue.
     */
    WORKER_VERSIONING: z.enum(['on', 'off']).default('on'),
    WORKFLOW_BUNDLE_PATH: z.string().min(1).optional(),
    /** Signs webhook deliveries (Standard Webhooks); unset, decisions with a webhook are refused. */
    WEBHOOK_SECRET: webhookSecret.optional(),
    /** While a secret is rotated: deliveries carry a second signature, made with this one. */
    WEBHOOK_PREVIOUS_SECRET: webhookSecret.optional(),
    /** How long a delivery is retried before it counts as failed. */
    WEBHOOK_RETRY_HOURS: z.coerce.number().positive().max(720).default(24),
    /** How long one delivery attempt waits for the receiver's answer. */
    WEBHOOK_TIMEOUT_SECONDS: z.coerce.number().int().positive().max(300).default(10),
    /** Lets webhook URLs reach loopback, private and link-local addresses (tests, private meshes). */
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: flag.default(false),
  })
  .superRefine((c, ctx) => {
    if (c.WEBHOOK_PREVIOUS_SECRET && !c.WEBHOOK_SECRET) {
      ctx.addIssue({
        code: 'custom',
        path: ['WEBHOOK_PREVIOUS_SECRET'],
        message: 'needs WEBHOOK_SECRET, the new secret it is rotated to',
      });
    }
    if (c.LLM_PROVIDER === 'openai' && !c.LLM_API_KEY && !c.LLM_BASE_URL) {
      ctx.addIssue({
        code: 'custom',
        path: ['LLM_API_KEY'],
        message:
          'is required with LLM_PROVIDER=openai (or set LLM_BASE_URL to a server that needs no key)',
      });
    }
    if (c.LLM_PROVIDER === 'openai' && !c.LLM_MODEL) {
      ctx.addIssue({
        code: 'custom',
        path: ['LLM_MODEL'],
        message: 'is required with LLM_PROVIDER=openai',
      });
    }
  });

export type Config = z.infer<typeof ConfigSchema>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** The environment's set variables: an empty one counts as unset. */
export function setVariables(env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
}

/** Parses settings with a schema; a bad value throws a ConfigError naming every problem. */
export function parseSettings<S extends z.ZodType>(schema: S, values: unknown): z.infer<S> {
  const parsed = schema.safeParse(values);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `  ${issue.path.join('.')}: ${issue.message}`,
    );
    throw new ConfigError(`Invalid configuration:\n${problems.join('\n')}`);
  }
  return parsed.data;
}

/** Validates the environment; a bad value stops start-up with every problem named. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const values = setVariables(env);
  // Secrets may come from files (Docker and Kubernetes secrets): NAME_FILE holds NAME.
  for (const name of SECRETS) {
    const file = values[`${name}_FILE`];
    if (!file) continue;
    try {
      const value = readFileSync(file, 'utf8').trim();
      // An empty file is an unset value, as an empty variable is.
      if (value) values[name] = value;
      else delete values[name];
    } catch (err) {
      throw new ConfigError(
        `Invalid configuration:\n  ${name}_FILE: cannot read ${file} (${(err as Error).message})`,
      );
    }
  }
  return parseSettings(ConfigSchema, values);
}

/** The limits every new decision gets from the configuration. */
export function decisionLimits(config: Config): DecisionLimits {
  return {
    budget: {
      max_model_calls: config.DECISION_MAX_MODEL_CALLS,
      max_tokens: config.DECISION_MAX_TOKENS,
    },
    model_timeout_ms: config.LLM_TIMEOUT_MS,
    payload_max_bytes: config.PHASE_PAYLOAD_MAX_BYTES,
  };
}
