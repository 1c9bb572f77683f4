import { describe, expect, it } from 'vitest';
import { formatList, formatShow, render, type ListRow, type Shown } from '../../src/cli/decisions';
import { terminalSafe, terminalText } from '../../src/cli/terminal-text';
import { initialRecord } from '../../src/domain/decision';

const ESC = '\u001b';
const BEL = '\u0007';

describe('terminalText', () => {
  it('removes CSI sequences: cursor moves, screen clears, colours, private modes', () => {
    expect(terminalText(`a${ESC}[2Jb${ESC}[Hc${ESC}[1;31md${ESC}[0me`)).toBe('abcde');
    expect(terminalText(`${ESC}[?25lhidden cursor${ESC}[?1049h`)).toBe('hidden cursor');
    expect(terminalText(`up${ESC}[3Aover`)).toBe('upover');
    expect(terminalText(`eight-bit \u009b2Jcsi`)).toBe('eight-bit csi');
  });

  it('removes OSC sequences ended by BEL or ST: window titles and hyperlinks', () => {
    expect(terminalText(`${ESC}]0;pwned${BEL}visible`)).toBe('visible');
    expect(terminalText(`${ESC}]2;title${ESC}\\visible`)).toBe('visible');
    expect(terminalText(`${ESC}]8;;https://evil.example${ESC}\\click${ESC}]8;;${ESC}\\`)).toBe(
      'click',
    );
    expect(terminalText(`\u009d0;eight-bit title\u009cvisible`)).toBe('visible');
  });

  it('removes the other string controls (DCS, SOS, PM, APC)', () => {
    expect(terminalText(`a${ESC}Pq#0;2;0;0;0${ESC}\\b`)).toBe('ab');
    expect(terminalText(`a${ESC}_app${BEL}b${ESC}^pm${ESC}\\c${ESC}Xsos${ESC}\\d`)).toBe('abcd');
  });

  it('keeps the text of a string control that never ends, without its introducer', () => {
    expect(terminalText(`${ESC}]0;no end`)).toBe('0;no end');
  });

  it('removes other escapes: reset, charset switches, keypad modes, a lone ESC', () => {
    expect(terminalText(`a${ESC}cb${ESC}(0c${ESC}=d${ESC}7e${ESC}`)).toBe('abcde');
  });

  it('removes C0 controls, DEL and C1 controls', () => {
    expect(terminalText('a\u0000b\u0007c\bd\re\u000bf\u000cg\u007fh\u0085i\u009fj')).toBe(
      'abcdefghij',
    );
  });

  it('removes bidi embeddings, overrides and isolates', () => {
    const bidi = '\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069';
    expect(terminalText(`invoice${bidi}fdp.exe`)).toBe('invoicefdp.exe');
  });

  it('keeps ordinary Unicode: accents, CJK, emoji (with joiners and variation selectors), RTL', () => {
    const text = 'Café naïve Ångström — 決定を下す 결정 🚀 👩‍💻 ❤️ 🇫🇷 שלום مرحبا';
    expect(terminalText(text)).toBe(text);
  });

  it('keeps newlines and tabs in a multi-line field, and makes any other field one line', () => {
    expect(terminalText('line 1\n\tline 2\r\n', { multiline: true })).toBe('line 1\n\tline 2\n');
    expect(terminalText('line 1\n\tline 2')).toBe('line 1  line 2');
  });
});

describe('terminalSafe', () => {
  it('cleans every string of JSON-like data, keys included, and leaves other values alone', () => {
    const data = {
      query: `Q${ESC}[2J?\nsecond line`,
      [`k${ESC}[31mey`]: [`a${ESC}]0;t${BEL}`, 1, null, true, { deep: '\u202eb' }],
      count: 3,
    };
    expect(terminalSafe(data)).toEqual({
      query: 'Q?\nsecond line',
      key: ['a', 1, null, true, { deep: 'b' }],
      count: 3,
    });
    expect(data.query).toContain(ESC);
  });
});

describe('the decisions command prints clean text', () => {
  const HOSTILE = `${ESC}]0;pwned${BEL}${ESC}[2J\u202e`;
  const record = (): Shown => ({
    ...initialRecord(
      'dec-1',
      {
        query: `Should we ${HOSTILE}move?\nSecond line`,
        context: `We run ${HOSTILE}on AWS`,
        metadata: { team: `pay${HOSTILE}ments` },
      },
      '2025-01-01T00:00:00.000Z',
    ),
    status: 'failed',
    error: { phase: 'draftDecision', type: 'ModelError', message: `bad ${HOSTILE}answer` },
    failure: {
      phase: 'draftDecision',
      type: `Model${HOSTILE}Error`,
      message: `the model said ${HOSTILE}no`,
      attempts: 2,
    },
  });
  const clean = (text: string) => {
    for (const part of [`${ESC}]`, 'pwned', BEL, `${ESC}[2J`, '\u202e']) {
      expect(text).not.toContain(part);
    }
  };

  it('show: the query and the failure keep their words and lose their controls', () => {
    const text = render(record(), false, formatShow);
    clean(text);
    expect(text).toContain('  Should we move?\nSecond line');
    expect(text).toContain(
      '  Failed in draftDecision after 2 attempts: ModelError\n  the model said no',
    );
  });

  it('list: one clean line per decision', () => {
    const rows: ListRow[] = [
      {
        process_id: 'dec-1',
        status: 'running',
        phase: 'defineScope',
        started_at: '2025-01-01T00:00:00.000Z',
        query: `Should we ${HOSTILE}move?\nSecond line`,
      },
    ];
    const text = render(rows, false, formatList);
    clean(text);
    expect(text.split('\n')).toHaveLength(1);
    expect(text).toMatch(/^dec-1 {2}running {9}defineScope .*Z {2}Should we move\? Second line$/);
  });

  it('--json stays valid JSON of the same data, cleaned', () => {
    const text = render(record(), true, formatShow);
    clean(text);
    const parsed = JSON.parse(text) as Shown;
    expect(parsed.query).toBe('Should we move?\nSecond line');
    expect(parsed.context).toBe('We run on AWS');
    expect(parsed.metadata).toEqual({ team: 'payments' });
    expect(parsed.failure?.type).toBe('ModelError');
  });
});
