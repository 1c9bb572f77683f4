import { z } from 'zod';
import { isPhaseName, PHASE_NAMES, type PhaseName } from '../domain/phases';
import { flag, loadSettings, setting } from './settings';
import {
  deploymentSettings,
  limitSettings,
  redisSettings,
  retentionSettings,
  observabilitySettings,
  temporalSettings,
  webhookSecret,
  webhookSettings,
} from './shared';

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

/** The model the worker's phases call. */
const modelSettings = {
  LLM_PROVIDER: setting(z.enum(['offline', 'openai']).optional(), {
    meaning: '`offline` or `openai`; unset runs `offline` with a warning',
  }),
  LLM_OFFLINE_DELAY_MS: setting(z.coerce.number().int().min(0).max(600_000).default(0), {
    meaning:
      "with `offline`: each answer streams over this long, as a remote model's would (`npm start`: 1500)",
  }),
  LLM_MODEL: setting(z.string().min(1).optional(), {
    meaning: 'model name; required with `openai`',
  }),
  LLM_BASE_URL: setting(z.url({ protocol: /^https?$/ }).optional(), {
    meaning: "OpenAI-compatible endpoint; unset means OpenAI's",
  }),
  LLM_API_KEY: setting(z.string().min(1).optional(), {
    meaning: 'required with `openai` unless `LLM_BASE_URL` is set',
    secret: true,
  }),
  LLM_RESPONSE_FORMAT: setting(z.enum(['json_schema', 'json_object']).default('json_schema'), {
    meaning: '`json_schema` (structured outputs) or `json_object`',
  }),
  LLM_STRICT_SCHEMA: setting(flag.default(true), {
    meaning: 'with `json_schema`: send `strict: true` and the schema in the strict subset',
  }),
  LLM_TOKEN_LIMIT_FIELD: setting(
    z.enum(['max_completion_tokens', 'max_tokens']).default('max_completion_tokens'),
    {
      meaning: 'the request field of the token cap; `max_tokens` for servers that know only that',
    },
  ),
  LLM_STREAM: setting(flag.default(true), {
    meaning: 'with `openai`: take the answer as it is written (a stream), not in one response',
  }),
  LLM_MAX_COMPLETION_TOKENS: setting(
    z
      .string()
      .optional()
      .transform((value, ctx) => parseTokenCaps(value, ctx)),
    {
      meaning:
        'token cap: `N` for every phase, or `phase=N,…`; unset derives it from each answer schema',
      shownDefault: '(derived per phase)',
    },
  ),
  LLM_REQUESTS_PER_MINUTE: setting(z.coerce.number().int().min(0).default(0), {
    meaning:
      'requests a minute to the provider and model, all workers on the Redis together; 0: none',
  }),
  LLM_TOKENS_PER_MINUTE: setting(z.coerce.number().int().min(0).default(0), {
    meaning:
      'tokens a minute (input + output) to the provider and model, all workers together; 0: none',
  }),
  KNOWLEDGE_DIR: setting(z.string().min(1).default('knowledge'), {
    meaning: 'folder of Markdown/text documents for retrieval',
  }),
};

