import { readdirSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { defaultPayloadConverter } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import { PHASE_NAMES } from '../../src/domain/phases';

/** The machine figures are measured on, as results record it. */
export interface Machine {
  cores: number;
  cpu: string;
  memory_gib: number;
}

export function thisMachine(): Machine {
  return {
    cores: cpus().length,
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    memory_gib: Math.round(totalmem() / 2 ** 30),
  };
}

/** How a machine reads in a report: `2 cores (model), 24 GiB`. */
export function describeMachine(m: Machine): string {
  return `${m.cores} cores (${m.cpu}), ${m.memory_gib} GiB`;
}

/** The value below which `p` of the sorted samples fall (nearest rank). */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** The most of `times` (ms) that any span of `windowMs`, wherever it starts, holds. */
export function mostInWindow(times: readonly number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[j]! <= sorted[i]! - windowMs) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

export function mean(samples: readonly number[]): number {
  return samples.length === 0 ? NaN : samples.reduce((a, b) => a + b, 0) / samples.length;
}

export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** The median and the 99th percentile of the samples, rounded. */
export function spread(samples: readonly number[], digits = 1): { p50: number; p99: number } {
  return {
    p50: round(percentile(samples, 50), digits),
    p99: round(percentile(samples, 99), digits),
  };
}

/**
 * Runs `run` `count` times with `concurrency` of them in flight at any time (a closed loop), each
 * given its index; the seconds it took.
 */
export async function closedLoop(
  concurrency: number,
  count: number,
  run: (index: number) => Promise<void>,
): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await run(next++);
    }),
  );
  return (performance.now() - started) / 1000;
}

// Linux counts CPU time in clock ticks of 10 ms (USER_HZ = 100).
const TICK_MS = 10;

/** CPU time (user + system) and resident memory of a process, from /proc. */
export function processUsage(pid: number): { cpuMs: number; rssMb: number } {
  // Fields after the command name, which sits in parentheses and may hold spaces.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuMs = (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuMs, rssMb: rss ? Number(rss[1]) / 1024 : NaN };
}

/**
 * Reads the processes' CPU time now; the function it returns says how much each has used since,
 * per unit of work done meanwhile.
 */
export function cpuMeter<K extends string>(pids: Record<K, number>) {
  const keys = Object.keys(pids) as K[];
  const before = Object.fromEntries(keys.map((k) => [k, processUsage(pids[k]).cpuMs])) as Record<
    K,
    number
  >;
  return (units: number, digits = 1): Record<K, number> =>
    Object.fromEntries(
      keys.map((k) => [k, round((processUsage(pids[k]).cpuMs - before[k]) / units, digits)]),
    ) as Record<K, number>;
}

/**
 * CPU time the whole machine has spent busy (every process, the kernel's too) and in all, from
 * /proc/stat: what else ran beside the bench shows as the difference.
 */
export function machineCpuMs(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest time is in user).
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line
    .trim()
    .split(/\s+/)
    .slice(1, 9)
    .map(Number) as [number, number, number, number, number, number, number, number];
  const busy = user + nice + system + irq + softirq + steal;
  return { busy: busy * TICK_MS, total: (busy + idle + iowait) * TICK_MS };
}

/**
 * CPU time of every PostgreSQL process on this machine (the postmaster and its backends): the
 * server's pool keeps its connections open, so their backends live through a run.
 */
export function postgresCpuMs(): number {
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (!stat.includes('(postgres)')) continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += (Number(fields[11]) + Number(fields[12])) * TICK_MS;
    } catch {
      // The process ended while the list was read.
    }
  }
  return total;
}

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
const EventType = {
  WORKFLOW_TASK_STARTED: 6,
  WORKFLOW_TASK_COMPLETED: 7,
  ACTIVITY_TASK_SCHEDULED: 10,
  ACTIVITY_TASK_STARTED: 11,
  ACTIVITY_TASK_COMPLETED: 12,
} as const;

