/**
 * A failure to start that a person can act on: what failed (the message), the last lines of the
 * process behind it, and what to try. `runMain` prints it as a paragraph, not a stack trace.
 */
export class StartupError extends Error {
  readonly lastLines: string[];
  readonly hint: string | null;

  constructor(
    message: string,
    details: { lastLines?: string[]; hint?: string; cause?: unknown } = {},
  ) {
    super(message, { cause: details.cause });
    this.name = 'StartupError';
    this.lastLines = details.lastLines ?? [];
    this.hint = details.hint ?? null;
  }
}

/**
 * Connects to Temporal at start-up: a failure is a StartupError naming TEMPORAL_ADDRESS and what
 * to run, the client's own words kept as its cause.
 */
export async function connectToTemporal<T>(address: string, connect: () => Promise<T>): Promise<T> {
  try {
    return await connect();
  } catch (err) {
    throw new StartupError(`Temporal did not answer at TEMPORAL_ADDRESS=${address}`, {
      cause: err,
      hint: 'Start Temporal there (`npm run temporal` starts a dev server; `npm start` starts one with everything else), or point TEMPORAL_ADDRESS at a Temporal server that runs.',
    });
  }
}
