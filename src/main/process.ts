import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError } from '../config';

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

/** Signals this close together are one Ctrl-C, relayed by npm and tsx. */
const SAME_KEYPRESS_MS = 1500;

/**
 * Runs an entry point: a start-up error ends the process with its message (not a stack for a bad
 * setting), and SIGINT/SIGTERM call `stop` once; a second signal, a moment later, exits at once.
 * A signal during start-up stops what was started as soon as start-up returns.
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
      process.stderr.write(
        `${err instanceof ConfigError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exit(1);
    },
  );
}
