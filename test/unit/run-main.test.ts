import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Connection } from '@temporalio/client';
import { describeStartupFailure } from '../../src/main/process';
import { connectToTemporal } from '../../src/process/startup';
import { freePort } from '../support/ports';
import { waitFor } from '../support/wait';

const root = resolve(__dirname, '../..');

/** Runs the fixture with node and tsx's loader (no tsx process to relay signals), once ready. */
async function start(stopMs: number) {
  const run = spawnFixture({ STOP_MS: String(stopMs) });
  await waitFor('the fixture to be ready', () =>
    run.output().includes('ready') ? true : undefined,
  );
  return run;
}

function spawnFixture(env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/run-main-fixture.ts'], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  return { child, exited, output: () => out };
}

/** A line of a printed stack trace. */
const STACK_LINE = /^ {4}at /m;

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

describe('runMain: a start-up that fails', () => {
  it('prints what failed, the last lines of a server that never answered, and what to try; no stack', async () => {
    const run = spawnFixture({ FAIL: 'never-answers' });
    expect(await run.exited).toBe(1);
    const out = run.output();
    expect(out).toContain('Start-up failed: the fake server did not answer within 2 s');
    // Its last eight lines, the long one cut short; not the ones before.
    for (let i = 13; i <= 19; i++) expect(out).toContain(`  fake server line ${i}\n`);
    expect(out).toMatch(/ {2}fake server line 20 x+…\n/);
    expect(out).not.toContain('fake server line 12\n');
    for (const line of out.split('\n')) expect(line.length).toBeLessThanOrEqual(250);
    expect(out).toContain('Try: Stop the other fake server.');
    expect(out).not.toMatch(STACK_LINE);
  });

  it('says how a server that exited before it answered ended, with its last lines; no stack', async () => {
    const run = spawnFixture({ FAIL: 'exits-early' });
    expect(await run.exited).toBe(1);
    const out = run.output();
    expect(out).toContain('Start-up failed: the fake server exited (code 3) before it answered');
    expect(out).toContain('  fake server line 19\n');
    expect(out).toContain('Try: Stop the other fake server.');
    expect(out).not.toMatch(STACK_LINE);
  });

  it('prints a mistake in the code as its message, and its stack only with LOG_LEVEL=debug', async () => {
    const plain = spawnFixture({ FAIL: 'bug' });
    expect(await plain.exited).toBe(1);
    expect(plain.output()).toContain(
      "Start-up failed: Cannot read properties of undefined (reading 'port')",
    );
    expect(plain.output()).toContain('Try: ');
    expect(plain.output()).not.toMatch(STACK_LINE);

    const debug = spawnFixture({ FAIL: 'bug', LOG_LEVEL: 'debug' });
    expect(await debug.exited).toBe(1);
    expect(debug.output()).toMatch(STACK_LINE);
    expect(debug.output()).toContain('run-main-fixture.ts');
  });

  it('names the port of an address in use and says what to try', async () => {
    const holder = createServer();
    await new Promise<void>((done) => holder.listen(0, '127.0.0.1', done));
    const { port } = holder.address() as { port: number };
    const second = createServer();
    const err = await new Promise<Error>((done) => {
      second.once('error', done);
      second.listen(port, '127.0.0.1');
    });
    holder.close();
    const text = describeStartupFailure(err);
    expect(text).toContain(
      `Start-up failed: listen EADDRINUSE: address already in use 127.0.0.1:${port}`,
    );
    expect(text).toContain(`Try: Something already listens on 127.0.0.1 port ${port}`);
    expect(text).not.toMatch(STACK_LINE);
  });

  it('says that Temporal did not answer, and where, when the Temporal client could not connect', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const err = await connectToTemporal(address, () =>
      Connection.connect({ address, connectTimeout: 300 }),
    ).then(
      () => new Error('connected to nothing'),
      (e: unknown) => e,
    );
    const text = describeStartupFailure(err);
    expect(text).toContain(
      `Start-up failed: Temporal did not answer at TEMPORAL_ADDRESS=${address}`,
    );
    // The client's own words stay, after what they mean.
    expect(text).toContain('Failed to connect before the deadline');
    expect(text).toContain('Try: Start Temporal there');
    expect(text).not.toMatch(STACK_LINE);
  });
});
