/**
 * Slots counted per key in this process (streams per principal, deliveries per principal): a
 * key holds at most `limit` at once, and a key with none held takes no memory.
 */
export class Slots {
  private readonly held = new Map<string, number>();

  /** How many of `key`'s slots are held. */
  count(key: string): number {
    return this.held.get(key) ?? 0;
  }

  /**
   * Takes one of `key`'s slots, if fewer than `limit` are held: the function that gives it back
   * (safe to call more than once), or null when there is none to take. Synchronous, so that
   * parallel callers cannot all pass the check.
   */
  tryTake(key: string, limit: number): (() => void) | null {
    const count = this.held.get(key) ?? 0;
    if (count >= limit) return null;
    this.held.set(key, count + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.held.get(key) ?? 1) - 1;
      if (left > 0) this.held.set(key, left);
      else this.held.delete(key);
    };
  }
}
