import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Connection } from '@temporalio/client';
import { z } from 'zod';
import { startChildService } from '../process/child-service';
import { portAccepts } from '../process/ports';
import { searchAttributeFlags } from '../../src/temporal/search-attributes';

export interface DevServerOptions {
  cliPath: string;
  /** host:port for the gRPC frontend. */
  address: string;
  namespace: string;
  /** Web UI port; null runs headless. */
  uiPort: number | null;
  /** SQLite file that keeps history across restarts; null keeps it in memory. */
  dbFile: string | null;
  startTimeoutMs?: number;
  /** Where the server's own output goes; by default it is kept only for error messages. */
  output?: (chunk: string) => void;
  /** Told every ten seconds while the server has not answered yet, with its latest line when new. */
  log?: (line: string) => void;
  /**
   * In a process group of its own: a terminal's Ctrl-C then reaches only its parent, which stops
   * it after the workers that use it.
   */
  detached?: boolean;
  /** Flags after the settings file's: a later `--dynamic-config-value` of a key wins. */
  extraArgs?: string[];
}

const DevServerSettingsSchema = z.object({
  logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('warn'),
  dynamicConfig: z.record(z.string(), z.json()).default({}),
});

export const DEV_SERVER_SETTINGS_FILE = resolve(__dirname, '../../temporal/dev-server.json');

/** The dev server's settings from temporal/dev-server.json, as start-dev flags. */
export function devServerSettingsFlags(file = DEV_SERVER_SETTINGS_FILE): string[] {
  const parsed = DevServerSettingsSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success) throw new Error(`${file}: ${z.prettifyError(parsed.error)}`);
  const { logLevel, dynamicConfig } = parsed.data;
  return [
    '--log-level',
    logLevel,
    ...Object.entries(dynamicConfig).flatMap(([key, value]) => [
      '--dynamic-config-value',
      `${key}=${JSON.stringify(value)}`,
    ]),
  ];
}

export interface DevServer {
  address: string;
  uiUrl: string | null;
  process: ChildProcess;
  stop(): Promise<void>;
}

export function splitAddress(address: string): { host: string; port: number } {
  const match = /^(.*):(\d+)$/.exec(address);
  if (!match) throw new Error(`Temporal address "${address}" is not host:port`);
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port: Number(match[2]) };
}

/** True when a Temporal frontend answers at the address within the timeout. */
export async function temporalAnswers(address: string, timeoutMs = 2000): Promise<boolean> {
  const { host, port } = splitAddress(address);
  // Nothing listens yet: no gRPC channel, and no wait for the deadline.
  if (!(await portAccepts(host, port, timeoutMs))) return false;
  // A channel of its own, closed whatever happens. `Connection.connect` leaves its channel open
  // when it fails, and gRPC shares one subchannel per address among channels: its reconnect
  // backoff, grown by the failed probes before a server came up (up to two minutes), then hid
  // the server from every later probe. The first `npm start` after the CLI's build timed out so.
  const connection = Connection.lazy({
    address,
    connectTimeout: timeoutMs,
    channelArgs: { 'grpc.use_local_subchannel_pool': 1 },
  });
  try {
    await connection.ensureConnected();
    return true;
  } catch {
    return false;
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/** Starts `temporal server start-dev` and resolves once its frontend answers. */
export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  const { host, port } = splitAddress(options.address);
  const args = [
    'server',
    'start-dev',
    '--ip',
    host,
    '--port',
    String(port),
    '--namespace',
    options.namespace,
    ...devServerSettingsFlags(),
    ...searchAttributeFlags(),
    ...(options.extraArgs ?? []),
  ];
  if (options.uiPort === null) args.push('--headless');
  else args.push('--ui-port', String(options.uiPort));
  if (options.dbFile) {
    mkdirSync(dirname(options.dbFile), { recursive: true });
    args.push('--db-filename', options.dbFile);
  }

  const log = options.log;
  let reported: string | null = null;
  const service = await startChildService({
    name: `the Temporal dev server at ${options.address}`,
    command: options.cliPath,
    args,
    answers: () => temporalAnswers(options.address, 1000),
    // What `start-dev` prints once every service in it has started.
    readyLine: /^Server:\s+\S+:\d+\s*$/m,
    timeoutMs: options.startTimeoutMs ?? 60_000,
    hint: [
      `A port in use (${port} for gRPC${options.uiPort === null ? '' : `, ${options.uiPort} for the Web UI`}): stop what holds it (\`ss -ltnp\` names it) or set TEMPORAL_ADDRESS${options.uiPort === null ? '' : ' / TEMPORAL_UI_PORT'}.`,
      options.dbFile
        ? `A damaged ${options.dbFile}: move it aside (its decisions go with it).`
        : null,
      'Or point TEMPORAL_ADDRESS at a Temporal server that runs.',
    ]
      .filter(Boolean)
      .join(' '),
    output: options.output,
    detached: options.detached,
    progress:
      log &&
      ((waitedMs, lastLine) => {
        // Its last line, when it has printed one since the last report.
        const news =
          lastLine !== null && lastLine !== reported ? `; its last line: ${lastLine}` : '';
        reported = lastLine;
        log(`  still waiting for it after ${Math.round(waitedMs / 1000)} s${news}`);
      }),
  });
  return {
    address: options.address,
    uiUrl: options.uiPort === null ? null : `http://${host}:${options.uiPort}`,
    process: service.process,
    stop: service.stop,
  };
}
