import { join } from 'node:path';
import { findOrBuildTemporalCli } from '../temporal/cli';
import { goInstall, isExecutable, projectCacheDir } from '../temporal/go-install';

/** The Temporal server release the cluster runs: the one the temporal CLI v1.5.1 embeds. */
export const TEMPORAL_SERVER_VERSION = 'v1.29.1';
/** The Web UI server release: the one the temporal CLI v1.5.1 embeds. */
export const TEMPORAL_UI_SERVER_VERSION = 'v2.42.1';

export interface ClusterBinaries {
  /** temporal-server: frontend, history, matching and worker services. */
  server: string;
  /** temporal-sql-tool: creates and upgrades the PostgreSQL schemas. */
  sqlTool: string;
  /** The Temporal Web UI server, with the UI built in. */
  uiServer: string;
  /** The temporal CLI, which temporal/setup.sh uses to create the namespace and search attributes. */
  temporalCli: string;
}

interface Binary {
  name: keyof Omit<ClusterBinaries, 'temporalCli'>;
  /** An environment variable that names an installed binary instead of the cached build. */
  envVar: string;
  file: string;
}

const BUILDS = [
  {
    what: `the Temporal server ${TEMPORAL_SERVER_VERSION} and its SQL tool`,
    version: TEMPORAL_SERVER_VERSION,
    dirName: `temporal-server-${TEMPORAL_SERVER_VERSION}`,
    packages: [
      { path: 'go.temporal.io/server/cmd/server', binary: 'temporal-server' },
      { path: 'go.temporal.io/server/cmd/tools/sql', binary: 'temporal-sql-tool' },
    ],
    binaries: [
      { name: 'server', envVar: 'TEMPORAL_SERVER_PATH', file: 'temporal-server' },
      { name: 'sqlTool', envVar: 'TEMPORAL_SQL_TOOL_PATH', file: 'temporal-sql-tool' },
    ],
  },
  {
    what: `the Temporal Web UI server ${TEMPORAL_UI_SERVER_VERSION}`,
    version: TEMPORAL_UI_SERVER_VERSION,
    dirName: `temporal-ui-server-${TEMPORAL_UI_SERVER_VERSION}`,
    packages: [{ path: 'github.com/temporalio/ui-server/v2/cmd/server', binary: 'ui-server' }],
    binaries: [{ name: 'uiServer', envVar: 'TEMPORAL_UI_SERVER_PATH', file: 'ui-server' }],
  },
] satisfies {
  what: string;
  version: string;
  dirName: string;
  packages: { path: string; binary: string }[];
  binaries: Binary[];
}[];

/**
 * The cluster's binaries: each from its environment variable when set, else from the project's
 * cache beside the temporal CLI, built there with Go when missing (once; minutes).
 */
export async function findOrBuildClusterBinaries(
  options: { env?: NodeJS.ProcessEnv; log?: (line: string) => void } = {},
): Promise<ClusterBinaries> {
  const env = options.env ?? process.env;
  const found: Partial<ClusterBinaries> = {
    temporalCli: await findOrBuildTemporalCli(options),
  };
  for (const build of BUILDS) {
    const dir = join(projectCacheDir(env), build.dirName);
    let missing = false;
    for (const binary of build.binaries) {
      const named = env[binary.envVar];
      if (named && !isExecutable(named)) {
        throw new Error(`${binary.envVar}=${named} is not an executable file`);
      }
      found[binary.name] = named || join(dir, binary.file);
      if (!named && !isExecutable(found[binary.name]!)) missing = true;
    }
    if (missing) await goInstall({ ...build, dir, env, log: options.log });
  }
  return found as ClusterBinaries;
}
