import { callerOf, visibleDecision } from '../access';
import { z, type OpenAPIHono } from '@hono/zod-openapi';
import { streamSSE } from 'hono/streaming';
import type { Redis } from 'ioredis';
import { isTerminal, terminalEvent, type DecisionRecord } from '../../domain/decision';
import type { DecisionProjection, StoredEvent } from '../../projection/redis-projection';
import { ProblemError } from '../errors';
import { requireScope } from '../middleware/auth';
import { ProblemSchema, type ApiEnv, type Decisions } from './decisions';

const TERMINAL_EVENTS = new Set(['decision.completed', 'decision.failed', 'decision.cancelled']);

export interface EventRouteDeps {
  decisions: Pick<Decisions, 'getOrThrow' | 'get'>;
  projection: Pick<DecisionProjection, 'readEvents' | 'waitForEvents'>;
  /** Blocking reads get a connection of their own, duplicated from this one. */
  redis: Redis;
  /** How long one blocking read waits before a keep-alive comment is sent. */
  blockMs?: number;
  /** How long a stream stays open at most; the client reconnects with Last-Event-ID. */
  maxStreamMs?: number;
}

/**
 * GET /decisions/{id}/events: Server-Sent Events of every state change, from the decision's Redis
 * stream. `Last-Event-ID` resumes after the last event seen; the stream ends after the terminal
 * event, so a client that connects late still gets the whole story.
 */
export function registerEventRoutes(app: OpenAPIHono<ApiEnv>, deps: EventRouteDeps): void {
  const blockMs = deps.blockMs ?? 15_000;
  app.openAPIRegistry.registerPath({
    method: 'get',
    path: '/decisions/{process_id}/events',
    summary: "Follow a decision's events (Server-Sent Events)",
    description:
      'Event types: decision.started, phase.started, phase.completed (with the output), ' +
      'phase.failed, review.requested, review.received, review.timed_out, decision.completed, ' +
      'decision.failed, decision.cancelled. Each has an id; send it back as Last-Event-ID to ' +
      'resume without gaps or repeats.',
    security: [{ bearer: [] }],
    request: {
      params: z.object({ process_id: z.string() }),
      headers: z.object({ 'last-event-id': z.string().optional() }),
    },
    responses: {
      200: {
        description: 'An event stream',
        content: { 'text/event-stream': { schema: z.string() } },
      },
      404: {
        description: 'No decision has this id',
        content: { 'application/problem+json': { schema: ProblemSchema } },
      },
    },
  });

  app.get('/decisions/:process_id/events', requireScope('decisions:read'), async (c) => {
    const id = c.req.param('process_id');
    await visibleDecision(deps.decisions, callerOf(c), id);
    const resumeFrom = c.req.header('Last-Event-ID') ?? c.req.query('last_event_id') ?? null;
    if (resumeFrom !== null && !/^\d+-\d+$/.test(resumeFrom)) {
      throw new ProblemError(400, 'Last-Event-ID must be the id of an event this API sent');
    }
    const story = await deps.projection.readEvents(id, null);
    const end = story.find((e) => TERMINAL_EVENTS.has(e.type));
    if (resumeFrom !== null && end && compareIds(end.id, resumeFrom) <= 0) {
      // The client has seen the end already: 204 tells EventSource not to reconnect.
      return c.body(null, 204);
    }
    return streamSSE(c, async (stream) => {
      const blocking = deps.redis.duplicate();
      blocking.on('error', () => undefined);
      stream.onAbort(() => blocking.disconnect());
      const deadline = Date.now() + (deps.maxStreamMs ?? 3_600_000);
      let last = resumeFrom;
      const send = async (events: StoredEvent[]): Promise<boolean> => {
        for (const event of events) {
          await stream.writeSSE({
            id: event.id,
            event: event.type,
            data: JSON.stringify(event.data),
          });
          last = event.id;
          if (TERMINAL_EVENTS.has(event.type)) return true;
        }
        return false;
      };
      try {
        const replay =
          resumeFrom === null ? story : story.filter((e) => compareIds(e.id, resumeFrom) > 0);
        if (await send(replay)) return;
        while (!stream.aborted && Date.now() < deadline) {
          const events = await deps.projection.waitForEvents(blocking, id, last, blockMs);
          if (await send(events)) return;
          if (events.length > 0) continue;
          // Nothing new: the stream may have been lost with the projection while the decision
          // finished; then say how it ended from the record rather than wait forever.
          const record = await deps.decisions.get(id);
          if (record && isTerminal(record.status)) {
            if (!(await send(await deps.projection.readEvents(id, last)))) {
              await stream.writeSSE({ id: last ?? '0-0', ...synthesizedEnd(record) });
            }
            return;
          }
          await stream.write(': keep-alive\n\n');
        }
      } finally {
        blocking.disconnect();
      }
    });
  });
}

/** Orders Redis stream ids ("ms-seq"). */
function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am - bm || as - bs;
}

function synthesizedEnd(record: DecisionRecord) {
  const end = terminalEvent(record);
  return { event: end.type, data: JSON.stringify(end.data) };
}
