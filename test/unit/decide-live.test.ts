import { describe, expect, it } from 'vitest';
import {
  NO_LIVE_TEXT,
  liveAfter,
  liveLines,
  parseLiveEvent,
  tailColumns,
  wrapColumns,
  type LiveState,
  type LiveStreamEvent,
} from '../../src/cli/decide-live';
import type { DecisionStreamEvent } from '../../src/domain/events';
import type { PhaseName } from '../../src/domain/phases';

const scope = { phase: 'defineScope', index: 2, attempt: 1, need: null } as const;

function delta(
  offset: number,
  text: string,
  partial: unknown,
  step: Partial<{ phase: PhaseName; index: number; attempt: number; need: string | null }> = {},
  call = 1,
): LiveStreamEvent {
  return { type: 'phase.delta', data: { ...scope, ...step, call, offset, text, partial } };
}

const phaseEvent = (type: 'phase.started' | 'phase.completed', phase: PhaseName) =>
  ({ type, data: { phase, title: phase, index: 2 } }) as DecisionStreamEvent;

const fold = (events: (DecisionStreamEvent | LiveStreamEvent)[], state: LiveState = NO_LIVE_TEXT) =>
  events.reduce(liveAfter, state);

describe('decide live text', () => {
  it('reads live events, and leaves out what it cannot read instead of failing', () => {
    const data = { ...scope, call: 1, offset: 0, text: '{"summary":"a\u001b[2Jb', partial: {} };
    expect(parseLiveEvent('phase.delta', JSON.stringify(data))).toEqual({
      type: 'phase.delta',
      data,
    });
    // The text stays as sent (offsets count it); the parse is made safe as it enters.
    expect(
      parseLiveEvent('phase.delta', JSON.stringify({ ...data, partial: { s: 'a\u001b[2Jb' } }))
        ?.data,
    ).toMatchObject({ text: data.text, partial: { s: 'ab' } });
    expect(parseLiveEvent('phase.attempt', JSON.stringify({ ...scope, attempt: 2 }))).toEqual({
      type: 'phase.attempt',
      data: { ...scope, attempt: 2 },
    });
    expect(parseLiveEvent('phase.attempt', JSON.stringify({ ...scope, attempt: 0 }))).toBeNull();
    expect(parseLiveEvent('phase.delta', '{"phase":')).toBeNull();
    expect(parseLiveEvent('phase.started', JSON.stringify(scope))).toBeNull();
    expect(parseLiveEvent('phase.progress', '{}')).toBeNull();
    expect(parseLiveEvent(undefined, '{}')).toBeNull();
  });

  it('shows the raw text from where it resumes when deltas were missed', () => {
    const state = fold([
      delta(0, '{"summary":"It be', { summary: 'It be' }),
      delta(40, 'rest of it"}', null),
    ]);
    expect(liveLines(state, 80)).toEqual(['  …rest of it"}']);
    // A delta that repeats what came, from its offset on, replaces the end it covers.
    const resent = fold([delta(0, '{"a":"xy', null), delta(7, 'yz"}', null)]);
    expect(liveLines(resent, 80)).toEqual(['  {"a":"xyz"}']);
  });

  it('keeps what an earlier attempt, an earlier call or an ended phase sends late off the screen', () => {
    const second = fold([
      { type: 'phase.attempt', data: { ...scope, attempt: 2 } },
      delta(0, '{"a":"new"}', { a: 'new' }, { attempt: 2 }),
    ]);
    expect(liveLines(fold([delta(11, 'old', { a: 'old' })], second), 80)).toEqual(['  a: new']);
    const repaired = fold([delta(0, '{"a":"fixed"}', { a: 'fixed' }, {}, 2)]);
    expect(liveLines(fold([delta(0, '{"a":"bad"}', { a: 'bad' })], repaired), 80)).toEqual([
      '  a: fixed',
    ]);
    const ended = fold([
      delta(0, '{"a":"x"}', { a: 'x' }),
      phaseEvent('phase.completed', scope.phase),
    ]);
    expect(liveLines(ended, 80)).toEqual([]);
    expect(liveLines(fold([delta(9, ' ', { a: 'x' })], ended), 80)).toEqual([]);
    // Until the phase runs again (an operator's retry).
    const again = fold(
      [phaseEvent('phase.started', scope.phase), delta(0, '{"a":"y"}', { a: 'y' })],
      ended,
    );
    expect(liveLines(again, 80)).toEqual(['  a: y']);
  });

  it('reads an answer as its fields, lists on one line, nested objects field by field', () => {
    const state = fold([
      delta(0, '…', {
        title: 'Pilot',
        ready: false,
        tags: ['a', 'b'],
        alternatives: [{ name: 'Now', score: 3 }],
        empty: [],
        pending: null,
      }),
    ]);
    expect(liveLines(state, 80, 10)).toEqual([
      '  title: Pilot',
      '  ready: false',
      '  tags: a · b',
      '  name: Now',
      '  score: 3',
    ]);
  });

  it('keeps the six needs written to most recently, each on a line, in the order they began', () => {
    const needs = ['N1', 'N2', 'N3', 'N4', 'N5', 'N6', 'N7'];
    const step = (need: string) => ({ phase: 'retrieveInformation' as const, index: 5, need });
    let state = fold(needs.map((n) => delta(0, '{', { answer: n }, step(n))));
    state = fold([delta(1, '}', { answer: 'N1 again' }, step('N1'))], state);
    expect(liveLines(state, 80)).toEqual([
      '  N1: answer: N1 again',
      '  N3: answer: N3',
      '  N4: answer: N4',
      '  N5: answer: N5',
      '  N6: answer: N6',
      '  N7: answer: N7',
    ]);
  });

  it('wraps and cuts by columns, wide characters counting two', () => {
    expect(wrapColumns('aaa bbb ccc', 7)).toEqual(['aaa bbb', 'ccc']);
    expect(wrapColumns('日本語日本語', 5)).toEqual(['日本', '語日', '本語']);
    expect(wrapColumns('ab 日本語', 4)).toEqual(['ab', '日本', '語']);
    expect(wrapColumns('', 4)).toEqual(['']);
    expect(tailColumns('abcdef', 4)).toBe('…def');
    expect(tailColumns('abcd', 4)).toBe('abcd');
    expect(tailColumns('日本語', 4)).toBe('…語');
  });
});
