import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait';

const root = resolve(__dirname, '../..');

/** Runs the fixture with node and tsx's loader (no tsx process to relay signals), once ready. */
async function start(stopMs: number) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/run-main-fixture.ts'], {
    cwd: root,
    env: { ...process.env, STOP_MS: String(stopMs) },
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  await waitFor('the fixture to be ready', () => (out.includes('ready') ? true : undefined));
  return { child, exited, output: () => out };
}

describe('runMain: signals', () => {
  it('takes one Ctrl-C relayed as three SIGINTs (terminal, npm, tsx) as one: a clean stop, exit 0', async () => {
    const run = await start(800);
    // Apart by moments, as the relays arrive (signals sent at the same instant merge into one).
    for (let i = 0; i < 3; i++) {
      run.child.kill('SIGINT');
      await new Promise((done) => setTimeout(done, 150));
    }
    expect(await run.exited).toBe(0);
    expect(run.output()).toContain('stopped cleanly');
    expect(run.output()).not.toContain('exiting without waiting');
  });

  it('exits at once on a second Ctrl-C pressed later, without waiting for the stop', async () => {
    const run = await start(10_000);
    run.child.kill('SIGINT');
    await new Promise((done) => setTimeout(done, 2000));
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(130);
    expect(run.output()).toContain('exiting without waiting');
    expect(run.output()).not.toContain('stopped cleanly');
  });
});
