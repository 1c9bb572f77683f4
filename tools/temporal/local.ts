import { existsSync } from 'node:fs';
import type { TemporalDevSettings } from '../settings';
import { findOrBuildTemporalCli } from './cli';
import { startDevServer, temporalAnswers, type DevServer } from './dev-server';

export interface LocalTemporal {
  address: string;
  uiUrl: string | null;
  /** Null when a server was already running at TEMPORAL_ADDRESS. */
  server: DevServer | null;
  stop(): Promise<void>;
}

/**
 * Uses the Temporal server at TEMPORAL_ADDRESS when one answers; otherwise finds (or builds) the
 * temporal CLI and starts a dev server there, with history in a SQLite file and the Web UI on.
 * `detached` runs it in a process group of its own (see `DevServerOptions`).
 */
export async function ensureLocalTemporal(
  config: TemporalDevSettings,
  log: (line: string) => void,
  options: { detached?: boolean } = {},
): Promise<LocalTemporal> {
  if (await temporalAnswers(config.TEMPORAL_ADDRESS)) {
    log(`Using the Temporal server already answering at ${config.TEMPORAL_ADDRESS}`);
    return { address: config.TEMPORAL_ADDRESS, uiUrl: null, server: null, stop: async () => {} };
  }
  const cliPath = await findOrBuildTemporalCli({ log });
  const firstStart = !existsSync(config.TEMPORAL_DB_FILE);
  log(
    `Starting the Temporal dev server (${cliPath}), history in ${config.TEMPORAL_DB_FILE}${firstStart ? ' (first start: it creates that file)' : ''}; waiting for it to answer at ${config.TEMPORAL_ADDRESS} …`,
  );
  const started = Date.now();
  const server = await startDevServer({
    cliPath,
    address: config.TEMPORAL_ADDRESS,
    namespace: config.TEMPORAL_NAMESPACE,
    uiPort: config.TEMPORAL_UI_PORT,
    dbFile: config.TEMPORAL_DB_FILE,
    detached: options.detached,
    log,
  });
  log(
    `Started the Temporal dev server (pid ${server.process.pid}) at ${server.address} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  return { address: server.address, uiUrl: server.uiUrl, server, stop: () => server.stop() };
}
