import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';

/** The temporal CLI release the project builds when none is installed. */
export const TEMPORAL_CLI_VERSION = 'v1.5.1';
const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';

export function temporalCliCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'decision-backend', `temporal-cli-${TEMPORAL_CLI_VERSION}`);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Where the temporal CLI is: TEMPORAL_CLI_PATH, then PATH, then the project's cache; or null. */
export function findTemporalCli(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.TEMPORAL_CLI_PATH) {
    if (!isExecutable(env.TEMPORAL_CLI_PATH)) {
      throw new Error(`TEMPORAL_CLI_PATH=${env.TEMPORAL_CLI_PATH} is not an executable file`);
    }
    return env.TEMPORAL_CLI_PATH;
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir && isExecutable(join(dir, 'temporal'))) return join(dir, 'temporal');
  }
  const cached = join(temporalCliCacheDir(env), 'temporal');
  return isExecutable(cached) ? cached : null;
}

/**
 * Finds the temporal CLI or builds it from its Go module into the project's cache folder. The
 * build takes minutes the first time, so it says what it is doing and streams Go's output.
 */
export async function findOrBuildTemporalCli(
  options: { env?: NodeJS.ProcessEnv; log?: (line: string) => void } = {},
): Promise<string> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const found = findTemporalCli(env);
  if (found) return found;

  const dir = temporalCliCacheDir(env);
  mkdirSync(dir, { recursive: true });
  log(
    `temporal CLI not found (TEMPORAL_CLI_PATH, PATH, ${dir}); building ${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION} with Go.`,
  );
  log('This happens once and takes several minutes; later starts reuse the cached binary.');
  const started = Date.now();
  await new Promise<void>((resolve, reject) => {
    const child = spawn('go', ['install', `${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}`], {
      env: { ...env, GOBIN: dir },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'ENOENT'
          ? new Error(
              'Cannot build the temporal CLI: `go` is not on PATH. Install Go, or install the temporal CLI and put it on PATH or in TEMPORAL_CLI_PATH.',
            )
          : err,
      );
    });
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`go install of the temporal CLI failed (${signal ?? `exit ${code}`})`));
    });
  });
  const built = join(dir, 'temporal');
  if (!isExecutable(built)) throw new Error(`go install finished but ${built} is missing`);
  log(`Built the temporal CLI in ${Math.round((Date.now() - started) / 1000)} s: ${built}`);
  return built;
}
