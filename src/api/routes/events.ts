import { callerOf } from '../access';
import { z, type OpenAPIHono } from '@hono/zod-openapi';
import { streamSSE } from 'hono/streaming';
import {
  DECISION_EVENT_TYPES,
  isTerminal,
  terminalEvent,
  type DecisionRecord,
} from '../../domain/decision';
import { DECISION_EVENT_DATA } from '../../domain/events';
import type { DecisionProjection, StoredEvent } from '../../projection/redis-projection';
import { InvalidRequest, LimitReached, Unavailable } from '../errors';
import { compareStreamIds, type EventHub } from '../event-hub';
import { requireScope } from '../middleware/auth';
import { ProblemSchema, type ApiEnv, type Decisions } from './decisions';

const TERMINAL_EVENTS = new Set(['decision.completed', 'decision.failed', 'decision.cancelled']);

/** A Redis stream id, as this API sends them: milliseconds and a sequence number. */
const EVENT_ID = /^\d{1,15}-\d{1,10}$/;

export interface EventRouteDeps {
  decisions: Pick<Decisions, 'get' | 'find'>;
  projection: Pick<DecisionProjection, 'readEvents'>;
  /** Serves new events to every open stream of the process from one Redis connection. */
  hub: EventHub;
  /** How long a stream waits for an event before a keep-alive comment is sent. */
  blockMs?: number;
  /** Streams one key (principal) may hold open at once in this process; 429 past it. */
  maxStreamsPerKey?: number;
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
  const maxStreams = deps.maxStreamsPerKey ?? 20;
  const streamsOpen = new Map<string, number>();
  for (const type of DECISION_EVENT_TYPES) {
    // A clone: register() calls .openapi(), which a schema made before @hono/zod-openapi
    // extended zod lacks (the domain's may be).
    app.openAPIRegistry.register(`EventData.${type}`, DECISION_EVENT_DATA[type].clone());
  }
  app.openAPIRegistry.registerPath({
    method: 'get',
    path: '/decisions/{process_id}/events',
    summary: "Follow a decision's events (Server-Sent Events)",
    description:
      `Event types: ${DECISION_EVENT_TYPES.join(', ')}. Each has an id; send it back as ` +
      'Last-Event-ID to resume without gaps or repeats. The data of an event of type T is the ' +
      'JSON of the schema EventData.T (see components).',
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
    const resumeFrom = c.req.header('Last-Event-ID') ?? c.req.query('last_event_id') ?? null;
    if (resumeFrom !== null && !EVENT_ID.test(resumeFrom)) {
      throw new InvalidRequest('Last-Event-ID must be the id of an event this API sent');
    }
    const caller = callerOf(c);
    await deps.decisions.get({ id, caller });
    // Checked and counted with no await between, so that parallel requests cannot all pass.
    const open = streamsOpen.get(caller.principal) ?? 0;
    if (open >= maxStreams) {
      throw new LimitReached(
        `This key has ${open} event streams open, the most it may; close one first`,
      );
    }
    streamsOpen.set(caller.principal, open + 1);
    const release = () => {
      const left = (streamsOpen.get(caller.principal) ?? 1) - 1;
      if (left > 0) streamsOpen.set(caller.principal, left);
      else streamsOpen.delete(caller.principal);
    };
    let story: StoredEvent[];
    try {
      story = await deps.projection.readEvents(id, null);
    } catch {
      release();
      throw new Unavailable('Event streams are unavailable for a moment; retry shortly');
    }
    const end = story.find((e) => TERMINAL_EVENTS.has(e.type));
    if (resumeFrom !== null && end && compareStreamIds(end.id, resumeFrom) <= 0) {
      release();
      // The client has seen the end already: 204 tells EventSource not to reconnect.
      return c.body(null, 204);
    }
    return streamSSE(c, async (stream) => {
      const subscription = deps.hub.subscribe(id, story.at(-1)?.id ?? null);
      // A comment first, so that the client has the response (and EventSource its open event)
      // at once, not with the first event or keep-alive.
      await stream.write(': stream open\n\n');
      stream.onAbort(() => subscription.close());
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
          resumeFrom === null ? story : story.filter((e) => compareStreamIds(e.id, resumeFrom) > 0);
        if (await send(replay)) return;
        while (!stream.aborted && Date.now() < deadline) {
          const events = await subscription.next(blockMs);
          if (await send(events)) return;
          if (events.length > 0) continue;
          // Nothing new: the stream may have been lost with the projection while the decision
          // finished; then say how it ended from the record rather than wait forever.
          const record = await deps.decisions.find({ id, caller });
          if (record && isTerminal(record.status)) {
            if (!(await send(await deps.projection.readEvents(id, last)))) {
              await stream.writeSSE({ id: last ?? '0-0', ...synthesizedEnd(record) });
            }
            return;
          }
          await stream.write(': keep-alive\n\n');
        }
      } finally {
        subscription.close();
        release();
      }
    });
  });
}

function synthesizedEnd(record: DecisionRecord) {
  const end = terminalEvent(record);
  return { event: end.type, data: JSON.stringify(end.data) };
}
