import { Redis } from 'ioredis';
import { ApiConfigSchema, decisionLimits, type ApiConfig } from '../config';
import { createApp } from './app';

/**
 * The OpenAPI document the API serves at /openapi.json with these settings (by default the
 * defaults), made without any server: an app with no Temporal behind it answers the one request.
 * Its Redis client is never connected; the routes that would use it are not called.
 */
export async function openApiDocument(
  config: ApiConfig = ApiConfigSchema.parse({}),
): Promise<Record<string, unknown>> {
  const redis = new Redis(config.REDIS_URL, { lazyConnect: true });
  try {
    const app = createApp({
      decisions: {} as never,
      projection: {} as never,
      health: () => Promise.reject(new Error('the document needs no health check')),
      redis,
      keyPrefix: config.REDIS_KEY_PREFIX,
      apiKeys: null,
      // The settings the document shows, as src/api/server.ts passes them.
      maxQueryChars: config.MAX_QUERY_CHARS,
      maxWaitSeconds: config.MAX_WAIT_SECONDS,
      maxBudget: decisionLimits(config).budget,
      rateLimitPerMinute: config.RATE_LIMIT_PER_MINUTE,
      authFailuresPerMinute: config.AUTH_FAILURES_PER_MINUTE,
      maxStreamsPerKey: config.EVENT_STREAMS_PER_KEY,
      temporalUi: { url: config.TEMPORAL_UI_URL, namespace: config.TEMPORAL_NAMESPACE },
    });
    const res = await app.request('/openapi.json');
    if (!res.ok) throw new Error(`GET /openapi.json answered ${res.status}: ${await res.text()}`);
    const document = (await res.json()) as Record<string, unknown>;
    // `wait` until a command is sent: anything else means something reached for Redis.
    if (redis.status !== 'wait') {
      throw new Error(`making the document connected to Redis (status ${redis.status})`);
    }
    return document;
  } finally {
    redis.disconnect();
  }
}
