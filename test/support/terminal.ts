import { Writable } from 'node:stream';
import { Terminal } from '@xterm/headless';
import { waitFor } from './wait';

/**
 * A terminal for a test's standard output: what is written is parsed as xterm parses it (cursor
 * moves, erasures, wide characters), and the screen is read back as rows of text. Like a tty, a
 * newline also returns the cursor to the line's start.
 */
export function virtualTerminal(cols: number) {
  const term = new Terminal({
    cols,
    rows: 24,
    scrollback: 1000,
    convertEol: true,
    allowProposedApi: true,
  });
  const chunks: string[] = [];
  const stream = Object.assign(
    new Writable({
      write(chunk: Buffer | string, _encoding, callback) {
        const text = chunk.toString();
        chunks.push(text);
        term.write(text);
        callback();
      },
    }),
    { isTTY: true, columns: cols, text: () => chunks.join('') },
  );
  const lines = async () => {
    await new Promise<void>((resolve) => term.write('', resolve));
    const buffer = term.buffer.active;
    return Array.from({ length: buffer.length }, (_, y) => buffer.getLine(y)!);
  };
  /** The rows from the top of the scrollback to the last that is not empty. */
  const screen = async () => {
    const rows = (await lines()).map((line) => line.translateToString(true));
    while (rows.at(-1) === '') rows.pop();
    return rows;
  };
  return {
    /** Everything written to it, escape codes and all, is its `text()`. */
    stream,
    screen,
    /** The columns each row of the screen fills, up to its last character. */
    async widths(): Promise<number[]> {
      const rows = await screen();
      return (await lines()).slice(0, rows.length).map((line) => {
        for (let x = cols - 1; x >= 0; x--) {
          const cell = line.getCell(x);
          if (cell && cell.getChars() !== '') return x + cell.getWidth();
        }
        return 0;
      });
    },
    /** The screen once `check` holds, or as it is after `timeoutMs`: a test asserts on it. */
    async when(check: (rows: string[]) => boolean, timeoutMs = 3000): Promise<string[]> {
      try {
        return await waitFor(
          'the screen',
          async () => {
            const rows = await screen();
            return check(rows) ? rows : undefined;
          },
          timeoutMs,
          { intervalMs: 10 },
        );
      } catch {
        return screen();
      }
    },
  };
}
