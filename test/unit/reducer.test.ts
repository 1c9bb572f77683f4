import { describe, expect, it } from 'vitest';
import {
  initialRecord,
  type DecisionEvent,
  type DecisionRecord,
  type PhaseResult,
} from '../../src/domain/decision';
import { PHASE_NAMES } from '../../src/domain/phases';
import {
  apply,
  phaseCompleted,
  phaseStarted,
  resultOf,
  reviewOutcome,
  stamp,
  usageOf,
} from '../../src/domain/reducer';
import { readRecording, type Recording } from '../support/streams';

const T0 = '2026-01-01T00:00:00.000Z';
const at = (seconds: number) => new Date(Date.parse(T0) + seconds * 1000).toISOString();

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

const fresh = (input: Parameters<typeof initialRecord>[1] = { query: 'Q?' }) =>
  deepFreeze(initialRecord('d1', input, T0));

const fold = (record: DecisionRecord, events: DecisionEvent[]) =>
  events.reduce((r, e) => apply(deepFreeze(r), e), record);

const result = (over: Partial<PhaseResult> = {}): PhaseResult => ({
  output: { summary: 's' },
  model: 'm',
  model_calls: 3,
  repair_rounds: 1,
  usage: { input_tokens: 100, output_tokens: 20 },
  latency_ms: 50,
  attempt: 2,
  ...over,
});

/** The events a recording streamed, as the reducer takes them. */
function recorded(name: Recording): DecisionEvent[] {
  return readRecording(name)
    .filter((f) => f.event !== 'message')
    .map((f) => ({ type: f.event, data: JSON.parse(f.data) as unknown }) as DecisionEvent);
}

