/**
 * One instance of something a global setup starts, shared by every project (tier) that lists
 * that setup: `npm test` runs the tiers in one vitest process, and each project runs its own
 * global setups, so without this the integration and system tiers would each start a Temporal
 * server and bundle the workflows. The last project to tear down stops it.
 */
interface Entry {
  value: Promise<unknown>;
  users: number;
  stop: () => Promise<void>;
}

// Global setups of different projects are loaded as different module instances; the process
// (vitest's main one) is what they share.
const key = Symbol.for('decision-backend.test.shared-setup');
const registry = ((globalThis as Record<symbol, unknown>)[key] ??= new Map()) as Map<string, Entry>;

export async function acquire<T>(
  name: string,
  start: () => Promise<{ value: T; stop: () => Promise<void> }>,
): Promise<{ value: T; release: () => Promise<void> }> {
  let entry = registry.get(name);
  if (!entry) {
    const created: Entry = { value: Promise.resolve(), users: 0, stop: () => Promise.resolve() };
    created.value = start().then(({ value, stop }) => {
      created.stop = stop;
      return value;
    });
    // A start that failed is not kept: each project reports its own failure.
    created.value.catch(() => registry.delete(name));
    registry.set(name, created);
    entry = created;
  }
  const value = (await entry.value) as T;
  entry.users += 1;
  const used = entry;
  let released = false;
  return {
    value,
    async release() {
      if (released) return;
      released = true;
      used.users -= 1;
      if (used.users > 0) return;
      registry.delete(name);
      await used.stop();
    },
  };
}
