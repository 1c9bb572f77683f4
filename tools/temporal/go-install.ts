import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { StartupError } from '../../src/process/startup';

/** The folder under which the project keeps what it builds with Go: ~/.cache/decision-backend. */
export function projectCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'decision-backend');
}

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface GoBuild {
  /** What is being built, for messages: "the Temporal server". */
  what: string;
  /** The folder the binaries end up in. */
  dir: string;
  /** Each package to `go install` at `version`, and the file name its binary gets in `dir`. */
  packages: { path: string; binary: string }[];
  version: string;
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
}

/**
 * `go install`s the packages into a scratch folder beside `dir`, then moves each binary into `dir`
 * under its name: an interrupted build leaves no half-written binary behind. Says what it does and
 * streams Go's output, since the first build takes minutes.
 */
export async function goInstall(build: GoBuild): Promise<void> {
  const env = build.env ?? process.env;
  const log = build.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  mkdirSync(build.dir, { recursive: true });
  const scratch = mkdtempSync(join(build.dir, '.build-'));
  const modules = build.packages.map((p) => `${p.path}@${build.version}`);
  log(`Building ${build.what} with Go: go install ${modules.join(' ')}`);
  log('This happens once and takes several minutes; later starts reuse the cached binaries.');
  const started = Date.now();
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn('go', ['install', ...modules], {
        env: { ...env, GOBIN: scratch },
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      child.on('error', (err: NodeJS.ErrnoException) => {
        reject(
          err.code === 'ENOENT'
            ? new StartupError(`Cannot build ${build.what}: \`go\` is not on PATH`, {
                hint: 'Install Go (https://go.dev/dl), or install the binaries yourself and name them in the environment (README).',
              })
            : err,
        );
      });
      child.on('exit', (code, signal) => {
        if (code === 0) resolve();
        else
          reject(
            new StartupError(`go install of ${build.what} failed (${signal ?? `exit ${code}`})`, {
              hint: "Go's own messages above say why: most often no network to the module proxy (GOPROXY), or a Go older than the module asks for (`go version`). Run the build again once that is fixed; it starts over cleanly.",
            }),
          );
      });
    });
    for (const { path, binary } of build.packages) {
      const built = join(scratch, path.split('/').at(-1)!);
      if (!isExecutable(built)) throw new Error(`go install finished but ${built} is missing`);
      renameSync(built, join(build.dir, binary));
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  log(`Built ${build.what} in ${Math.round((Date.now() - started) / 1000)} s: ${build.dir}`);
}
