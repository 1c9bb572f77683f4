import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { waitFor } from './wait';

export const root = resolve(__dirname, '../..');

/** Runs an entry point the way `npm run api` / `npm run worker` do, keeping its output. */
export function startRole(entry: string, env: NodeJS.ProcessEnv) {
  const child = spawn(resolve(root, 'node_modules/.bin/tsx'), [entry], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return { child, output: () => output };
}

/**
 * Runs an entry point as a person runs `npm start` or `npm run cluster` in a terminal: in a
 * process group of its own (a signal to the group is what Ctrl-C sends), its output kept.
 * `summary()` waits until it has printed its summary, which ends "Ctrl-C stops everything".
 */
export function startInOwnGroup(entry: string, env: NodeJS.ProcessEnv) {
  const child = spawn(resolve(root, 'node_modules/.bin/tsx'), [entry], {
    cwd: root,
    env,
    detached: true,
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  const summary = (timeoutMs: number) =>
    waitFor(
      'the summary',
      () => (output.includes('Ctrl-C stops everything') ? true : undefined),
      timeoutMs,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\noutput:\n${output}`);
    });
  return { child, output: () => output, exited, summary };
}

/** SIGTERM to tsx, which passes it on once to the node process it runs. */
export function stopRole(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((done) => {
    child.once('exit', (code) => done(code));
    child.kill('SIGTERM');
  });
}

/**
 * Kills a role as a crash would: SIGKILL to the node process itself (its pid is on every JSON
 * log line; tsx runs it in a process group of its own and cannot pass SIGKILL on), then to tsx.
 */
export async function crashRole(role: {
  child: ChildProcess;
  output: () => string;
}): Promise<void> {
  const pid = Number(/"pid":(\d+)/.exec(role.output())?.[1]);
  if (!pid) throw new Error("No pid in the role's log output");
  process.kill(pid, 'SIGKILL');
  const gone = new Promise<void>((done) => role.child.once('exit', () => done()));
  role.child.kill('SIGKILL');
  await gone;
}

/** A workflow bundle made with `npm run bundle:workflows`, as the worker image makes it. */
export function prebuiltBundle(): string {
  const path = join(mkdtempSync(join(tmpdir(), 'bundle-')), 'workflow-bundle.js');
  const bundled = spawnSync(
    resolve(root, 'node_modules/.bin/tsx'),
    ['src/cli/bundle-workflows.ts', path],
    { cwd: root, encoding: 'utf8' },
  );
  if (bundled.status !== 0) throw new Error(`bundle:workflows failed:\n${bundled.stderr}`);
  return path;
}
