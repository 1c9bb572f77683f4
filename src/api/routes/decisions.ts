import { createHash } from 'node:crypto';
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Context, TypedResponse } from 'hono';
import {
  DECISION_EVENT_TYPES,
  DECISION_STATUSES,
  isTerminal,
  MIN_TOKEN_BUDGET,
  type DecisionBudget,
  type DecisionRecord,
} from '../../domain/decision';
import { parseDuration } from '../../domain/duration';
import { DecisionRecordSchema, PhaseNameSchema } from '../../domain/schemas';
import { DEFAULT_WEBHOOK_EVENTS } from '../../domain/webhook';
import { callerOf } from '../access';
import { headerRef, type Tag } from '../openapi';
import { ProblemDetailsSchema } from '../problem';
import type { DecisionService, ListPosition } from '../decision-service';
import { InvalidRequest } from '../errors';
import { requireScope, type AuthVariables } from '../middleware/auth';
import type { Attention, BuildWatch } from '../../temporal/build-watch';

export type Decisions = Pick<
  DecisionService,
  'start' | 'get' | 'find' | 'result' | 'list' | 'wait' | 'cancel' | 'review' | 'fork' | 'retry'
>;
export type ApiEnv = {
  Variables: AuthVariables & {
    /** API_PUBLIC_URL, when set: problem types and the document's server name it. */
    publicUrl?: string;
  };
};

const AttentionSchema = z
  .object({
    reason: z.literal('no_live_worker'),
    build_id: z.string(),
    message: z.string(),
  })
  .openapi('Attention', {
    description:
      'Why a pending or running decision is not moving: no worker of the build it runs on (or, before its first step, the current build) has polled lately. The message names the build and what to run. Absent when all is well.',
  });

export const DecisionViewSchema = DecisionRecordSchema.omit({ seq: true })
  .extend({
    attention: AttentionSchema.optional(),
    stale: z
      .literal(true)
      .optional()
      .describe(
        "Present (true) only when Temporal, which confirms a quiet decision's state, did not answer " +
          'in time: this is the last state the projection holds, which may be behind',
      ),
  })
  .openapi('Decision');
type DecisionView = z.infer<typeof DecisionViewSchema>;

// A clone has .openapi(), which a schema made before @hono/zod-openapi extended zod lacks.
export const ProblemSchema = ProblemDetailsSchema.clone().openapi('Problem');

const problemOf = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: ProblemSchema } },
});

const COMMON = {
  401: problemOf('No valid API key'),
  403: problemOf('The API key lacks the scope'),
  429: problemOf('Rate limited; see Retry-After'),
};
const BODY_PROBLEMS = {
  400: problemOf(
    "Invalid JSON, a field that is missing, empty or too long, or one the body must not have: the problem's errors name each",
  ),
  413: problemOf('Body larger than the limit'),
  415: problemOf('Body is not JSON'),
};
const NOT_FOUND = { 404: problemOf('No decision has this id') };
const OUTAGE = {
  503: problemOf(
    'Temporal or Redis does not answer just now; nothing was lost: send the request again after Retry-After seconds',
  ),
};

const json = <T extends z.ZodType>(schema: T) => ({ content: { 'application/json': { schema } } });
const jsonBody = <T extends z.ZodType>(schema: T) => ({
  body: { required: true, ...json(schema) },
});

/** A duration as `wait` and `timeout` take it: a number and its unit, which may not be left out. */
const DURATION = /^\d+(?:\.\d+)?(?:ms|s|m|h)$/;

function durationParam(maxSeconds: number) {
  const description = `A number and its unit (ms, s, m or h), at most ${maxSeconds}s (MAX_WAIT_SECONDS): 500ms, 30s, 2m`;
  return z
    .string()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined) return undefined;
      const ms = DURATION.test(value) ? parseDuration(value) : null;
      if (ms === null || ms > maxSeconds * 1000) {
        const bare = /^\d+(?:\.\d+)?$/.test(value.trim());
        ctx.addIssue({
          code: 'custom',
          message: bare
            ? `must name its unit (${value}s for seconds, ${value}ms for milliseconds), at most ${maxSeconds}s`
            : `must be a duration such as 30s, 2m or 500ms, at most ${maxSeconds}s`,
        });
        return z.NEVER;
      }
      return ms;
    })
    .openapi({ type: 'string', pattern: DURATION.source, example: '30s', description });
}

