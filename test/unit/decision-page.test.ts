import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

// The page's script is plain browser JavaScript (src/api/ui/page.js); its pure functions are
// exported and tested here. Without a document it only defines them.
interface Live {
  attempt: number;
  call: number;
  text: string;
  end: number;
  gap: boolean;
  partial: unknown;
}
interface Delta {
  attempt: number;
  call: number;
  offset: number;
  text: string;
  partial: unknown;
}
interface PageModule {
  attemptStarted(data: { attempt: number }): Live;
  deltaApplied(live: Live | undefined, data: Delta): Live;
  liveText(live: Live): string;
  formatDuration(ms: number): string;
}

const PAGE = pathToFileURL(resolve(__dirname, '../../src/api/ui/page.js')).href;
let page: PageModule;

beforeAll(async () => {
  page = (await import(PAGE)) as PageModule;
});

const delta = (offset: number, text: string, more: Partial<Delta> = {}): Delta => ({
  attempt: 1,
  call: 1,
  offset,
  text,
  partial: null,
  ...more,
});

/** The live entry after each delta in turn. */
const after = (...deltas: Delta[]) =>
  deltas.reduce<Live | undefined>((live, d) => page.deltaApplied(live, d), undefined)!;

describe('the live text of a running phase', () => {
  it('appends each delta at its offset', () => {
    const live = after(delta(0, '{"trig'), delta(6, 'ger": "a'), delta(14, ' launch"}'));
    expect(live.text).toBe('{"trigger": "a launch"}');
    expect(live.end).toBe(23);
    expect(live.gap).toBe(false);
  });

  it('does not repeat text it has (a stream resumed from an earlier event)', () => {
    expect(after(delta(0, 'abc'), delta(3, 'def'), delta(3, 'def'), delta(0, 'abc')).text).toBe(
      'abcdef',
    );
    // A delta that overlaps what was shown adds only what is new.
    expect(after(delta(0, 'abcd'), delta(2, 'cdef')).text).toBe('abcdef');
  });

  it('marks text it missed, and says so', () => {
    const live = after(delta(0, 'abc'), delta(10, 'xyz'));
    expect(live.text).toBe('abc … xyz');
    expect(live.gap).toBe(true);
    expect(live.end).toBe(13);
  });

  it('starts afresh for a new call (a repair round) and for a new attempt', () => {
    const repaired = after(delta(0, 'first answer'), delta(0, 'second', { call: 2 }));
    expect(repaired).toMatchObject({ call: 2, text: 'second' });
    const retried = after(delta(0, 'attempt one'), delta(0, 'two', { attempt: 2 }));
    expect(retried).toMatchObject({ attempt: 2, call: 1, text: 'two' });
  });

  it('ignores a late delta of an earlier call or attempt', () => {
    const live = after(delta(0, 'new', { attempt: 2 }), delta(11, 'old tail'));
    expect(live).toMatchObject({ attempt: 2, text: 'new' });
    expect(after(delta(0, 'repair', { call: 2 }), delta(0, 'first')).text).toBe('repair');
  });

  it('resets when a retried attempt begins', () => {
    const reset = page.attemptStarted({ attempt: 2 });
    expect(reset).toMatchObject({ attempt: 2, text: '', end: 0 });
    expect(page.deltaApplied(reset, delta(0, 'again', { attempt: 2 })).text).toBe('again');
    // What the earlier attempt still sends is not shown.
    expect(page.deltaApplied(reset, delta(40, 'late')).text).toBe('');
  });

  it('shows the answer parsed so far, pretty-printed, or else the raw text', () => {
    const partial = { trigger: 'a launch', stakeholders: ['ops'] };
    const parsed = after(delta(0, '{"trigger":"a launch","stakeholders":["ops"', { partial }));
    expect(page.liveText(parsed)).toBe(JSON.stringify(partial, null, 2));
    expect(page.liveText(after(delta(0, 'not json yet')))).toBe('not json yet');
    // After a gap the parse is of text not known from its start: the raw text is shown.
    const gapped = after(delta(0, '{"a":'), delta(9, '"b"}', { partial: { b: 1 } }));
    expect(page.liveText(gapped)).toBe('{"a": … "b"}');
  });
});

describe('formatDuration', () => {
  it('gives milliseconds, seconds or minutes', () => {
    expect(page.formatDuration(850)).toBe('850 ms');
    expect(page.formatDuration(2_430)).toBe('2.4 s');
    expect(page.formatDuration(185_000)).toBe('3 min 5 s');
  });
});
