/**
 * Passes errors on to `report` at most once every `everyMs` (an outage fails many calls at
 * once): `more` is how many came since the last one passed on and were not.
 */
export function reportEvery(
  everyMs: number,
  report: ((err: unknown, more: number) => void) | undefined,
  now: () => number = Date.now,
): (err: unknown) => void {
  let last = -Infinity;
  let more = 0;
  return (err) => {
    const at = now();
    if (at - last < everyMs) {
      more += 1;
      return;
    }
    report?.(err, more);
    last = at;
    more = 0;
  };
}
