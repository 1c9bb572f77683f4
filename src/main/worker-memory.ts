import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';

/**
 * V8's flags for the worker process. Left to itself V8 grows each young generation to 64 MB
 * a semi-space under the allocation rate of many phases in flight (in the main thread and in the
 * workflow thread, mostly empty space), and lets the old generation grow to about four times what
 * the last full collection kept. Capped at 4 MB and 25 %, a worker with 200 decisions in flight
 * held about half the memory, for the same CPU (docs/BENCHMARKS.md, tools/bench). Node takes them
 * on its command line, not in NODE_OPTIONS: Dockerfile.worker passes them, as the bench does.
 */
export const WORKER_NODE_FLAGS = ['--max-semi-space-size=4', '--heap-growing-percent=25'] as const;

/**
 * The worker process's environment beside its settings: glibc gives each thread that allocates
 * (the SDK's core runs several) an arena of its own, up to eight per core, and memory freed in
 * one is not reused by another; two arenas kept about 40 MB less resident under load.
 */
export const WORKER_PROCESS_ENV = { MALLOC_ARENA_MAX: '2' } as const;

/**
 * Applies WORKER_NODE_FLAGS to a worker started without them (`npm run worker`, `npm start`):
 * the old generation's growth, and the young generation of the workflow thread, which starts
 * later, follow. The main thread's young generation is sized as the process starts, so only the
 * command line sets that.
 */
export function applyWorkerHeapFlags(): void {
  for (const flag of WORKER_NODE_FLAGS) {
    if (!process.execArgv.includes(flag)) setFlagsFromString(flag);
  }
}

// Activity slots are sized by memory, not by CPU: a phase spends its time waiting on the model,
// and what many waiting phases cost is memory (tools/bench measures it; docs/BENCHMARKS.md).

/** An idle worker (measured about 220 MB: Node, the SDK's core, the workflow bundle), with room. */
export const WORKER_BASE_MB = 256;
/**
 * One phase in flight: its model call (the request, the streamed answer, its connection), its
 * activity in the SDK, and the garbage between collections. Measured: 200 decisions in flight
 * against the offline model added about 100 MB; 300 against a model server streaming over HTTP,
 * 141 calls open at once, added about 170 MB.
 */
export const PHASE_IN_FLIGHT_MB = 1;
/** One cached workflow, its modules shared (workflowBundleOptions): about 35 KB measured. */
export const CACHED_WORKFLOW_MB = 0.04;
/** The memory a worker is sized for when its cgroup sets no limit. */
export const DEFAULT_MEMORY_MB = 1024;
/** Bounds of the derived activity slots: the SDK's resource-based tuner stops at 2000 too. */
const SLOTS_MIN = 10;
const SLOTS_MAX = 2000;

/**
 * The memory limit of this process's cgroup in MB (v2 `memory.max`, else v1), as a container
 * runtime sets it; null when there is none.
 */
export function cgroupMemoryLimitMb(
  read = (path: string) => readFileSync(path, 'utf8'),
): number | null {
  for (const path of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    let text: string;
    try {
      text = read(path).trim();
    } catch {
      continue;
    }
    const bytes = Number(text);
    // `max` (v2) or a number near 2^63 (v1): no limit.
    if (!Number.isFinite(bytes) || bytes <= 0 || bytes >= 2 ** 60) return null;
    return Math.floor(bytes / 2 ** 20);
  }
  return null;
}

/**
 * Activity slots for a worker with `memoryMb`: what is left after an idle worker and its full
 * workflow cache, a phase in flight each, between 10 and 2000.
 */
export function activitySlots(memoryMb: number, cachedWorkflows: number): number {
  const left = memoryMb - WORKER_BASE_MB - cachedWorkflows * CACHED_WORKFLOW_MB;
  return Math.min(SLOTS_MAX, Math.max(SLOTS_MIN, Math.floor(left / PHASE_IN_FLIGHT_MB)));
}
