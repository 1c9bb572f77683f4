import { z } from 'zod';
import { flag, loadSettings, port, setting } from './settings';
import {
  deploymentSettings,
  limitSettings,
  redisSettings,
  retentionSettings,
  observabilitySettings,
  temporalSettings,
  webhookSettings,
} from './shared';

/** The settings the API reads (`npm run api`, `dist/main/api.js`). */
export const ApiConfigSchema = z.object({
  HOST: setting(z.string().min(1).default('127.0.0.1'), {
    meaning: 'address the API listens on',
  }),
  PORT: setting(port.default(8001), { meaning: 'API port' }),
  API_PUBLIC_URL: setting(z.url({ protocol: /^https?$/ }).optional(), {
    meaning:
      "the API's URL as its clients reach it: the OpenAPI document's `servers` and the base of problem `type`s; set it behind a proxy",
    shownDefault: '(the URL each request reached)',
  }),
  ...temporalSettings,
  ...redisSettings,
  // The read rule writes back an end the projection missed, with the decision's TTL.
  ...retentionSettings,
  ...observabilitySettings,
  ...limitSettings,
  ...webhookSettings,
  // Which deployment's current build a create starts on, and whether it has workers.
  ...deploymentSettings,
  API_KEYS: setting(z.string().optional(), {
    meaning: '`<key>=<scope>+<scope>[@<name>],…`; unset means no auth (see API)',
    secret: true,
  }),
  API_KEY_SECRET: setting(z.string().min(16, 'must have at least 16 characters').optional(), {
    meaning: 'the HMAC secret that names unnamed keys in logs and limits (16+ characters)',
    shownDefault: '(derived from the keys)',
    secret: true,
  }),
  AUTH_FAILURES_PER_MINUTE: setting(z.coerce.number().int().min(0).default(20), {
    meaning:
      'wrong keys per client address (IPv6: its /64) a minute told 401, then 429; `0` for no limit',
  }),
  EVENT_STREAMS_PER_KEY: setting(z.coerce.number().int().positive().default(20), {
    meaning:
      'event streams one key (auth off: one address) may hold open across all API processes (429 past)',
  }),
  EVENT_STREAM_LEASE_SECONDS: setting(z.coerce.number().int().min(1).max(3600).default(30), {
    meaning:
      'how long the event streams of an API process that died still count (open ones are renewed every third of it)',
  }),
  TRUST_PROXY: setting(flag.default(false), {
    meaning: 'take the client address from the last `X-Forwarded-For` entry (behind a proxy only)',
  }),
  AUTH_DISABLED: setting(flag.default(false), {
    meaning: 'lets `npm run api` start without `API_KEYS`',
  }),
  RATE_LIMIT_PER_MINUTE: setting(z.coerce.number().int().min(0).default(120), {
    meaning: 'requests per key per minute; `0` turns the limit off',
  }),
  CORS_ORIGINS: setting(z.string().default(''), {
    meaning: 'comma-separated allowed origins, or `*`',
    shownDefault: '(empty)',
  }),
  MAX_QUERY_CHARS: setting(z.coerce.number().int().positive().default(4000), {
    meaning: 'longest question accepted',
  }),
  REVIEW_TIMEOUT_SECONDS: setting(z.coerce.number().int().positive().default(86_400), {
    meaning: 'how long a decision waits for its reviewer',
  }),
  MAX_WAIT_SECONDS: setting(z.coerce.number().int().positive().default(120), {
    meaning: 'longest `wait` / `timeout` a request may ask for',
  }),
  WEBHOOK_RETRY_HOURS: setting(z.coerce.number().positive().max(720).default(24), {
    meaning: 'how long a delivery is retried before it counts as failed',
  }),
  WEBHOOK_TIMEOUT_SECONDS: setting(z.coerce.number().int().positive().max(300).default(10), {
    meaning: "how long one delivery attempt waits for the receiver's answer",
  }),
  TEMPORAL_UI_URL: setting(z.url({ protocol: /^https?$/ }).default('http://127.0.0.1:8233'), {
    meaning: "the Temporal Web UI as a person's browser reaches it: the decision page links there",
  }),
});

export type ApiConfig = z.infer<typeof ApiConfigSchema>;

/** The API's settings from the environment, read once at start-up. */
export function loadApiConfig(env: NodeJS.ProcessEnv = process.env): ApiConfig {
  return loadSettings(ApiConfigSchema, env);
}
