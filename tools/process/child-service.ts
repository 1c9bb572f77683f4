import { spawn, type ChildProcess } from 'node:child_process';
import { StartupError } from '../../src/process/startup';

export interface ChildService {
  process: ChildProcess;
  /** SIGTERM, then SIGKILL if it has not exited within ten seconds. */
  stop: () => Promise<void>;
}

/**
 * Services started in process groups of their own. The terminal's signals do not reach them, so
 * should this process end without stopping them (a forced exit, an uncaught error), they are
 * killed as it exits rather than left running.
 */
const detachedChildren = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of detachedChildren) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
});

/** SIGTERM, then SIGKILL if the process has not exited within `killAfterMs`. */
export async function stopChild(child: ChildProcess, killAfterMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  await gone;
  clearTimeout(timer);
}

/** How many of a service's last lines of output a failure shows, and how much of each. */
const LAST_LINES = 8;
const LINE_CHARS = 240;

/** The last few non-empty lines of `text`, each cut to a readable length. */
export function lastLines(text: string, count = LAST_LINES): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trimEnd())
    .filter((line) => line.trim() !== '')
    .slice(-count)
    .map((line) => (line.length > LINE_CHARS ? `${line.slice(0, LINE_CHARS - 1)}…` : line));
}

/**
 * Starts a local server process and resolves once it is ready: `answers()` says so, or its output
 * shows `readyLine`. Fails with a `StartupError` (the process's last lines and `hint`) when it exits
 * first or is not ready in time; `onSpawnError` words a failure to start it at all (a missing
 * binary, say). While it waits, `progress` hears every `progressEveryMs` how long it has waited.
 */
export async function startChildService(options: {
  name: string;
  command: string;
  args: string[];
  /** The whole environment of the process; by default this process's. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /**
   * In a process group of its own, so that Ctrl-C in a terminal reaches only its parent, which
   * then stops its services in order (clients first, servers last).
   */
  detached?: boolean;
  answers: () => Promise<boolean>;
  /** A line the process prints once it is ready, as `answers()` would tell. */
  readyLine?: RegExp;
  timeoutMs: number;
  pollMs?: number;
  /** What to try when it does not start: a sentence for the person who ran this. */
  hint?: string;
  onSpawnError?: (err: NodeJS.ErrnoException) => Error;
  output?: (chunk: string) => void;
  progress?: (waitedMs: number, lastLine: string | null) => void;
  progressEveryMs?: number;
}): Promise<ChildService> {
  const child = spawn(options.command, options.args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: options.env,
    cwd: options.cwd,
    detached: options.detached,
  });
  if (options.detached && child.pid) {
    detachedChildren.add(child);
    child.once('exit', () => detachedChildren.delete(child));
  }
  let tail = '';
  let saidReady = false;
  const collect = (chunk: Buffer) => {
    const text = chunk.toString();
    tail = (tail + text).slice(-8000);
    if (options.readyLine?.test(tail)) saidReady = true;
    options.output?.(text);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const failure = (message: string, cause?: unknown) =>
    new StartupError(message, { lastLines: lastLines(tail), hint: options.hint, cause });
  // Why it ended, once it has: a probe that settles at once would otherwise win every race.
  let ended = null as Error | null;
  const exited = new Promise<never>((_, reject) => {
    const end = (err: Error) => reject((ended ??= err));
    child.once('error', (err: NodeJS.ErrnoException) =>
      end(
        options.onSpawnError?.(err) ??
          failure(`${options.name} could not be started (${options.command}): ${err.message}`, err),
      ),
    );
    child.once('exit', (code, signal) =>
      end(failure(`${options.name} exited (${signal ?? `code ${code}`}) before it answered`)),
    );
  });
  exited.catch(() => undefined);

  const stop = () => stopChild(child);

  const started = Date.now();
  const everyMs = options.progressEveryMs ?? 10_000;
  let nextProgress = started + everyMs;
  try {
    while (!saidReady && !(await Promise.race([options.answers(), exited]))) {
      if (ended) throw ended;
      const now = Date.now();
      if (now - started > options.timeoutMs) {
        throw failure(
          `${options.name} did not answer within ${Math.round(options.timeoutMs / 1000)} s`,
        );
      }
      if (options.progress && now >= nextProgress) {
        nextProgress += everyMs;
        options.progress(now - started, lastLines(tail, 1)[0] ?? null);
      }
      await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 250));
    }
    // Another server already on the port answers too, while this one fails to bind and exits:
    // it must still be running a moment later.
    await Promise.race([new Promise((resolve) => setTimeout(resolve, 300)), exited]);
    if (ended) throw ended;
  } catch (err) {
    await stop();
    throw err;
  }
  return { process: child, stop };
}