describe('the decision reducer', () => {
  it('starts a phase: running, with its start time, and the current phase', () => {
    const record = fresh();
    const next = apply(record, phaseStarted(record, 'defineScope', at(1)));
    expect(next.current_phase).toBe('defineScope');
    expect(next.phases[2]).toMatchObject({ status: 'running', started_at: at(1) });
    expect(next.phases.filter((p) => p.status !== 'pending')).toHaveLength(1);
  });

  it('completes a phase with what its run cost, its duration counted from its start', () => {
    const started = apply(fresh(), phaseStarted(fresh(), 'identifyTrigger', at(1)));
    const event = phaseCompleted(started, 'identifyTrigger', { summary: 's' }, at(3), {
      result: result(),
    });
    expect(event.data).toEqual({
      phase: 'identifyTrigger',
      title: 'Identify trigger',
      index: 0,
      duration_ms: 2000,
      reused_from: null,
      output: { summary: 's' },
    });
    const done = apply(started, event);
    expect(done.phases[0]).toMatchObject({
      status: 'completed',
      completed_at: at(3),
      duration_ms: 2000,
      attempts: 2,
      model: 'm',
      model_calls: 3,
      repair_rounds: 1,
      usage: { input_tokens: 100, output_tokens: 20 },
      latency_ms: 50,
    });
  });

  it('never counts a negative duration when the worker clock runs behind', () => {
    const started = apply(fresh(), phaseStarted(fresh(), 'identifyTrigger', at(5)));
    const event = phaseCompleted(started, 'identifyTrigger', {}, at(4), { result: result() });
    expect(event.type === 'phase.completed' && event.data.duration_ms).toBe(0);
  });

  it("marks a fork's reused output with its source and no cost of its own", () => {
    const started = apply(fresh(), phaseStarted(fresh(), 'identifyTrigger', at(1)));
    const done = apply(
      started,
      phaseCompleted(started, 'identifyTrigger', {}, at(1), { reusedFrom: 'src' }),
    );
    expect(done.phases[0]).toMatchObject({
      status: 'completed',
      reused_from: 'src',
      model_calls: null,
      usage: null,
    });
    expect(usageOf(done).model_calls).toBe(0);
  });

  it('pauses for review and resumes with the answer, which the revision reads', () => {
    const record = fresh({ query: 'Q?', review: { timeout_ms: 1000 } });
    expect(record.review.status).toBe('pending');
    const waiting = apply(record, {
      type: 'review.requested',
      data: { phase: 'draftDecision', draft: {}, timeout_ms: 1000 },
      at: at(1),
    });
    expect(waiting.status).toBe('awaiting_review');
    expect(waiting.review).toMatchObject({ status: 'awaiting', requested_at: at(1) });
    expect(reviewOutcome(waiting)).toBeNull();
    const answered = apply(waiting, {
      type: 'review.received',
      data: { approved: false, feedback: 'cheaper' },
      at: at(2),
    });
    expect(answered.status).toBe('running');
    expect(answered.review).toMatchObject({
      status: 'feedback',
      feedback: 'cheaper',
      answered_at: at(2),
    });
    expect(reviewOutcome(answered)).toEqual({ kind: 'feedback', feedback: 'cheaper' });
    const timedOut = apply(waiting, {
      type: 'review.timed_out',
      data: { timeout_ms: 1000 },
      at: at(3),
    });
    expect(reviewOutcome(timedOut)).toEqual({ kind: 'timed_out' });
  });

  it('cancels the running phase, but leaves a completed draft completed', () => {
    const running = apply(fresh(), phaseStarted(fresh(), 'defineScope', at(1)));
    const cancel: DecisionEvent = {
      type: 'decision.cancelled',
      data: { status: 'cancelled', phase: 'defineScope' },
      at: at(2),
    };
    const cancelled = apply(running, cancel);
    expect(cancelled).toMatchObject({
      status: 'cancelled',
      completed_at: at(2),
      error: { phase: 'defineScope', type: 'Cancelled', message: 'The decision was cancelled' },
    });
    expect(cancelled.phases[2]!.status).toBe('cancelled');

    const drafted = fold(fresh(), [
      phaseStarted(fresh(), 'draftDecision', at(1)),
      { ...phaseCompleted(fresh(), 'draftDecision', {}, at(2), { result: result() }) },
    ]);
    const duringReview = apply(drafted, {
      ...cancel,
      data: { status: 'cancelled', phase: 'draftDecision' },
    });
    expect(duringReview.phases[7]!.status).toBe('completed');
    expect(duringReview.status).toBe('cancelled');
  });

  it('never changes the record it is given', () => {
    const record = fresh();
    // deepFreeze makes any write throw in strict mode.
    expect(() => apply(record, phaseStarted(record, 'identifyTrigger', at(1)))).not.toThrow();
    expect(record.phases[0]!.status).toBe('pending');
  });

  it('stamps each write with a growing seq and a pending delivery per subscribed event', () => {
    const record = fresh({
      query: 'Q?',
      webhook: {
        url: 'https://example.test/hook',
        events: ['phase.started'],
        timeout_ms: 1,
        retry_ms: 1,
      },
    });
    const events: DecisionEvent[] = [
      { type: 'decision.started', data: { process_id: 'd1', status: 'running' }, n: 1 },
      { ...phaseStarted(record, 'identifyTrigger', at(1)), n: 2 },
    ];
    const first = stamp(record, events, at(1), 1000);
    expect(first.seq).toBe(1_000_000);
    expect(first.updated_at).toBe(at(1));
    expect(first.webhook!.deliveries.map((d) => [d.id, d.event, d.state])).toEqual([
      ['msg_d1_2_1000000', 'phase.started', 'pending'],
    ]);
    // The same event published again (a reset run repeating its number) is another delivery.
    const again = stamp(first, [events[1]!], at(1), 1000);
    expect(again.webhook!.deliveries.map((d) => d.id)).toEqual([
      'msg_d1_2_1000000',
      'msg_d1_2_1000001',
    ]);
    // The same workflow time twice still moves seq on.
    expect(stamp(first, [], at(1), 1000).seq).toBe(1_000_001);
  });

  describe('folds the events of the streams recorded from the real API', () => {
    it('a reviewed decision: every phase completed, the review as given, the result as sent', () => {
      const events = recorded('reviewed');
      const record = fold(fresh({ query: 'Q?', review: { timeout_ms: 1000 } }), events);
      expect(record.status).toBe('completed');
      expect(record.phases.map((p) => [p.name, p.status])).toEqual(
        PHASE_NAMES.map((name) => [name, 'completed']),
      );
      const received = events.find((e) => e.type === 'review.received');
      expect(received).toBeDefined();
      expect(record.review.feedback).toBe(
        received!.type === 'review.received' ? received!.data.feedback : undefined,
      );
      const completed = events.find((e) => e.type === 'decision.completed');
      expect(record.result).toEqual(
        completed!.type === 'decision.completed' ? completed!.data.result : undefined,
      );
      // resultOf, over the outputs the stream carried, builds the result the real API sent (its
      // usage aside: the stream carries no phase's cost).
      const outputs = Object.fromEntries(
        events.flatMap((e) =>
          e.type === 'phase.completed' ? [[e.data.phase, e.data.output]] : [],
        ),
      ) as Parameters<typeof resultOf>[1];
      const built = resultOf(record, outputs);
      expect({ decision: built.decision, phases: built.phases }).toEqual({
        decision: record.result!.decision,
        phases: record.result!.phases,
      });
    });

    it('a failed decision: failed at the phase the stream names, with its error', () => {
      const events = recorded('failed');
      const record = fold(fresh(), events);
      const failed = events.find((e) => e.type === 'phase.failed');
      expect(failed).toBeDefined();
      const phase = failed!.type === 'phase.failed' ? failed!.data.phase : null;
      expect(record.status).toBe('failed');
      expect(record.error?.phase).toBe(phase);
      expect(record.phases.find((p) => p.name === phase)!.status).toBe('failed');
    });

    it('a decision cancelled during its review: cancelled, its draft still completed', () => {
      const record = fold(
        fresh({ query: 'Q?', review: { timeout_ms: 1000 } }),
        recorded('cancelled'),
      );
      expect(record.status).toBe('cancelled');
      expect(record.phases.find((p) => p.name === 'draftDecision')!.status).toBe('completed');
      expect(record.phases.some((p) => p.status === 'running')).toBe(false);
    });
  });

  it('sums usage over the phases into the result', () => {
    let record = fresh();
    for (const name of ['identifyTrigger', 'analyzeRootCause'] as const) {
      record = apply(record, phaseStarted(record, name, at(1)));
      record = apply(record, phaseCompleted(record, name, {}, at(2), { result: result() }));
    }
    expect(usageOf(record)).toEqual({
      model_calls: 6,
      repair_rounds: 2,
      input_tokens: 200,
      output_tokens: 40,
      latency_ms: 100,
    });
    const outputs = { compileResult: { title: 't' } } as unknown as Parameters<typeof resultOf>[1];
    expect(resultOf(record, outputs)).toMatchObject({ query: 'Q?', decision: { title: 't' } });
  });
});
