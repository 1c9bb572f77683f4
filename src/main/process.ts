import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { inspect } from 'node:util';
import { ConfigError } from '../config';
import { StartupError } from '../process/startup';

/**
 * A secret kept in a file (mode 600) across starts: the file's content when it exists, else one
 * made by `make` and written there first.
 */
export function keptSecret(file: string, make: () => string): string {
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${make()}\n`, { mode: 0o600 });
  }
  return readFileSync(file, 'utf8').trim();
}

/** What Node's own errors (a port in use, a refused connection) suggest trying. */
function hintFor(err: NodeJS.ErrnoException & { port?: number; address?: string }): string | null {
  switch (err.code) {
    case 'EADDRINUSE':
      return `Something already listens on ${err.address ?? 'that address'}${err.port ? ` port ${err.port}` : ''}: another npm start, API or worker, perhaps. Stop it (\`ss -ltnp\` names it) or give this process another port in its settings (README, Configuration).`;
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'ETIMEDOUT':
      return 'Check that the server it names runs and that the address in the settings is right (README, Configuration).';
    default:
      return null;
  }
}

/** What to try: a StartupError says; Node's own errors suggest it. */
function hintOf(err: unknown): string | null {
  if (err instanceof StartupError) return err.hint;
  return err instanceof Error ? hintFor(err) : null;
}

/** The messages of an error and its causes, each once: "a: b: c". */
function messageChain(err: unknown): string {
  const parts: string[] = [];
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    const message = e instanceof Error ? e.message : typeof e === 'string' ? e : inspect(e);
    if (message && !parts.some((part) => part.includes(message))) parts.push(message);
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(': ');
}

/**
 * How a start-up failure reads: one paragraph saying what failed, the last lines of the process
 * behind it, and what to try. A stack trace only with `withStack` (LOG_LEVEL=debug or trace), for
 * a failure that is a bug rather than a setting or a server.
 */
export function describeStartupFailure(err: unknown, withStack = false): string {
  if (err instanceof ConfigError) return err.message;
  const what = messageChain(err);
  const hint = hintOf(err);
  const lines = [`Start-up failed: ${what}`];
  if (err instanceof StartupError && err.lastLines.length > 0) {
    lines.push('Its last lines of output:', ...err.lastLines.map((line) => `  ${line}`));
  }
  lines.push(
    `Try: ${hint ?? 'the message above names what failed; LOG_LEVEL=debug prints where in the code.'}`,
  );
  if (withStack) {
    for (let e: unknown = err; e instanceof Error; e = e.cause)
      lines.push('', e.stack ?? e.message);
  }
  return lines.join('\n');
}

/** Signals this close together are one Ctrl-C, relayed by npm and tsx. */
const SAME_KEYPRESS_MS = 1500;

/**
 * Runs an entry point: a start-up error ends the process with a paragraph saying what failed and
 * what to try (`describeStartupFailure`), and SIGINT/SIGTERM call `stop` once; a second signal, a
 * moment later, exits at once. A signal during start-up stops what was started as soon as
 * start-up returns.
 */
export function runMain(start: () => Promise<() => Promise<void>>): void {
  let stopping = false;
  let pending: NodeJS.Signals | null = null;
  let stop: (() => Promise<void>) | null = null;
  let firstAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    // Ctrl-C in a terminal reaches the whole process group, and npm and tsx pass it on again:
    // one keypress arrives as two or three signals within moments. Only a later one forces exit.
    if ((stopping || pending) && Date.now() - firstAt < SAME_KEYPRESS_MS) return;
    firstAt ||= Date.now();
    if (stopping || pending) {
      process.stderr.write(`\n${signal} again: exiting without waiting\n`);
      process.exit(130);
    }
    if (!stop) {
      pending = signal;
      process.stderr.write(`\n${signal}: stopping once start-up finishes (again to exit now)…\n`);
      return;
    }
    stopping = true;
    process.stderr.write(`\n${signal}: shutting down…\n`);
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`Shutdown failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A closed terminal or a dropped SSH session: stop as for Ctrl-C.
  process.on('SIGHUP', onSignal);
  start().then(
    (stopFn) => {
      stop = stopFn;
      if (pending) {
        const signal = pending;
        pending = null;
        onSignal(signal);
      }
    },
    (err: unknown) => {
      // The settings may be what failed, so the level is read as it is written.
      const level = process.env.LOG_LEVEL?.trim().toLowerCase();
      const withStack = level === 'debug' || level === 'trace';
      process.stderr.write(`\n${describeStartupFailure(err, withStack)}\n`);
      process.exit(1);
    },
  );
}
