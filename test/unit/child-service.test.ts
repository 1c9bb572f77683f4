import { describe, expect, it } from 'vitest';
import { StartupError } from '../../src/main/process';
import { lastLines, startChildService } from '../../tools/process/child-service';

/** A node process running `script`, as startChildService's command and args. */
const node = (script: string) => ({ command: process.execPath, args: ['-e', script] });

describe('startChildService', () => {
  it('fails with the exit code and the last lines when the process ends before it answers', async () => {
    const failed = await startChildService({
      name: 'the fake server',
      ...node("console.error('bind: address already in use'); process.exit(2);"),
      answers: () => Promise.resolve(false),
      timeoutMs: 10_000,
    }).then(
      () => null,
      (err: unknown) => err,
    );
    expect(failed).toBeInstanceOf(StartupError);
    expect((failed as StartupError).message).toBe(
      'the fake server exited (code 2) before it answered',
    );
    expect((failed as StartupError).lastLines).toEqual(['bind: address already in use']);
  });
});

describe('lastLines', () => {
  it('keeps the last non-empty lines, each cut to 240 characters', () => {
    const text = ['a', '', 'b', 'c'.repeat(300), 'd', ''].join('\n');
    expect(lastLines(text, 3)).toEqual(['b', `${'c'.repeat(239)}…`, 'd']);
  });
});
