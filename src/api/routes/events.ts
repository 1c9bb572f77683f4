import type { ServerResponse } from 'node:http';
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
import { LIVE_EVENT_DATA, LIVE_EVENT_TYPES } from '../../domain/live';
import type { LiveReader } from '../../projection/live-channel';
import type { DecisionProjection, StoredEvent } from '../../projection/redis-projection';
import { LiveTexts } from '../live-texts';
import { InvalidRequest, LimitReached, Unavailable } from '../errors';
import { compareStreamIds, type EventHub } from '../event-hub';
import { isUnreachable } from '../../temporal/deadlines';
import { requireScope } from '../middleware/auth';
import { addressBucket, clientAddress } from '../middleware/client-address';
import type { SlotCounter } from '../stream-slots';
import { ProblemSchema, type ApiEnv, type Decisions } from './decisions';

const problemOf = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: ProblemSchema } },
});

const TERMINAL_EVENTS = new Set(['decision.completed', 'decision.failed', 'decision.cancelled']);

/** How long past its lifetime a stream's connection may take to close before it is ended. */
const LIFETIME_GRACE_MS = 5_000;

/** The id of an end made up from the record when the stream has none stored. */
const MADE_UP_END_ID = 'end';

/** A Redis stream id, as this API sends them: milliseconds and a sequence number. */
const EVENT_ID = /^\d{1,15}-\d{1,10}$/;

export interface EventRouteDeps {
  decisions: Pick<Decisions, 'get' | 'find'>;
  projection: Pick<DecisionProjection, 'readEvents' | 'eventsKey'>;
  /** The decisions' live events (running phases' model output); none without it. */
  live?: Pick<LiveReader, 'key' | 'read'>;
  /** Serves new events to every open stream of the process from one Redis connection. */
  hub: EventHub;
  /** How long a stream waits for an event before a keep-alive comment is sent. */
  blockMs?: number;
  /**
   * Streams one key (principal) may hold open at once; 429 past it. With auth off, where every
   * caller is `anonymous`, each client address (IPv6: its /64) has as many.
   */
  maxStreamsPerKey?: number;
  /** Counts the open streams (StreamSlots: across API processes). */
  slots: SlotCounter;
  /** Take the client's address from X-Forwarded-For (TRUST_PROXY), as the rate limiter does. */
  trustProxy?: boolean;
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
  const maxStreamMs = deps.maxStreamMs ?? 3_600_000;
  const streamsOpen = deps.slots;
  for (const type of DECISION_EVENT_TYPES) {
    // A clone: register() calls .openapi(), which a schema made before @hono/zod-openapi
    // extended zod lacks (the domain's may be).
    app.openAPIRegistry.register(`EventData.${type}`, DECISION_EVENT_DATA[type].clone());
  }
  for (const type of LIVE_EVENT_TYPES) {
    app.openAPIRegistry.register(`EventData.${type}`, LIVE_EVENT_DATA[type].clone());
  }
  app.openAPIRegistry.registerPath({
    method: 'get',
    path: '/decisions/{process_id}/events',
    operationId: 'streamDecisionEvents',
    tags: ['Events'],
    summary: "Follow a decision's events (Server-Sent Events)",
    description:
      `Event types: ${DECISION_EVENT_TYPES.join(', ')}; and, unless deltas=false, the live ` +
      `events ${LIVE_EVENT_TYPES.join(', ')}: the running phase's model output as it is written, ` +
      "interleaved in order (a side channel: never in the decision's history or webhooks; a " +
      'retried attempt begins with phase.attempt; the live events are capped per decision, and ' +
      'the oldest are simply gone). Each event has an id; send the last back as Last-Event-ID ' +
      'to resume without gaps or repeats (or as `last_event_id`, for clients that cannot set ' +
      'headers). The stream ends after the terminal event (decision.completed, decision.failed ' +
      'or decision.cancelled); it is also closed after an hour, to be resumed. The data of an ' +
      'event of type T is the JSON of the schema EventData.T.',
    security: [{ bearer: [] }],
    request: {
      params: z.object({ process_id: z.string() }),
      query: z.object({
        last_event_id: z.string().optional().openapi({
          description: 'The same as the Last-Event-ID header, which wins when both are sent',
        }),
        deltas: z.enum(['true', 'false']).optional().openapi({
          description:
            'false: the durable events only (no phase.attempt or phase.delta), with their ids as they are stored',
        }),
      }),
      headers: z.object({ 'last-event-id': z.string().optional() }),
    },
    responses: {
      200: {
        description: 'The event stream, from the first event or after Last-Event-ID',
        headers: {
          'Cache-Control': { description: '`no-cache`', schema: { type: 'string' } },
        },
        content: { 'text/event-stream': { schema: z.string() } },
      },
      204: {
        description:
          'Last-Event-ID is at or past the end of the decision: there is nothing more to send, and an EventSource stops reconnecting',
      },
      400: problemOf('Last-Event-ID is not the id of an event this API sent, or deltas is invalid'),
      401: problemOf('No valid API key'),
      403: problemOf('The API key lacks the decisions:read scope'),
      404: problemOf('No decision has this id'),
      429: problemOf(
        'Rate limited, or this key (without auth: this address) holds as many event streams as it may; see Retry-After',
      ),
      503: problemOf('Redis, which holds the events, does not answer just now; see Retry-After'),
    },
  });

