import { spawn, type ChildProcess } from 'node:child_process';

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

/**
 * Starts a local server process and resolves once `answers()` says it is up. Fails with the
 * process's last output when it exits first or does not answer in time; `onSpawnError` words a
 * failure to start it at all (a missing binary, say).
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
  timeoutMs: number;
  pollMs?: number;
  onSpawnError?: (err: NodeJS.ErrnoException) => Error;
  output?: (chunk: string) => void;
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
  const collect = (chunk: Buffer) => {
    const text = chunk.toString();
    tail = (tail + text).slice(-4000);
    options.output?.(text);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<never>((_, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => reject(options.onSpawnError?.(err) ?? err));
    child.once('exit', (code, signal) =>
      reject(
        new Error(
          `${options.name} exited (${signal ?? `code ${code}`}) before it answered:\n${tail}`,
        ),
      ),
    );
  });
  exited.catch(() => undefined);

  const stop = () => stopChild(child);

  const deadline = Date.now() + options.timeoutMs;
  try {
    while (!(await Promise.race([options.answers(), exited]))) {
      if (Date.now() > deadline)
        throw new Error(`${options.name} did not answer in time:\n${tail}`);
      await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 250));
    }
    // Another server already on the port answers too, while this one fails to bind and exits:
    // it must still be running a moment later.
    await Promise.race([new Promise((resolve) => setTimeout(resolve, 300)), exited]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { process: child, stop };
}
