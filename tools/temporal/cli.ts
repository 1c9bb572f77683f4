import { delimiter, join } from 'node:path';
import { StartupError } from '../../src/process/startup';
import { goInstall, isExecutable, projectCacheDir } from './go-install';

/** The temporal CLI release the project builds when none is installed. */
export const TEMPORAL_CLI_VERSION = 'v1.5.1';
const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';

export function temporalCliCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(projectCacheDir(env), `temporal-cli-${TEMPORAL_CLI_VERSION}`);
}

/** Where the temporal CLI is: TEMPORAL_CLI_PATH, then PATH, then the project's cache; or null. */
export function findTemporalCli(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.TEMPORAL_CLI_PATH) {
    if (!isExecutable(env.TEMPORAL_CLI_PATH)) {
      throw new StartupError(
        `TEMPORAL_CLI_PATH=${env.TEMPORAL_CLI_PATH} is not an executable file`,
        {
          hint: 'Name the temporal binary there, or unset TEMPORAL_CLI_PATH to use the one on PATH or build it.',
        },
      );
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
  const found = findTemporalCli(env);
  if (found) return found;
  const dir = temporalCliCacheDir(env);
  options.log?.(`temporal CLI not found (TEMPORAL_CLI_PATH, PATH, ${dir}).`);
  await goInstall({
    what: `the temporal CLI ${TEMPORAL_CLI_VERSION}`,
    dir,
    packages: [{ path: TEMPORAL_CLI_MODULE, binary: 'temporal' }],
    version: TEMPORAL_CLI_VERSION,
    env,
    log: options.log,
  });
  return join(dir, 'temporal');
}