// A projection cursor is [creation ms, id]; a visibility cursor ['v', its page token, a check].
// Temporal's SQL visibility answers a garbled token with an error it calls transient (retried,
// then a 503): the check finds a garbled cursor before Temporal is asked.
const tokenCheck = (token: string) =>
  createHash('sha256').update(token).digest('base64url').slice(0, 16);

const encodeCursor = (c: ListPosition) =>
  Buffer.from(
    JSON.stringify(
      'visibility' in c ? ['v', c.visibility, tokenCheck(c.visibility)] : [c.score, c.id],
    ),
  ).toString('base64url');

function decodeCursor(text: string): ListPosition | null {
  try {
    const value = JSON.parse(Buffer.from(text, 'base64url').toString()) as unknown;
    if (Array.isArray(value) && typeof value[0] === 'number' && typeof value[1] === 'string') {
      return { score: value[0], id: value[1] };
    }
    if (
      Array.isArray(value) &&
      value[0] === 'v' &&
      typeof value[1] === 'string' &&
      value[2] === tokenCheck(value[1])
    ) {
      return { visibility: value[1] };
    }
  } catch {
    // fall through: not a cursor this API issued
  }
  return null;
}

function view(
  record: DecisionRecord & { stale?: true },
  attention?: Attention | null,
): DecisionView {
  const { seq: _seq, ...rest } = record;
  return attention ? { ...rest, attention } : rest;
}

// The projection keeps a finished record frozen and hands out the same object until it changes:
// its document is serialized once, not at every poll, and kept as UTF-8 bytes: a string body is
// joined to the headers and encoded again for each response.
const documents = new WeakMap<DecisionRecord, Uint8Array<ArrayBuffer>>();

function documentOf(record: DecisionRecord): Uint8Array<ArrayBuffer> | null {
  if (!Object.isFrozen(record)) return null;
  let bytes = documents.get(record);
  if (bytes === undefined) {
    bytes = Buffer.from(JSON.stringify(view(record)));
    documents.set(record, bytes);
  }
  return bytes;
}

const idempotencyKeyOf = (c: Context<ApiEnv>) => {
  const key = c.req.header('Idempotency-Key');
  if (key !== undefined && !/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new InvalidRequest('Idempotency-Key must be 1 to 255 visible ASCII characters');
  }
  return key;
};

