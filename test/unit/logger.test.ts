import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, type LogFormat } from '../../src/logger';

/** A stream that keeps what is written to it, claiming to be a terminal or not. */
function capture(isTTY: boolean) {
  const chunks: string[] = [];
  const stream = Object.assign(
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        chunks.push(chunk.toString());
        done();
      },
    }),
    { isTTY },
  );
  return { stream, text: () => chunks.join('') };
}

function logLine(format: LogFormat, isTTY: boolean): string {
  const out = capture(isTTY);
  createLogger('info', 'worker', format, out.stream).info({ phase: 'draftDecision' }, 'Phase done');
  return out.text().trim();
}

const isJson = (line: string) => {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
};

describe('createLogger', () => {
  it('writes JSON lines when not on a terminal, and with LOG_FORMAT=json on one', () => {
    for (const line of [logLine('auto', false), logLine('json', true)]) {
      expect(JSON.parse(line)).toMatchObject({
        level: 30,
        name: 'worker',
        phase: 'draftDecision',
        msg: 'Phase done',
      });
    }
  });

  it('writes readable lines on a terminal, and with LOG_FORMAT=pretty anywhere', () => {
    for (const line of [logLine('auto', true), logLine('pretty', false)]) {
      expect(isJson(line)).toBe(false);
      expect(line).toContain('INFO');
      expect(line).toContain('Phase done');
      expect(line).toContain('draftDecision');
    }
  });
});
