import pino, { type Logger } from 'pino';

/** One JSON logger per process; every role gets it passed in. */
export function createLogger(level: string, name: string): Logger {
  return pino({ level, name });
}