  app.get('/decisions/:process_id/events', requireScope('decisions:read'), async (c) => {
    const id = c.req.param('process_id');
    const deltasParam = c.req.query('deltas');
    if (deltasParam !== undefined && deltasParam !== 'true' && deltasParam !== 'false') {
      throw new InvalidRequest('deltas must be true or false');
    }
    const withLive = deltasParam !== 'false' && deps.live !== undefined;
    const resumeFrom = c.req.header('Last-Event-ID') ?? c.req.query('last_event_id') ?? null;
    const cursor = resumeFrom === null ? null : parseCursor(resumeFrom);
    if (resumeFrom !== null && !cursor) {
      throw new InvalidRequest('Last-Event-ID must be the id of an event this API sent');
    }
    const caller = callerOf(c);
    const record = await deps.decisions.get({ id, caller });
    if (cursor?.ended) {
      if (isTerminal(record.status)) return c.body(null, 204);
      throw new InvalidRequest('Last-Event-ID must be the id of an event this API sent');
    }
    let story: StoredEvent[];
    let liveStory: StoredEvent[] = [];
    try {
      story = await deps.projection.readEvents(id, null);
      // Live events are a view, never a reason to fail: without them the stream goes on.
      if (withLive) liveStory = await deps.live!.read(id, null).catch(() => []);
    } catch {
      throw new Unavailable('Event streams are unavailable for a moment; retry shortly');
    }
    const end = story.find((e) => TERMINAL_EVENTS.has(e.type));
    if (cursor?.durable && end && compareStreamIds(end.id, cursor.durable) <= 0) {
      // The client has seen the end already: 204 tells EventSource not to reconnect.
      return c.body(null, 204);
    }
    // With auth off every caller is `anonymous`: one client must not hold everyone's streams.
    const anonymous = caller.principal === 'anonymous';
    const slotKey = anonymous
      ? `anonymous@${addressBucket(clientAddress(c, deps.trustProxy))}`
      : caller.principal;
    const full = () =>
      new LimitReached(
        `This ${anonymous ? 'address' : 'key'} has ${maxStreams} event streams open, the most it may; close one first`,
      );
    // HEAD: what GET would answer, headers only, and no slot taken. Hono runs a HEAD as a GET and
    // drops the body unread, so a stream opened for it would wait on its first write for good.
    if (c.req.method === 'HEAD') {
      if (!(await streamsOpen.hasRoom(slotKey, maxStreams))) throw full();
      return c.body(null, 200, {
        'Content-Type': 'text/event-stream',
        'Cache-Control': 'no-cache',
      });
    }
    const slot = await streamsOpen.tryTake(slotKey, maxStreams);
    if (!slot) throw full();
    const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
    // A client gone while the slot was being taken has closed already: no close event to come,
    // and no one to stream to.
    if (outgoing?.destroyed) {
      slot();
      return c.body(null, 204);
    }
    const release = () => {
      slot();
      clearTimeout(bound);
      outgoing?.off('close', release);
    };
    // The slot is the connection's: it is free once the response closes, whether it ended, the
    // client went away or the stream was never read. A client that keeps its socket open but
    // stops reading blocks the writes; past the stream's lifetime (and a grace for its last
    // wait), the connection is ended for it.
    outgoing?.once('close', release);
    const bound = setTimeout(
      () => {
        release();
        outgoing?.destroy();
      },
      maxStreamMs + blockMs + LIFETIME_GRACE_MS,
    );
    bound.unref();
    return streamSSE(c, async (stream) => {
      const durableKey = deps.projection.eventsKey(id);
      const liveKey = withLive ? deps.live!.key(id) : null;
      const subscription = deps.hub.subscribe([
        { key: durableKey, after: story.at(-1)?.id ?? null },
        ...(liveKey ? [{ key: liveKey, after: liveStory.at(-1)?.id ?? cursor?.live ?? null }] : []),
      ]);
      // A comment first, so that the client has the response (and EventSource its open event)
      // at once, not with the first event or keep-alive.
      stream.onAbort(() => subscription.close());
      await stream.write(': stream open\n\n');
      const deadline = Date.now() + maxStreamMs;
      // Where the client is in each stream: the id of each event sent says both.
      let lastDurable = cursor?.durable ?? null;
      let lastLive = cursor?.live ?? null;
      const idOf = (): string =>
        withLive ? `${lastDurable ?? '0-0'}_${lastLive ?? '0-0'}` : (lastDurable ?? '0-0');
      const texts = new LiveTexts();
      const send = async (events: (StoredEvent & { key?: string })[]): Promise<boolean> => {
        for (const event of events) {
          if (event.key === liveKey && event.key !== undefined) {
            lastLive = event.id;
            await stream.writeSSE({
              id: idOf(),
              event: event.type,
              data: JSON.stringify(texts.add(event)),
            });
            continue;
          }
          lastDurable = event.id;
          if (event.type === 'phase.completed' || event.type === 'phase.failed') {
            texts.forget((event.data as { phase?: string }).phase);
          }
          await stream.writeSSE({
            id: idOf(),
            event: event.type,
            data: JSON.stringify(event.data),
          });
          if (TERMINAL_EVENTS.has(event.type)) return true;
        }
        return false;
      };
      try {
        // What the client saw of the live stream still tells what a call's text is so far.
        for (const event of liveStory) {
          if (lastLive !== null && compareStreamIds(event.id, lastLive) <= 0) texts.add(event);
        }
        const replay = merge(
          story
            .filter((e) => lastDurable === null || compareStreamIds(e.id, lastDurable) > 0)
            .map((e) => ({ ...e, key: durableKey })),
          liveStory
            .filter((e) => lastLive === null || compareStreamIds(e.id, lastLive) > 0)
            .map((e) => ({ ...e, key: liveKey! })),
        );
        if (await send(replay)) return;
        while (!stream.aborted && Date.now() < deadline) {
          const events = await subscription.next(blockMs);
          if (await send(events)) return;
          if (events.length > 0) continue;
          // Nothing new: the stream may have been lost with the projection while the decision
          // finished; then say how it ended from the record rather than wait forever.
          // A check that cannot be made now (Temporal and Redis both away) waits for the next.
          const now = await deps.decisions.find({ id, caller }).catch((err: unknown) => {
            if (err instanceof Unavailable || isUnreachable(err)) return null;
            throw err;
          });
          if (now && isTerminal(now.status)) {
            const rest = await deps.projection.readEvents(id, lastDurable);
            if (!(await send(rest.map((e) => ({ ...e, key: durableKey }))))) {
              // Its id is none of the stream's: a reconnect with it is told 204, there is no more.
              await stream.writeSSE({ id: MADE_UP_END_ID, ...synthesizedEnd(now) });
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

/**
 * A client's place in the stream: a durable event's id (as a stream without live events sends
 * them), `durable_live` (both streams' positions, as a stream with live events sends them), or
 * past a made-up end.
 */
function parseCursor(
  text: string,
): { durable: string | null; live: string | null; ended?: true } | null {
  if (text === MADE_UP_END_ID) return { durable: null, live: null, ended: true };
  if (EVENT_ID.test(text)) return { durable: text, live: text };
  const [durable, live, ...rest] = text.split('_');
  if (rest.length > 0 || !durable || !live || !EVENT_ID.test(durable) || !EVENT_ID.test(live)) {
    return null;
  }
  return { durable: durable === '0-0' ? null : durable, live: live === '0-0' ? null : live };
}

/** Two streams' events in one order: by id, the durable first on a tie. */
function merge<E extends StoredEvent>(durable: E[], live: E[]): E[] {
  const out: E[] = [];
  let i = 0;
  let j = 0;
  while (i < durable.length || j < live.length) {
    if (
      j >= live.length ||
      (i < durable.length && compareStreamIds(durable[i]!.id, live[j]!.id) <= 0)
    ) {
      out.push(durable[i++]!);
    } else {
      out.push(live[j++]!);
    }
  }
  return out;
}

function synthesizedEnd(record: DecisionRecord) {
  const end = terminalEvent(record);
  return { event: end.type, data: JSON.stringify(end.data) };
}
