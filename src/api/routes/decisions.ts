import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { DecisionRecord } from '../../domain/decision';
import { DecisionRecordSchema } from '../../domain/schemas';
import type { DecisionService } from '../decision-service';
import { ProblemError } from '../errors';

export type Decisions = Pick<DecisionService, 'start' | 'get'>;

const DecisionViewSchema = DecisionRecordSchema.omit({ seq: true }).openapi('Decision');
type DecisionView = z.infer<typeof DecisionViewSchema>;

const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string().optional(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .openapi('Problem');

const problemResponses = {
  400: {
    description: 'Invalid JSON, or a question that is missing, empty or too long',
    content: { 'application/problem+json': { schema: ProblemSchema } },
  },
  413: {
    description: 'Body larger than the limit',
    content: { 'application/problem+json': { schema: ProblemSchema } },
  },
  415: {
    description: 'Body is not JSON',
    content: { 'application/problem+json': { schema: ProblemSchema } },
  },
};

const notFound = {
  404: {
    description: 'No decision has this id',
    content: { 'application/problem+json': { schema: ProblemSchema } },
  },
};

function view(record: DecisionRecord): DecisionView {
  const { seq: _seq, ...rest } = record;
  return rest;
}

/** Adds the decision routes: the seed's start/status pair and their resource-style twins. */
export function registerDecisionRoutes(
  app: OpenAPIHono,
  deps: { decisions: Decisions; maxQueryChars: number },
): void {
  const question = z
    .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') })
    .trim()
    .min(1, 'must not be empty')
    .max(deps.maxQueryChars, `must be at most ${deps.maxQueryChars} characters`)
    .openapi({ example: 'Should we move billing to a managed Postgres?' });

  const idParam = z.object({
    process_id: z
      .string()
      .min(1)
      .max(200)
      .openapi({ param: { name: 'process_id', in: 'path' } }),
  });

  const get = async (id: string): Promise<DecisionView> => {
    const record = await deps.decisions.get(id);
    if (!record) throw new ProblemError(404, `No decision with id ${id}`);
    return view(record);
  };

  app.openapi(
    createRoute({
      method: 'post',
      path: '/decisions/start',
      summary: 'Start a decision (seed-compatible)',
      request: {
        body: {
          required: true,
          content: {
            'application/json': { schema: z.object({ decision_query: question }) },
          },
        },
      },
      responses: {
        200: {
          description: 'The decision was started',
          content: {
            'application/json': {
              schema: z.object({
                process_id: z.string(),
                status: z.literal('started'),
                message: z.string(),
              }),
            },
          },
        },
        ...problemResponses,
      },
    }),
    async (c) => {
      const { decision_query } = c.req.valid('json');
      const record = await deps.decisions.start(decision_query);
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
      method: 'get',
      path: '/decisions/status/{process_id}',
      summary: 'Read a decision (seed-compatible)',
      request: { params: idParam },
      responses: {
        200: {
          description: 'The decision',
          content: { 'application/json': { schema: DecisionViewSchema } },
        },
        ...notFound,
      },
    }),
    async (c) => c.json(await get(c.req.valid('param').process_id), 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/decisions',
      summary: 'Create a decision',
      request: {
        body: {
          required: true,
          content: { 'application/json': { schema: z.object({ query: question }) } },
        },
      },
      responses: {
        202: {
          description: 'Accepted; the decision runs in the background',
          headers: z.object({ Location: z.string() }),
          content: { 'application/json': { schema: DecisionViewSchema } },
        },
        ...problemResponses,
      },
    }),
    async (c) => {
      const record = await deps.decisions.start(c.req.valid('json').query);
      c.header('Location', `/decisions/${encodeURIComponent(record.process_id)}`);
      return c.json(view(record), 202);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/decisions/{process_id}',
      summary: 'Read a decision',
      request: { params: idParam },
      responses: {
        200: {
          description: 'The decision',
          content: { 'application/json': { schema: DecisionViewSchema } },
        },
        ...notFound,
      },
    }),
    async (c) => c.json(await get(c.req.valid('param').process_id), 200),
  );
}