/** Adds the decision routes: the seed's start/status pair and the resource-style API. */
export function registerDecisionRoutes(
  app: OpenAPIHono<ApiEnv>,
  deps: {
    decisions: Decisions;
    maxQueryChars: number;
    maxWaitSeconds: number;
    /** The server's budget per decision: a request may ask for less, never more. */
    maxBudget: DecisionBudget;
    /** Says in a status document when no worker runs the decision's build. */
    workers?: Pick<BuildWatch, 'attention'> | null;
  },
): void {
  const { decisions } = deps;
  /**
   * The warning a decision still going carries when its build has no worker. Not looked for in a
   * stale record: Temporal did not answer the read, and would not answer this within its deadline.
   */
  const attentionOf = (record: DecisionRecord & { stale?: true }) =>
    isTerminal(record.status) || record.stale || !deps.workers
      ? null
      : deps.workers.attention(record.process_id);
  /** The decision a request names, and who asks about it. */
  const target = (c: Context<ApiEnv>, id: string) => ({ id, caller: callerOf(c) });
  const read = requireScope('decisions:read');
  const write = requireScope('decisions:write');
  const security = [{ bearer: [] }];

  const text = (field: string, max: number) =>
    z
      .string({ error: (i) => (i.input === undefined ? 'is required' : 'must be a string') })
      .trim()
      .min(1, 'must not be empty')
      .max(max, `must be at most ${max} characters`)
      .describe(field);
  const limit = (min: number, max: number, setting: string, description: string) =>
    z
      .number({ error: 'must be a number' })
      .int('must be a whole number')
      .min(min, `must be at least ${min}`)
      .max(max, `must be at most ${max}, this server's maximum (${setting})`)
      .optional()
      .describe(description);
  const question = text('The decision question', deps.maxQueryChars).openapi({
    example: 'Should we move billing to a managed Postgres?',
  });
  const Budget = z
    .object({
      max_model_calls: limit(
        1,
        deps.maxBudget.max_model_calls,
        'DECISION_MAX_MODEL_CALLS',
        'Model calls the decision may make, across retries, repair rounds and the fan-out',
      ),
      max_tokens: limit(
        MIN_TOKEN_BUDGET,
        deps.maxBudget.max_tokens,
        'DECISION_MAX_TOKENS',
        `Input and output tokens the decision may spend; at least ${MIN_TOKEN_BUDGET}, the most one call may reserve`,
      ),
    })
    .strict()
    .optional()
    .describe('Spend less than the server allows; a call that would pass it is not made');
  const Webhook = z
    .object({
      url: z
        .string({ error: (i) => (i.input === undefined ? 'is required' : 'must be a string') })
        .max(2048, 'must be at most 2048 characters')
        .describe(
          'An http(s) URL on a public address; events arrive there as signed POSTs (Standard Webhooks)',
        )
        .openapi({ example: 'https://example.com/hooks/decisions' }),
      events: z
        .array(z.enum(DECISION_EVENT_TYPES))
        .min(1, 'must name at least one event')
        .optional()
        .describe(`Events to deliver; by default ${DEFAULT_WEBHOOK_EVENTS.join(', ')}`),
    })
    .strict()
    .optional()
    .describe('Call this URL when the decision ends or asks for review');
  const CreateBody = z
    .object({
      query: question,
      context: text('Background the agents should know', 20_000).optional(),
      review: z.boolean().optional().describe('Pause after the draft for a human review'),
      metadata: z
        .record(z.string().max(100), z.string().max(500))
        .refine((m) => Object.keys(m).length <= 20, 'must have at most 20 keys')
        .optional(),
      budget: Budget,
      webhook: Webhook,
    })
    .strict()
    .openapi('CreateDecision');
  const idParam = z.object({
    // No maximum: an id no decision can have is a 404, as for any unknown id (DecisionService).
    process_id: z
      .string()
      .min(1)
      .openapi({ param: { name: 'process_id', in: 'path' } }),
  });
  const IdempotencyHeader = z.object({
    'idempotency-key': z.string().optional().openapi({
      description: 'A retried create with the same key returns the same decision',
    }),
  });

  app.openapi(
    createRoute({
      method: 'post',
      path: '/decisions/start',
      operationId: 'startDecision',
      tags: ['Legacy'],
      deprecated: true,
      summary: 'Start a decision (seed-compatible)',
      description:
        "The seed's create, kept for existing clients: use `POST /decisions` (createDecision), which " +
        'takes the context, review, budget and webhook too and answers with the whole decision.',
      security,
      middleware: [write],
      request: {
        headers: IdempotencyHeader,
        ...jsonBody(z.object({ decision_query: question }).strict()),
      },
      responses: {
        200: {
          description: 'The decision was started',
          ...json(
            z.object({
              process_id: z.string(),
              status: z.literal('started'),
              message: z.string(),
            }),
          ),
        },
        ...BODY_PROBLEMS,
        ...COMMON,
      },
    }),
    async (c) => {
      const { decision_query } = c.req.valid('json');
      const { record } = await decisions.start({
        caller: callerOf(c),
        request: { query: decision_query },
        idempotencyKey: idempotencyKeyOf(c),
      });
      return c.json(
        {
          process_id: record.process_id,
          status: 'started' as const,
          message: `Decision started; follow it at /decisions/status/${record.process_id}`,
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/decisions',
      operationId: 'createDecision',
      tags: ['Decisions'],
      summary: 'Create a decision',
      description:
        'Starts a decision and answers 202 at once, or with `?wait=30s` waits for it to finish (200) ' +
        'and answers 202 with its current state if it has not.',
      security,
      middleware: [write],
      request: {
        headers: IdempotencyHeader,
        query: z.object({ wait: durationParam(deps.maxWaitSeconds) }),
        ...jsonBody(CreateBody),
      },
      responses: {
        200: {
          description: 'Created and finished within `wait`',
          headers: { Location: headerRef('Location') },
          ...json(DecisionViewSchema),
        },
        202: {
          description: 'Accepted; the decision runs in the background',
          headers: { Location: headerRef('Location') },
          ...json(DecisionViewSchema),
        },
        422: problemOf('The Idempotency-Key was used with a different body'),
        503: problemOf(
          "Temporal did not answer in time (the decision may have started: send it again with the same Idempotency-Key), the webhook URL's host could not be resolved just now, or no worker of the current build has polled lately (the detail names the build and what to run); see Retry-After",
        ),
        ...BODY_PROBLEMS,
        ...COMMON,
      },
    }),
    async (c) => {
      const caller = callerOf(c);
      const { record } = await decisions.start({
        caller,
        request: c.req.valid('json'),
        idempotencyKey: idempotencyKeyOf(c),
      });
      c.header('Location', `/decisions/${encodeURIComponent(record.process_id)}`);
      const wait = c.req.valid('query').wait;
      if (wait !== undefined) {
        const waited = await decisions.wait({ caller, record, timeoutMs: wait });
        return c.json(view(waited.record), waited.finished ? 200 : 202);
      }
      return c.json(view(record), 202);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/decisions',
      operationId: 'listDecisions',
      tags: ['Decisions'],
      summary: 'List decisions, newest first',
      security,
      middleware: [read],
      request: {
        query: z.object({
          status: z.enum(DECISION_STATUSES).optional(),
          phase: PhaseNameSchema.optional(),
          created_after: z.iso.datetime({ offset: true }).optional(),
          created_before: z.iso.datetime({ offset: true }).optional(),
          limit: z.coerce.number().int().min(1).max(100).default(20),
          cursor: z.string().max(1000).optional(),
        }),
      },
      responses: {
        200: {
          description: 'A page of decisions',
          ...json(
            z.object({
              items: z.array(
                DecisionViewSchema.pick({
                  process_id: true,
                  query: true,
                  status: true,
                  current_phase: true,
                  created_at: true,
                  updated_at: true,
                  completed_at: true,
                }),
              ),
              next_cursor: z.string().nullable(),
              source: z
                .literal('visibility')
                .optional()
                .describe(
                  "Present when Redis did not answer and the page comes from Temporal's visibility: " +
                    'open decisions first, then by close time (not newest first); a phase filter ' +
                    'matches only decisions that have stopped in that phase; updated_at is the ' +
                    'start or close time; next_cursor goes on through visibility',
                ),
            }),
          ),
        },
        400: problemOf('A filter or the cursor is invalid'),
        ...OUTAGE,
        ...COMMON,
      },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const cursor = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
      if (cursor === null) throw new InvalidRequest('cursor is not one this API issued');
      const page = await decisions.list({
        caller: callerOf(c),
        status: q.status,
        phase: q.phase,
        createdAfter: q.created_after ? Date.parse(q.created_after) : undefined,
        createdBefore: q.created_before ? Date.parse(q.created_before) : undefined,
        limit: q.limit,
        cursor,
      });
      return c.json(
        {
          items: page.items,
          next_cursor: page.next && encodeCursor(page.next),
          ...(page.source === 'visibility' ? { source: 'visibility' as const } : {}),
        },
        200,
      );
    },
  );

  // The seed's status route and the resource route serve the same document.
  const reads: {
    path: string;
    operationId: string;
    summary: string;
    description?: string;
    tags?: Tag[];
    deprecated?: boolean;
  }[] = [
    { path: '/decisions/{process_id}', operationId: 'getDecision', summary: 'Read a decision' },
    {
      path: '/decisions/status/{process_id}',
      operationId: 'getDecisionStatus',
      summary: 'Read a decision (seed-compatible)',
      description:
        "The seed's status route, kept for existing clients: use `GET /decisions/{process_id}` " +
        '(getDecision), which serves the same document.',
      tags: ['Legacy'],
      deprecated: true,
    },
  ];
  for (const { path, ...about } of reads) {
    app.openapi(
      createRoute({
        method: 'get',
        path,
        tags: ['Decisions'],
        ...about,
        security,
        middleware: [read],
        request: { params: idParam },
        responses: {
          200: { description: 'The decision', ...json(DecisionViewSchema) },
          ...NOT_FOUND,
          ...OUTAGE,
          ...COMMON,
        },
      }),
      async (c) => {
        const record = await decisions.get(target(c, c.req.valid('param').process_id));
        const document = documentOf(record);
        if (document === null) return c.json(view(record, await attentionOf(record)), 200);
        // The very bytes c.json would send; typed as the JSON response the route declares.
        return c.body(document, 200, {
          'Content-Type': 'application/json',
        }) as unknown as TypedResponse<DecisionView, 200, 'json'>;
      },
    );
  }

  app.openapi(
    createRoute({
      method: 'get',
      path: '/decisions/{process_id}/result',
      operationId: 'getDecisionResult',
      tags: ['Decisions'],
      summary: "A completed decision's result only",
      security,
      middleware: [read],
      request: { params: idParam },
      responses: {
        200: { description: 'The result', ...json(DecisionRecordSchema.shape.result.unwrap()) },
        409: problemOf('The decision has not completed'),
        ...NOT_FOUND,
        ...OUTAGE,
        ...COMMON,
      },
    }),
    async (c) => {
      return c.json(await decisions.result(target(c, c.req.valid('param').process_id)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/decisions/{process_id}/wait',
      operationId: 'waitForDecision',
      tags: ['Decisions'],
      summary: 'Wait for a decision to finish',
      security,
      middleware: [read],
      request: {
        params: idParam,
        query: z.object({ timeout: durationParam(deps.maxWaitSeconds) }),
      },
      responses: {
        200: { description: 'The finished decision', ...json(DecisionViewSchema) },
        202: { description: 'Still running when the timeout passed', ...json(DecisionViewSchema) },
        400: problemOf('The timeout is invalid'),
        ...NOT_FOUND,
        ...OUTAGE,
        ...COMMON,
      },
    }),
    async (c) => {
      const { record, finished } = await decisions.wait({
        ...target(c, c.req.valid('param').process_id),
        timeoutMs: c.req.valid('query').timeout ?? 30_000,
      });
      return c.json(view(record, await attentionOf(record)), finished ? 200 : 202);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/decisions/{process_id}/cancel',
      operationId: 'cancelDecision',
      tags: ['Decisions'],
      summary: 'Cancel a decision',
      security,
      middleware: [write],
      request: { params: idParam },
      responses: {
        200: { description: 'Cancelled', ...json(DecisionViewSchema) },
        202: {
          description: 'Cancellation requested; not yet recorded',
          ...json(DecisionViewSchema),
        },
        409: problemOf('The decision has already finished'),
        ...NOT_FOUND,
        ...OUTAGE,
        ...COMMON,
      },
    }),
    async (c) => {
      const record = await decisions.cancel(target(c, c.req.valid('param').process_id));
      return c.json(view(record), record.status === 'cancelled' ? 200 : 202);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/decisions/{process_id}/review',
      operationId: 'reviewDecision',
      tags: ['Decisions'],
      summary: 'Review the draft of a decision awaiting review',
      security,
      middleware: [write],
      request: {
        params: idParam,
        ...jsonBody(
          z
            .union([
              z.object({ approve: z.literal(true) }).strict(),
              z.object({ feedback: text('What the revision must address', 10_000) }).strict(),
            ])
            .openapi('Review'),
        ),
      },
      responses: {
        200: {
          description: 'The review was accepted; the decision continues',
          ...json(DecisionViewSchema.shape.review),
        },
        409: problemOf('The decision is not awaiting review, or was reviewed already'),
        ...BODY_PROBLEMS,
        ...NOT_FOUND,
        ...OUTAGE,
        ...COMMON,
      },
    }),
    async (c) => {
      const review = await decisions.review({
        ...target(c, c.req.valid('param').process_id),
        review: c.req.valid('json'),
      });
      return c.json(review, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/decisions/{process_id}/fork',
      operationId: 'forkDecision',
      tags: ['Decisions'],
      summary: 'Fork a decision from a phase',
      description:
        'A new decision that reuses the source outputs for the phases before `from_phase` and runs ' +
        'the rest, linked to its source by `forked_from`.',
      security,
      middleware: [write],
      request: {
        params: idParam,
        ...jsonBody(
          z
            .object({
              from_phase: PhaseNameSchema,
              query: question.optional(),
              context: text('Background the agents should know', 20_000).optional(),
              budget: Budget,
              webhook: Webhook,
            })
            .strict()
            .openapi('Fork'),
        ),
      },
      responses: {
        202: {
          description: 'The fork was started',
          headers: { Location: headerRef('Location') },
          ...json(DecisionViewSchema),
        },
        409: problemOf('The source has no output yet for a phase before from_phase'),
        503: problemOf(
          "Temporal or a worker did not answer in time, the webhook URL's host could not be resolved just now, or no worker of the current build has polled lately (the detail names the build and what to run): send it again after Retry-After seconds",
        ),
        ...BODY_PROBLEMS,
        ...NOT_FOUND,
        ...COMMON,
      },
    }),
    async (c) => {
      const record = await decisions.fork({
        ...target(c, c.req.valid('param').process_id),
        request: c.req.valid('json'),
      });
      c.header('Location', `/decisions/${encodeURIComponent(record.process_id)}`);
      return c.json(view(record), 202);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/decisions/{process_id}/retry',
      operationId: 'retryDecision',
      tags: ['Decisions'],
      summary: 'Retry a decision from a phase (admin)',
      description:
        'Resets the workflow to just before `from_phase` (default: the phase that failed); the ' +
        'phases before it are not run again. The decision keeps its id and runs on.',
      security,
      middleware: [requireScope('decisions:admin')],
      request: {
        params: idParam,
        body: {
          required: false,
          ...json(
            z
              .object({
                from_phase: PhaseNameSchema.optional(),
                on_current_build: z
                  .boolean()
                  .optional()
                  .openapi({
                    description:
                      "Run it on the deployment's current build instead of the one its history was " +
                      'written by (needed when that build has no workers left)',
                  }),
              })
              .strict()
              .openapi('Retry'),
          ),
        },
      },
      responses: {
        202: {
          description: 'The decision runs again from the phase',
          ...json(
            z.object({
              process_id: z.string(),
              from_phase: PhaseNameSchema,
              reset_event_id: z.number(),
              old_run_id: z.string(),
              new_run_id: z.string(),
              build_id: z.string().nullable(),
            }),
          ),
        },
        409: problemOf(
          "Still running, nothing to retry from, or its build's workers are gone (see on_current_build)",
        ),
        ...BODY_PROBLEMS,
        ...NOT_FOUND,
        ...OUTAGE,
        ...COMMON,
      },
    }),
    async (c) => {
      const body = c.req.header('Content-Type') ? c.req.valid('json') : {};
      return c.json(
        await decisions.retry({
          ...target(c, c.req.valid('param').process_id),
          fromPhase: body.from_phase,
          onCurrentBuild: body.on_current_build,
        }),
        202,
      );
    },
  );
}
