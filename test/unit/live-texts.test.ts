import { describe, expect, it } from 'vitest';
import { LiveTexts, partialAnswer } from '../../src/api/live-texts';

const delta = (text: string, offset: number, more: Record<string, unknown> = {}) => ({
  id: '1-0',
  type: 'phase.delta',
  data: {
    phase: 'generateAlternatives',
    index: 6,
    attempt: 1,
    need: null,
    call: 1,
    offset,
    text,
    ...more,
  },
});

describe('partialAnswer', () => {
  it('parses an answer cut anywhere as far as it goes', () => {
    expect(partialAnswer('{"options": [{"name": "Ret')).toEqual({ options: [{ name: 'Ret' }] });
    expect(partialAnswer('{"score": 0.')).toEqual({});
    expect(partialAnswer('```json\n{"a": [1, 2')).toEqual({ a: [1, 2] });
    expect(partialAnswer('')).toBeNull();
    expect(partialAnswer('not json')).toBeNull();
  });
});

describe('LiveTexts', () => {
  it("gives each delta its call's answer parsed so far", () => {
    const texts = new LiveTexts();
    expect(texts.add(delta('{"summary": "Mo', 0))).toMatchObject({ partial: { summary: 'Mo' } });
    expect(texts.add(delta('ve now"', 15))).toMatchObject({
      text: 've now"',
      partial: { summary: 'Move now' },
    });
  });

  it('starts afresh for a new call or attempt, and keeps parallel needs apart', () => {
    const texts = new LiveTexts();
    texts.add(delta('{"a": "x', 0));
    expect(texts.add(delta('{"b": 1', 0, { call: 2 }))).toMatchObject({ partial: { b: 1 } });
    expect(texts.add(delta('{"c": 2', 0, { attempt: 2 }))).toMatchObject({ partial: { c: 2 } });
    texts.add(delta('{"n": "one', 0, { need: 'N1' }));
    texts.add(delta('{"n": "two', 0, { need: 'N2' }));
    expect(texts.add(delta('!"}', 10, { need: 'N1' }))).toMatchObject({ partial: { n: 'one!' } });
  });

  it('says null once a delta of the call was missed, rather than parse half a story', () => {
    const texts = new LiveTexts();
    texts.add(delta('{"summary": "Mo', 0));
    expect(texts.add(delta('now"', 17))).toMatchObject({ partial: null });
    // A stream that starts past the beginning (older deltas past the cap) cannot parse either.
    expect(new LiveTexts().add(delta('"x": 1', 40))).toMatchObject({ partial: null });
  });

  it('passes other live events as they are and forgets the calls of an ended phase', () => {
    const texts = new LiveTexts();
    const attempt = { id: '1-1', type: 'phase.attempt', data: { phase: 'x', attempt: 2 } };
    expect(texts.add(attempt)).toBe(attempt.data);
    texts.add(delta('{"a": "x', 0));
    texts.forget('generateAlternatives');
    // The same call key again starts from nothing: offset 8 is now a gap.
    expect(texts.add(delta('y"}', 8))).toMatchObject({ partial: null });
  });
});
