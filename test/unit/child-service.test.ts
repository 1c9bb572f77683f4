import { describe, expect, it } from 'vitest';
import { StartupError } from '../../src/process/startup';
import { lastLines, startChildService } from '../../tools/process/child-service';

/** A node process running `script`, as startChildService's command and args. */
const node = (script: string) => ({ command: process.execPath, args: ['-e', script] });

describe('startChildService', () => {
  it('is ready when the process prints its ready line, though answers() never says so', async () => {
    const service = await startChildService({
      name: 'the fake server',
      ...node(
        "setTimeout(() => console.log('Server:  localhost:7233'), 300); setInterval(() => undefined, 60_000);",
      ),
      answers: () => Promise.resolve(false),
      readyLine: /^Server:\s+\S+:\d+\s*$/m,
      timeoutMs: 10_000,
    });
    expect(service.process.exitCode).toBeNull();
    await service.stop();
  });

  it('reports progress while it waits, with the last line, then fails with a StartupError', async () => {
    const heard: { waitedMs: number; lastLine: string | null }[] = [];
    const started = Date.now();
    const failed = await startChildService({
      name: 'the fake server',
      ...node("console.log('first line\\nstill booting'); setInterval(() => undefined, 60_000);"),
      answers: () => Promise.resolve(false),
      timeoutMs: 2100,
      progressEveryMs: 500,
      progress: (waitedMs, lastLine) => heard.push({ waitedMs, lastLine }),
      hint: 'Try it later.',
    }).then(
      () => null,
      (err: unknown) => err,
    );
    expect(failed).toBeInstanceOf(StartupError);
    const err = failed as StartupError;
    expect(err.message).toBe('the fake server did not answer within 2 s');
    expect(err.lastLines).toEqual(['first line', 'still booting']);
    expect(err.hint).toBe('Try it later.');
    expect(Date.now() - started).toBeGreaterThanOrEqual(2100);
    // Every half second (at least twice in 2.1 s, however busy the machine), never early.
    expect(heard.length).toBeGreaterThanOrEqual(2);
    heard.forEach((h, i) => {
      expect(h.lastLine).toBe('still booting');
      expect(h.waitedMs).toBeGreaterThanOrEqual((i + 1) * 500);
    });
  });

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