/** The worker process: its HTTP port, its slots, its version. */
const workerProcessSettings = {
  WORKER_HTTP_PORT: setting(
    z
      .string()
      .default('8002')
      .transform((v) => (v === 'off' ? null : Number(v)))
      .pipe(z.number().int().min(0).max(65535).nullable()),
    { meaning: "the worker's `/health`, `/ready`, `/metrics`; `off` for none" },
  ),
  WORKER_HTTP_HOST: setting(z.string().min(1).default('127.0.0.1'), {
    meaning:
      "address the worker's HTTP port listens on (`0.0.0.0`: every interface; see METRICS_TOKEN)",
  }),
  METRICS_TOKEN: setting(z.string().min(16).optional(), {
    meaning: "bearer token the worker's `/metrics` asks for (16+ characters); unset: none",
    secret: true,
  }),
  WORKER_SDK_METRICS_ADDRESS: setting(
    z
      .string()
      .regex(/^(.+:\d+|off)$/, 'must be host:port or off')
      .default('127.0.0.1:9464')
      .transform((v) => (v === 'off' ? null : v)),
    {
      meaning:
        "where the Temporal SDK exports its metrics (served again on the worker's `/metrics`); `off`",
    },
  ),
  WORKER_SHUTDOWN_GRACE_SECONDS: setting(z.coerce.number().int().min(0).default(30), {
    meaning: 'how long activities in flight may finish on shutdown',
  }),
  WORKER_MAX_ACTIVITIES: setting(z.coerce.number().int().positive().optional(), {
    meaning:
      'activity slots (phases waiting on the model at once); unset: 1 per MB of the memory limit left',
    shownDefault: '(from memory)',
  }),
  WORKER_MAX_WORKFLOW_TASKS: setting(z.coerce.number().int().min(2).default(40), {
    meaning: 'workflow task slots per worker',
  }),
  WORKER_MAX_CACHED_WORKFLOWS: setting(z.coerce.number().int().min(0).default(1000), {
    meaning: 'workflows a worker keeps in memory (sticky cache)',
  }),
  ...deploymentSettings,
  WORKER_BUILD_ID: setting(
    z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$/, 'must be 1-100 letters, digits, ., +, - or _')
      .optional(),
    {
      meaning:
        "its build id; by default the package version, `+`, 12 hex of the workflow bundle's SHA-256",
      shownDefault: '(version + bundle hash)',
    },
  ),
  WORKER_PROMOTION: setting(z.enum(['auto', 'manual', 'always']).default('auto'), {
    meaning:
      'makes its build current at start: `auto` (a new build), `manual`, `always` (`npm start`)',
  }),
  /**
   * `off` polls without Worker Deployment Versioning, for a Temporal server without its APIs
   * (before 1.27): decisions then move to whichever worker polls, and only patched() guards
   * changes. Not to be mixed with versioned workers on one task queue.
   */
  WORKER_VERSIONING: setting(z.enum(['on', 'off']).default('on'), {
    meaning: '`off` polls unversioned, for a Temporal server before 1.27 (docs/OPERATIONS.md)',
  }),
  WORKFLOW_BUNDLE_PATH: setting(z.string().min(1).optional(), {
    meaning: 'start from a bundle made by `npm run bundle:workflows` instead of bundling at start',
  }),
};

/** The settings the worker reads (`npm run worker`, `dist/main/worker.js`). */
export const WorkerConfigSchema = z
  .object({
    ...temporalSettings,
    ...redisSettings,
    ...retentionSettings,
    ...observabilitySettings,
    ...limitSettings,
    ...webhookSettings,
    ...modelSettings,
    ...workerProcessSettings,
    WEBHOOK_PREVIOUS_SECRET: setting(webhookSecret.optional(), {
      meaning: 'while rotating: the old secret; deliveries carry a signature made with each',
      secret: true,
    }),
    WEBHOOK_DELIVERIES_PER_PRINCIPAL: setting(z.coerce.number().int().positive().default(10), {
      meaning:
        'deliveries one principal may have in flight on this worker; more are retried a few seconds later',
    }),
    WEBHOOK_REJECTED_RETRY_SECONDS: setting(
      z
        .string()
        .default('60,600')
        .transform((text, ctx) => {
          const waits = text.split(',').map((w) => w.trim());
          if (waits.length !== 2 || waits.some((w) => !/^\d{1,6}$/.test(w))) {
            ctx.addIssue({
              code: 'custom',
              message: 'must be two whole numbers of seconds, comma-separated, such as 60,600',
            });
            return z.NEVER;
          }
          return waits.map((w) => Number(w) * 1000);
        }),
      {
        meaning:
          'least waits (s) after the 1st and 2nd 4xx before the next attempt; the 3rd ends a delivery',
        shownDefault: '`60,600`',
      },
    ),
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

export type WorkerConfig = z.infer<typeof WorkerConfigSchema>;

/** The worker's settings from the environment, read once at start-up. */
export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  return loadSettings(WorkerConfigSchema, env);
}