/** When a history event happened, in ms since the epoch. */
export function eventMs(e: HistoryEvent): number {
  return Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;
}

/** Where a decision's time went, per hop, summed over its history (milliseconds). */
export interface Hops {
  /** WORKFLOW_EXECUTION_STARTED → WORKFLOW_EXECUTION_COMPLETED. */
  total: number;
  /** Workflow task scheduled (or the activity completed) → the worker picked it up. */
  workflowTaskQueued: number;
  /** A worker ran the workflow code, with the local-activity projection write, and answered. */
  workflowTaskRun: number;
  /** Activity scheduled → a worker started it. */
  activityQueued: number;
  /** Activity started → completed, less the model's own time. */
  activityRunOutsideModel: number;
  /** The model's time, on the decision's critical path (the slowest of parallel calls). */
  model: number;
  /** Whatever the hops above do not cover. */
  other: number;
}

/**
 * Reads the decision's history as a timeline: each gap between consecutive events is charged to
 * the hop that the later event ends. The model's time comes from the phases' own results
 * (`latency_ms`), the slowest of a phase's parallel activities counting.
 */
export function hopsOf(events: readonly HistoryEvent[]): Hops {
  const hops: Hops = {
    total: 0,
    workflowTaskQueued: 0,
    workflowTaskRun: 0,
    activityQueued: 0,
    activityRunOutsideModel: 0,
    model: 0,
    other: 0,
  };
  if (events.length < 2) return hops;
  const activityType = new Map<string, string>();
  const slowestModel = new Map<string, number>();
  let activityRun = 0;
  for (let i = 1; i < events.length; i++) {
    const e = events[i]!;
    const gap = Math.max(0, eventMs(e) - eventMs(events[i - 1]!));
    switch (e.eventType as number) {
      case EventType.WORKFLOW_TASK_STARTED:
        hops.workflowTaskQueued += gap;
        break;
      case EventType.WORKFLOW_TASK_COMPLETED:
        hops.workflowTaskRun += gap;
        break;
      case EventType.ACTIVITY_TASK_STARTED:
        hops.activityQueued += gap;
        break;
      case EventType.ACTIVITY_TASK_COMPLETED:
        activityRun += gap;
        break;
      default:
        hops.other += gap;
    }
    if ((e.eventType as number) === EventType.ACTIVITY_TASK_SCHEDULED) {
      activityType.set(
        String(e.eventId),
        e.activityTaskScheduledEventAttributes?.activityType?.name ?? '',
      );
    }
    const done = e.activityTaskCompletedEventAttributes;
    if (done) {
      const type = activityType.get(String(done.scheduledEventId)) ?? '';
      const payload = done.result?.payloads?.[0];
      const result = payload
        ? defaultPayloadConverter.fromPayload<{ latency_ms?: number }>(payload)
        : null;
      slowestModel.set(type, Math.max(slowestModel.get(type) ?? 0, result?.latency_ms ?? 0));
    }
  }
  hops.total = eventMs(events.at(-1)!) - eventMs(events[0]!);
  hops.model = [...slowestModel.values()].reduce((a, b) => a + b, 0);
  hops.activityRunOutsideModel = Math.max(0, activityRun - hops.model);
  return hops;
}

/** The hops of several decisions, averaged, per phase. */
export function hopsPerPhase(all: readonly Hops[]): Hops {
  const phases = PHASE_NAMES.length;
  const avg = (pick: (h: Hops) => number) => round(mean(all.map(pick)) / phases, 2);
  return {
    total: avg((h) => h.total),
    workflowTaskQueued: avg((h) => h.workflowTaskQueued),
    workflowTaskRun: avg((h) => h.workflowTaskRun),
    activityQueued: avg((h) => h.activityQueued),
    activityRunOutsideModel: avg((h) => h.activityRunOutsideModel),
    model: avg((h) => h.model),
    other: avg((h) => h.other),
  };
}
