import { z } from 'zod';
import { PhaseNameSchema } from './schemas';

// The live events: what a running phase's model is writing, as it writes it. They travel on a
// side channel (a capped Redis stream per decision, written by the activity) and never enter
// Temporal history, the durable event log or a webhook: a decision's story is the same with them
// or without them. The event stream interleaves them with the durable events unless asked not to
// (`?deltas=false`).

export const LIVE_EVENT_TYPES = ['phase.attempt', 'phase.delta'] as const;
export type LiveEventType = (typeof LIVE_EVENT_TYPES)[number];

const liveStep = {
  phase: PhaseNameSchema,
  /** The phase's place in the run, from 0. */
  index: z.number().int().min(0),
  /** The activity's attempt, from 1. */
  attempt: z.number().int().min(1),
  /** For retrieval, which answers each information need in its own activity: the need's id. */
  need: z.string().nullable(),
};

/** The schema of each live event's data. */
export const LIVE_EVENT_DATA = {
  /** A retried attempt begins: what a client showed of the earlier attempt is void. */
  'phase.attempt': z.object(liveStep),
  /**
   * Text the model wrote since the previous delta of the same call. `call` counts the attempt's
   * model calls from 1 (a repair round is the next call): a new call starts its text afresh.
   * `offset` is where `text` starts in the call's answer, so a client can tell a gap (deltas
   * dropped while Redis was away, or past the stream's cap). `partial` is the answer parsed so
   * far (an incomplete JSON object completed as far as it goes), or null when the text so far is
   * not known from its start.
   */
  'phase.delta': z.object({
    ...liveStep,
    call: z.number().int().min(1),
    offset: z.number().int().min(0),
    text: z.string(),
    partial: z.unknown().nullable(),
  }),
} as const satisfies Record<LiveEventType, z.ZodType>;

export type LiveEventData<T extends LiveEventType> = z.output<(typeof LIVE_EVENT_DATA)[T]>;

/** One live event as the activity publishes it (`partial` is added by the API when it streams). */
export type PublishedLiveEvent =
  | { type: 'phase.attempt'; data: LiveEventData<'phase.attempt'> }
  | { type: 'phase.delta'; data: Omit<LiveEventData<'phase.delta'>, 'partial'> };

export function isLiveEventType(type: string): type is LiveEventType {
  return (LIVE_EVENT_TYPES as readonly string[]).includes(type);
}
