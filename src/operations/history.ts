import type { temporal } from '@temporalio/proto';
import { isPhaseName, type PhaseName } from '../domain/phases';

type History = temporal.api.history.v1.IHistory;
type LongLike = number | string | { toNumber(): number } | null | undefined;

/** Event ids and counts arrive as Long; these are small enough to be numbers. */
export function num(value: LongLike): number {
  if (value === null || value === undefined) return 0;
  return typeof value === 'object' ? value.toNumber() : Number(value);
}

export interface PhaseActivityEvent {
  phase: PhaseName;
  scheduledEventId: number;
  /** The workflow task whose completion scheduled the activity: the reset point before it. */
  workflowTaskCompletedEventId: number;
}

/** The phase activities a run scheduled, in history order (retrieval once per need). */
export function scheduledPhases(history: History): PhaseActivityEvent[] {
  const out: PhaseActivityEvent[] = [];
  for (const event of history.events ?? []) {
    const attrs = event.activityTaskScheduledEventAttributes;
    const name = attrs?.activityType?.name;
    if (attrs && name && isPhaseName(name)) {
      out.push({
        phase: name,
        scheduledEventId: num(event.eventId),
        workflowTaskCompletedEventId: num(attrs.workflowTaskCompletedEventId),
      });
    }
  }
  return out;
}

/**
 * The workflow task to reset to so that `phase` runs again and the phases before it do not: the
 * one that scheduled the phase's first activity. Null when the run never scheduled it.
 */
export function resetPointFor(history: History, phase: PhaseName): number | null {
  return (
    scheduledPhases(history).find((e) => e.phase === phase)?.workflowTaskCompletedEventId ?? null
  );
}

export interface PhaseFailure {
  phase: PhaseName;
  type: string;
  message: string;
  /** Attempts the activity made before it failed for good. */
  attempts: number;
}

/** The phase activity whose failure ended the run, in plain words; null if none failed. */
export function lastPhaseFailure(history: History): PhaseFailure | null {
  const scheduled = new Map(scheduledPhases(history).map((e) => [e.scheduledEventId, e.phase]));
  let failure: PhaseFailure | null = null;
  for (const event of history.events ?? []) {
    const failed = event.activityTaskFailedEventAttributes;
    const timedOut = event.activityTaskTimedOutEventAttributes;
    const attrs = failed ?? timedOut;
    if (!attrs) continue;
    const phase = scheduled.get(num(attrs.scheduledEventId));
    if (!phase) continue;
    let cause = attrs.failure;
    while (cause?.cause) cause = cause.cause;
    const started = (history.events ?? []).find(
      (e) => num(e.eventId) === num(attrs.startedEventId),
    );
    failure = {
      phase,
      type:
        cause?.applicationFailureInfo?.type || (timedOut ? 'ActivityTimeout' : 'ActivityFailure'),
      message: cause?.message ?? attrs.failure?.message ?? 'no message',
      attempts: started?.activityTaskStartedEventAttributes?.attempt ?? 1,
    };
  }
  return failure;
}
