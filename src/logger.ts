import pino, { type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { ApiConfig } from './config';

/** How log lines are written: `auto` is readable on a terminal and JSON anywhere else. */
export type LogFormat = ApiConfig['LOG_FORMAT'];

/**
 * One logger per process; every role gets it passed in. JSON lines for log collectors, pipes and
 * files; on a terminal (or with LOG_FORMAT=pretty) one readable line per entry, the same fields.
 */
export function createLogger(
  level: string,
  name: string,
  format: LogFormat = 'auto',
  out: DestinationStream & { isTTY?: boolean } = process.stdout,
): Logger {
  const readable = format === 'pretty' || (format === 'auto' && out.isTTY === true);
  if (!readable) return pino({ level, name }, out);
  return pino(
    { level, name },
    pretty({ destination: out, colorize: out.isTTY === true, sync: true }),
  );
}
