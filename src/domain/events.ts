import { z } from 'zod';
import type { DecisionEventType } from './decision';
import { DraftDecisionOutput, PHASE_OUTPUT_SCHEMAS } from './outputs';
import { PHASE_NAMES, type PhaseName } from './phases';
import { DecisionErrorSchema, DecisionResultSchema, PhaseNameSchema } from './schemas';

// The data of each event a decision's stream carries, as the workflow publishes it (and as
// `terminalEvent` writes an end the workflow never saw). Plain objects: a key a newer server
// adds is dropped, not refused, so an older client keeps reading.

const phaseStep = {
  phase: PhaseNameSchema,
  title: z.string(),
  /** The phase's place in the run, from 0. */
  index: z.number().int().min(0),
};

const phaseCompleted = <N extends PhaseName>(name: N) =>
  z.object({
    ...phaseStep,
    phase: z.literal(name),
    duration_ms: z.number().min(0),
    /** The decision a fork took this output from; null when the phase ran. */
    reused_from: z.string().nullable(),
    output: PHASE_OUTPUT_SCHEMAS[name],
  });
type PhaseCompletedOption = { [N in PhaseName]: ReturnType<typeof phaseCompleted<N>> }[PhaseName];

/** `phase.completed`: the phase's output, checked against that phase's output schema. */
const PhaseCompletedData = z.discriminatedUnion(
  'phase',
  PHASE_NAMES.map((name) => phaseCompleted(name)) as [
    PhaseCompletedOption,
    ...PhaseCompletedOption[],
  ],
);

/** The schema of each event type's data. */
export const DECISION_EVENT_DATA = {
  'decision.started': z.object({ process_id: z.string(), status: z.literal('running') }),
  'phase.started': z.object(phaseStep),
  'phase.completed': PhaseCompletedData,
  'phase.failed': z.object({ ...phaseStep, error: DecisionErrorSchema }),
  'review.requested': z.object({
    phase: z.literal('draftDecision'),
    draft: DraftDecisionOutput,
    timeout_ms: z.number().int().positive(),
  }),
  'review.received': z.object({ approved: z.boolean(), feedback: z.string().nullable() }),
  'review.timed_out': z.object({ timeout_ms: z.number().int().positive() }),
  'decision.completed': z.object({ status: z.literal('completed'), result: DecisionResultSchema }),
  'decision.failed': z.object({ status: z.literal('failed'), error: DecisionErrorSchema }),
  // The workflow names the phase it was cancelled in; an end read from Temporal (reconcile, a
  // stream whose projection missed the end) carries the record's error instead.
  'decision.cancelled': z.object({
    status: z.literal('cancelled'),
    phase: PhaseNameSchema.optional(),
    error: DecisionErrorSchema.nullable().optional(),
  }),
} as const satisfies Record<DecisionEventType, z.ZodType>;

export type DecisionEventData<T extends DecisionEventType> = z.output<
  (typeof DECISION_EVENT_DATA)[T]
>;

/** One event as a decision's stream sends it: its type (the SSE event name) and its data. */
export type DecisionStreamEvent = {
  [T in DecisionEventType]: { type: T; data: DecisionEventData<T> };
}[DecisionEventType];

/** The events that end a decision's stream. */
export type DecisionEndEvent = Extract<
  DecisionStreamEvent,
  { type: 'decision.completed' | 'decision.failed' | 'decision.cancelled' }
>;

const END_TYPES: ReadonlySet<DecisionEventType> = new Set([
  'decision.completed',
  'decision.failed',
  'decision.cancelled',
]);

export function isEndEvent(event: DecisionStreamEvent): event is DecisionEndEvent {
  return END_TYPES.has(event.type);
}
