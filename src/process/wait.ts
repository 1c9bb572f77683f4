/**
 * Polls until `check` returns a value that is not undefined, or fails after `timeoutMs`. An
 * error `check` throws counts as "not yet" when `retryable` says so (by default every error), and
 * the timeout's message ends with the last one.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
  options: { intervalMs?: number; retryable?: (err: unknown) => boolean } = {},
): Promise<T> {
  const { intervalMs = 100, retryable = () => true } = options;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      if (!retryable(err)) throw err;
      last = err;
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? `: ${last.message}` : '';
      throw new Error(`Timed out waiting for ${what}${why}`, { cause: last });
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
