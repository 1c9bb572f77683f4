import { EventSourceParserStream } from 'eventsource-parser/stream';
import {
  DecisionApiError,
  DecisionProtocolError,
  DecisionStreamLostError,
  apiError,
} from './errors';
import type { DecisionEvent, DecisionEventType } from './types';

/**
 * What each event type is: a durable step, an end (the stream ends after it), or a live event.
 * The compiler holds it to the generated types: an event type the document adds or drops fails
 * the build until it is listed here.
 */
const EVENT_KINDS = {
  'decision.started': 'durable',
  'phase.started': 'durable',
  'phase.completed': 'durable',
  'phase.failed': 'durable',
  'review.requested': 'durable',
  'review.received': 'durable',
  'review.timed_out': 'durable',
  'decision.completed': 'end',
  'decision.failed': 'end',
  'decision.cancelled': 'end',
  'phase.attempt': 'live',
  'phase.delta': 'live',
} as const satisfies Record<DecisionEventType, 'durable' | 'end' | 'live'>;

/** A stream open this long was healthy: its end (the API rotates long streams) is no failure. */
const HEALTHY_STREAM_MS = 60_000;
const FIRST_DELAY_MS = 250;

export interface EventsOptions {
  /** Start after this event (an `id` the stream sent before); by default from the beginning. */
  lastEventId?: string | undefined;
  /** false: the durable events only, without the live model output (phase.attempt, phase.delta). */
  deltas?: boolean | undefined;
  /** Aborting stops following; the decision itself runs on. */
  signal?: AbortSignal | undefined;
  /**
   * Reconnects in a row after a lost connection before giving up (default 5), waiting 250 ms,
   * then twice as long each time (longer when the API says so with Retry-After). An event
   * received starts the count again.
   */
  retries?: number;
  /** Told before each reconnect, with why the connection was lost. */
  onReconnect?: (reconnect: Reconnect) => void;
  /** Waits between reconnects (default: a timer that the signal cuts short). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface Reconnect {
  /** The reconnect's number in the current row, from 1. */
  attempt: number;
  /** How many in a row the client makes before it gives up. */
  retries: number;
  delayMs: number;
  /** Why the connection was lost, in words: `HTTP 503`, `the server closed the stream`, … */
  reason: string;
  /** The error that lost it, if one did. */
  error?: unknown;
}

/** Sends GET /decisions/{id}/events, resuming after `lastEventId` when given. */
export type OpenStream = (lastEventId: string | undefined) => Promise<{
  data?: ReadableStream<Uint8Array> | null;
  error?: unknown;
  response: Response;
}>;

function isKnown(type: string | undefined): type is DecisionEventType {
  return type !== undefined && Object.hasOwn(EVENT_KINDS, type);
}

/** An error in words; fetch says "fetch failed" and keeps the useful part in its cause. */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause: unknown = err.cause;
  return err instanceof TypeError && cause instanceof Error
    ? `${err.message} (${cause.message})`
    : err.message;
}

function sleepFor(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', stop);
      resolve();
    }, ms);
    const stop = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener('abort', stop, { once: true });
  });
}

/**
 * Follows a decision's event stream to its end (decision.completed, decision.failed or
 * decision.cancelled). A dropped connection is resumed with Last-Event-ID; ids already seen are
 * skipped too, in case a server replays more than asked, so no event comes twice. Event types
 * this client does not know (from a newer API) are passed over.
 */
export async function* followEvents(
  open: OpenStream,
  options: EventsOptions = {},
): AsyncGenerator<DecisionEvent, void, undefined> {
  const { signal } = options;
  const retries = options.retries ?? 5;
  const sleep = options.sleep ?? sleepFor;
  const seen = new Set<string>();
  let lastId = options.lastEventId;
  let failures = 0;
  for (;;) {
    let reason: string;
    let error: unknown;
    let waitMs = 0;
    let opened: number | undefined;
    try {
      const { data, error: body, response } = await open(lastId);
      // The API's answer to a client that has seen the end already: there is no more.
      if (response.status === 204) return;
      if (!response.ok) {
        const failure = apiError(response, body);
        if (response.status < 500 && response.status !== 429) throw failure;
        reason = `HTTP ${response.status}`;
        error = failure;
        waitMs = (failure.retryAfter ?? 0) * 1000;
      } else if (!data) {
        reason = 'empty response';
      } else {
        opened = Date.now();
        const messages = data
          .pipeThrough(new TextDecoderStream())
          .pipeThrough(new EventSourceParserStream());
        for await (const message of messages) {
          const type = message.event;
          // An end is never skipped: it cannot have been seen (following stops there). An end the
          // API makes up from the record may carry the id of the event before it.
          const end = isKnown(type) && EVENT_KINDS[type] === 'end';
          if (message.id) {
            if (seen.has(message.id) && !end) continue;
            seen.add(message.id);
            lastId = message.id;
          }
          failures = 0;
          if (!isKnown(type)) continue;
          let json: unknown;
          try {
            json = JSON.parse(message.data) as unknown;
          } catch {
            // Live output is a courtesy that may miss pieces anyway; a durable event may not.
            if (EVENT_KINDS[type] === 'live') continue;
            throw new DecisionProtocolError(
              `The server sent a ${type} event whose data is not JSON`,
            );
          }
          yield { type, id: lastId ?? '', data: json } as DecisionEvent;
          if (end) return;
        }
        reason = 'the server closed the stream';
      }
    } catch (err) {
      if (err instanceof DecisionApiError || err instanceof DecisionProtocolError) throw err;
      if (signal?.aborted) throw err;
      reason = describe(err);
      error = err;
    }
    if (opened !== undefined && Date.now() - opened >= HEALTHY_STREAM_MS) failures = 0;
    failures += 1;
    if (failures > retries) {
      throw new DecisionStreamLostError(
        `lost the event stream (${reason}); gave up after ${retries} retries`,
        { cause: error },
      );
    }
    const delayMs = Math.max(FIRST_DELAY_MS * 2 ** (failures - 1), waitMs);
    options.onReconnect?.({ attempt: failures, retries, delayMs, reason, error });
    await sleep(delayMs, signal);
  }
}
