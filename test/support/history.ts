import type { temporal } from '@temporalio/proto';
import { PHASE_NAMES } from '../../src/domain/phases';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/**
 * How many times each activity type completed in a history, and each scheduled activity's type
 * by its scheduled event id.
 */
export function activityCompletions(events: HistoryEvent[]) {
  const types = new Map<string, string>();
  const counts: Record<string, number> = {};
  for (const e of events) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) types.set(String(e.eventId), scheduled.activityType?.name ?? '');
    const done = e.activityTaskCompletedEventAttributes;
    if (done) {
      const type = types.get(String(done.scheduledEventId)) ?? '?';
      counts[type] = (counts[type] ?? 0) + 1;
    }
  }
  return { counts, types };
}

/** True when every phase completed exactly once (retrieval once per information need, so ≥ 1). */
export function eachPhaseOnce(counts: Record<string, number>): boolean {
  return PHASE_NAMES.every((p) =>
    p === 'retrieveInformation' ? (counts[p] ?? 0) >= 1 : counts[p] === 1,
  );
}
