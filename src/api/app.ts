import type { IncomingMessage } from 'node:http';
import { DEFAULT_LIMITS, type DecisionBudget } from '../domain/decision';
import { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { requestId } from 'hono/request-id';
import type { RedisClient } from '../projection/redis-client';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { httpMetrics } from '../observability/metrics';
import { tracingMiddleware } from '../observability/tracing';
import type { Tracer } from '@opentelemetry/api';
import type { DecisionProjection } from '../projection/redis-projection';
import {
  Conflict,
  DecisionNotFound,
  IdempotencyKeyReused,
  InvalidRequest,
  LimitReached,
  Unavailable,
} from './errors';
import type { HealthCheck } from '../observability/health';
import type { BuildWatch } from '../temporal/build-watch';
import { TemporalUnreachable } from '../temporal/deadlines';
import { authenticate, requireScope, type ApiKey } from './middleware/auth';
import { attemptLimiter, rateLimit } from './middleware/rate-limit';
import { API_TITLE, API_VERSION, finishDocument } from './openapi';
import { problem, problemResponse, publicUrlOf, type Problem } from './problem';
import { registerDecisionRoutes, type ApiEnv, type Decisions } from './routes/decisions';
import { registerDocsRoutes } from './routes/docs';
import { EventHub } from './event-hub';
import { LiveReader } from '../projection/live-channel';
import { registerEventRoutes } from './routes/events';
import { StreamSlots, type SlotCounter } from './stream-slots';
import { registerHealthRoutes } from './routes/health';
import { registerMeRoute } from './routes/me';
import { registerProblemRoutes } from './routes/problems';
import { registerUiRoutes, type TemporalUiLink } from './routes/ui';
import { registerWebhookRoutes } from './routes/webhooks';

export interface AppDeps {
  decisions: Decisions;
  health: HealthCheck;
  /** Which builds have workers: /ready and status documents say when the one needed has none. */
  workers?: Pick<BuildWatch, 'workersCheck' | 'attention'> | null;
  projection: Pick<DecisionProjection, 'readEvents' | 'eventsKey'>;
  /** For rate limits and event streams. */
  redis: RedisClient;
  keyPrefix: string;
  /** The API's URL as clients reach it (API_PUBLIC_URL); by default, the one a request reached. */
  publicUrl?: string;
  maxQueryChars: number;
  maxWaitSeconds?: number;
  /** The most a decision may spend; requests may ask for less. */
  maxBudget?: DecisionBudget;
  /** The secret a principal's webhook deliveries are signed with; null without WEBHOOK_SECRET. */
  webhookSecretOf?: ((principal: string) => string) | null;
  /** Null runs without authentication: every caller has every scope. */
  apiKeys: ApiKey[] | null;
  /** Requests per minute per key (or client address); 0 turns the limit off. */
  rateLimitPerMinute?: number;
  /** Failed authentications per minute per client address before it is refused; 0 for no limit. */
  authFailuresPerMinute?: number;
  /** Take the client's address from X-Forwarded-For (set only behind a proxy that adds it). */
  trustProxy?: boolean;
  /** Allowed CORS origins; `*` for any; empty for no CORS headers. */
  corsOrigins?: string[];
  /** Largest request body accepted, in bytes. */
  maxBodyBytes?: number;
  /** How long an event stream waits for an event before a keep-alive. */
  eventBlockMs?: number;
  /** Event streams one key may hold open at once, across the API processes sharing Redis. */
  maxStreamsPerKey?: number;
  /** Counts the open event streams; by default a StreamSlots on `redis` with `streamLeaseMs`. */
  streamSlots?: SlotCounter;
  /** How long a stream's slot counts in Redis unless renewed (the process holding it died). */
  streamLeaseMs?: number;
  /** How long an event stream stays open at most (an hour); the client then reconnects. */
  maxStreamMs?: number;
  /** Where the decision page links a decision in the Temporal Web UI; null for no links. */
  temporalUi?: TemporalUiLink | null;
  /** Serves /metrics and counts requests when given. */
  metrics?: Registry;
  /** A span per request when tracing is on. */
  tracer?: Tracer;
  logger?: Pick<Logger, 'error' | 'info' | 'warn'>;
}

/** The problem document (but its instance) for what the service or a route refused a request with. */
function refusal(err: unknown): Problem | null {
  if (err instanceof DecisionNotFound) return problem(404, err.message);
  if (err instanceof Conflict) return problem(409, err.message);
  if (err instanceof IdempotencyKeyReused) return problem(422, err.message);
  if (err instanceof InvalidRequest) {
    return problem(400, err.message, err.fields ? { errors: err.fields } : {});
  }
  if (err instanceof Unavailable) return problem(503, err.message);
  if (err instanceof TemporalUnreachable) {
    return problem(
      503,
      'Temporal, which keeps the decisions, does not answer just now: send the request again in a few seconds',
    );
  }
  if (err instanceof LimitReached) return problem(429, err.message);
  return null;
}

/** Whether a request came with a body (framed by a length or chunks), read or not. */
function hasBody(incoming: IncomingMessage): boolean {
  const length = incoming.headers['content-length'];
  return (
    (length !== undefined && length !== '0') || incoming.headers['transfer-encoding'] !== undefined
  );
}

const DECISION_ID = /^\/decisions\/(?:status\/)?([^/]+)/;

/** The HTTP API as a Hono app: routes, validation, auth, limits, one problem+json error mapping. */
export function createApp(deps: AppDeps): OpenAPIHono<ApiEnv> {
  const app = new OpenAPIHono<ApiEnv>({
    defaultHook: (result, c) => {
      if (result.success) return;
      // A field the body must not have is named on its own, each: a typo is found, not ignored.
      const errors = result.error.issues.flatMap((issue) =>
        issue.code === 'unrecognized_keys'
          ? issue.keys.map((key) => ({
              path: [...issue.path, key].join('.'),
              message: 'is not a field of this request',
            }))
          : [{ path: issue.path.join('.') || '(body)', message: issue.message }],
      );
      const detail = errors.map((e) => `${e.path} ${e.message}`).join('; ');
      return problemResponse(c, problem(400, detail, { instance: c.req.path, errors }));
    },
  });
  const maxBodyBytes = deps.maxBodyBytes ?? 64 * 1024;
  const publicUrl = deps.publicUrl?.replace(/\/+$/, '');

  const failures =
    deps.authFailuresPerMinute === 0
      ? undefined
      : attemptLimiter({
          redis: deps.redis,
          prefix: deps.keyPrefix,
          perMinute: deps.authFailuresPerMinute ?? 20,
          onError: (err) => deps.logger?.warn({ err }, 'Authentication limiter unavailable'),
        });
  const auth = authenticate(deps.apiKeys, { failures, trustProxy: deps.trustProxy });

  // An answer given before the request's body was read (a 413, a 401 before a create): the Node
  // adapter drains the unread rest for half a second at most and then drops the connection, which
  // a client that reuses it sees as "other side closed". `Connection: close` says so first: the
  // client sends its next request on a new connection instead of one about to be dropped.
  app.use(async (c, next) => {
    await next();
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    if (incoming && !incoming.readableEnded && hasBody(incoming)) {
      try {
        c.res.headers.set('Connection', 'close');
      } catch {
        // A response with immutable headers: the same response, with headers of its own.
        const res = new Response(c.res.body, c.res);
        res.headers.set('Connection', 'close');
        c.res = undefined;
        c.res = res;
      }
    }
  });
  // Before any route answers: a problem's `type` and the document name the configured URL.
  if (publicUrl) {
    app.use(async (c, next) => {
      c.set('publicUrl', publicUrl);
      await next();
    });
  }
  app.use(requestId());
  if (deps.tracer) app.use(tracingMiddleware(deps.tracer));
  if (deps.metrics) {
    const registry = deps.metrics;
    app.use(httpMetrics(registry));
    // Metrics name routes, counts and failures: for operators (decisions:admin) only.
    app.get('/metrics', auth, requireScope('decisions:admin'), async (c) =>
      c.text(await registry.metrics(), 200, { 'Content-Type': registry.contentType }),
    );
  }
  app.use(async (c, next) => {
    const started = performance.now();
    await next();
    deps.logger?.info(
      {
        requestId: c.get('requestId'),
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round(performance.now() - started),
        principal: c.get('principal'),
        process_id: DECISION_ID.exec(c.req.path)?.[1],
      },
      'request',
    );
  });
  if (deps.corsOrigins?.length) {
    const origins = deps.corsOrigins;
    app.use(
      cors({
        origin: origins.includes('*') ? '*' : origins,
        allowHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key', 'Last-Event-ID'],
        exposeHeaders: [
          'Location',
          'Retry-After',
          'X-Request-Id',
          'RateLimit-Limit',
          'RateLimit-Remaining',
        ],
      }),
    );
  }
  const tooLarge = (c: Context) =>
    problemResponse(
      c,
      problem(413, `The request body is larger than ${maxBodyBytes} bytes`, {
        instance: c.req.path,
      }),
    );
  const limitBody = bodyLimit({ maxSize: maxBodyBytes, onError: tooLarge });
  // Reads carry no body; looking for one makes the Node adapter build a full Request for each. A
  // declared length is checked as bodyLimit checks it, without looking for the body either: the
  // adapter then reads the body from the socket itself, not through a web stream.
  app.use(async (c, next) => {
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return next();
    const length = c.req.header('Content-Length');
    if (length === undefined || c.req.header('Transfer-Encoding') !== undefined) {
      return limitBody(c, next);
    }
    return parseInt(length, 10) > maxBodyBytes ? tooLarge(c) : next();
  });

  registerHealthRoutes(app, deps);
  registerDocsRoutes(app);
  registerUiRoutes(app, { temporalUi: deps.temporalUi ?? null });
  registerProblemRoutes(app);
  // Generated once all routes are registered (at the first request), finished per API URL.
  let generated: object | null = null;
  const documents = new Map<string, string>();
  app.get('/openapi.json', (c) => {
    generated ??= app.getOpenAPI31Document({
      openapi: '3.1.0',
      info: {
        title: API_TITLE,
        version: API_VERSION,
        description:
          'Ask a decision question; ten agent phases run durably on Temporal. Errors are RFC 9457 problem documents, each `type` a page on what it means.',
      },
    });
    const url = publicUrlOf(c);
    let text = documents.get(url);
    if (text === undefined) {
      text = JSON.stringify(finishDocument(generated, url));
      // Without API_PUBLIC_URL each Host a request names has its own: keep a few.
      if (documents.size >= 8) documents.delete(documents.keys().next().value!);
      documents.set(url, text);
    }
    return c.body(text, 200, { 'Content-Type': 'application/json' });
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description: 'An API key from API_KEYS',
  });

  // `/decisions/*` matches `/decisions` itself too.
  app.use('/decisions/*', auth);
  app.use('/me', auth);
  app.use('/webhooks/*', auth);
  if (deps.rateLimitPerMinute) {
    const limit = rateLimit({
      redis: deps.redis,
      prefix: deps.keyPrefix,
      perMinute: deps.rateLimitPerMinute,
      trustProxy: deps.trustProxy,
      onError: (err) => deps.logger?.warn({ err }, 'Rate limiter unavailable; request let through'),
    });
    app.use('/decisions/*', limit);
    app.use('/me', limit);
    app.use('/webhooks/*', limit);
  }
  registerMeRoute(app);
  registerWebhookRoutes(app, { secretOf: deps.webhookSecretOf ?? null });
  registerEventRoutes(app, {
    decisions: deps.decisions,
    projection: deps.projection,
    live: new LiveReader(deps.redis, deps.keyPrefix),
    hub: new EventHub(deps.redis, deps.keyPrefix, {
      onError: (err, more) => deps.logger?.warn({ err, more }, 'Event stream reader: Redis error'),
    }),
    blockMs: deps.eventBlockMs,
    maxStreamsPerKey: deps.maxStreamsPerKey,
    slots:
      deps.streamSlots ??
      new StreamSlots(deps.redis, deps.keyPrefix, {
        leaseMs: deps.streamLeaseMs,
        onError: (err, more) =>
          deps.logger?.warn(
            { err, more },
            'Event stream slots unavailable in Redis; counted per process',
          ),
      }),
    trustProxy: deps.trustProxy,
    maxStreamMs: deps.maxStreamMs,
  });
  registerDecisionRoutes(app, {
    decisions: deps.decisions,
    maxQueryChars: deps.maxQueryChars,
    maxWaitSeconds: deps.maxWaitSeconds ?? 120,
    maxBudget: deps.maxBudget ?? DEFAULT_LIMITS.budget,
    workers: deps.workers,
  });

  app.notFound((c) =>
    problemResponse(c, problem(404, `No route for ${c.req.method} ${c.req.path}`)),
  );
  app.onError((err, c) => {
    const refused = refusal(err);
    if (refused?.status === 503) {
      c.header('Retry-After', String(err instanceof Unavailable ? err.retryAfterSeconds : 5));
    }
    if (refused) return problemResponse(c, { ...refused, instance: c.req.path });
    if (err instanceof HTTPException) {
      const detail =
        err.status === 415
          ? 'The request body must be JSON (Content-Type: application/json)'
          : err.message;
      return problemResponse(c, problem(err.status, detail, { instance: c.req.path }));
    }
    deps.logger?.error({ err, path: c.req.path, requestId: c.get('requestId') }, 'Request failed');
    return problemResponse(
      c,
      problem(500, 'The server could not handle the request', { instance: c.req.path }),
    );
  });
  return app;
}
