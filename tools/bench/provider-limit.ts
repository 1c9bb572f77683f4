import { loadavg } from 'node:os';
import { defaultPayloadConverter } from '@temporalio/common';
import type { ClusterBinaries } from '../cluster/binaries';
import { eventMs, mostInWindow, percentile, round, thisMachine, type Machine } from './measure';
import type { ReceivedRequests } from './model-server';
import { PROVIDER_LIMIT_WAIT } from '../../src/llm/provider-limit';
import { startModelStack, type BenchStack } from './stack';

const MINUTE_MS = 60_000;

/** History event types read here (temporal.api.enums.v1.EventType). */
const ACTIVITY_TASK_STARTED = 11;
const ACTIVITY_TASK_COMPLETED = 12;

export interface ProviderLimitFigures {
  date: string;
  machine: Machine;
  /** The limit each worker was given (LLM_REQUESTS_PER_MINUTE), and the model server's own. */
  limit_per_minute: number;
  workers: number;
  /** How long the model server took to answer each call. */
  call_ms: number;
  /** Decisions started at once, and how many completed. */
  decisions: number;
  decisions_completed: number;
  /** Calls that reached the model server, and those it answered 429. */
  requests: number;
  refused_429: number;
  /** The most calls the model server saw in any 60 s, wherever they start. */
  max_in_any_minute: number;
  /** The shortest time in which it saw one call more than the limit: 60 s or more, none too many. */
  shortest_over_limit_s: number | null;
  /** First call → last call at the model server. */
  busy_seconds: number;
  /**
   * Calls a minute while the limit was busy: `counted` calls (whole multiples of the limit) from
   * the first call to the one after them, over the time between.
   */
  requests_per_minute: number;
  counted: number;
  /**
   * Time a phase's call waited for the limit, from the histories: its activity's last attempt
   * from start to completion, less the model's time the phase reported.
   */
  wait_ms: { p50: number; p99: number; max: number };
  /** Activities whose last attempt followed one cut by `ProviderLimitWait`. */
  retried_after_limit_wait: number;
  /** The machine's load average (1 min) when the part started and ended. */
  load_average: { start: number; end: number };
}

/**
 * Calls a minute under a limit of `limit` a minute: the most whole multiples of the limit that
 * have a call after them, over the time from the first call to that one. Calls go in bursts
 * (a minute's worth at once, then none until the first have left the window), so the time to a
 * whole number of bursts is the rate; the last burst, where the calls run out, does not count.
 */
export function perMinute(
  times: readonly number[],
  limit: number,
): { perMinute: number; counted: number } {
  const sorted = [...times].sort((a, b) => a - b);
  const counted = Math.floor((sorted.length - 1) / limit) * limit;
  if (counted === 0) return { perMinute: 0, counted: 0 };
  const ms = sorted[counted]! - sorted[0]!;
  return { perMinute: round((counted * MINUTE_MS) / ms, 1), counted };
}

/** The shortest time (s) in which `count` of `times` (ms) fell; null when there are fewer. */
export function shortestSpan(times: readonly number[], count: number): number | null {
  const sorted = [...times].sort((a, b) => a - b);
  let shortest = Infinity;
  for (let i = 0; i + count - 1 < sorted.length; i++) {
    shortest = Math.min(shortest, sorted[i + count - 1]! - sorted[i]!);
  }
  return Number.isFinite(shortest) ? round(shortest / 1000, 2) : null;
}

type HistoryEvents = Awaited<ReturnType<BenchStack['history']>>;

/** Each phase activity's wait for the limit in its last attempt, and whether that followed a cut wait. */
export function limitWaits(events: HistoryEvents): { waits: number[]; retried: number } {
  const started = new Map<string, number>();
  const waits: number[] = [];
  let retried = 0;
  for (const e of events) {
    if ((e.eventType as number) === ACTIVITY_TASK_STARTED) {
      started.set(String(e.eventId), eventMs(e));
      const a = e.activityTaskStartedEventAttributes;
      if (a?.lastFailure?.applicationFailureInfo?.type === PROVIDER_LIMIT_WAIT) retried += 1;
    }
    const done = e.activityTaskCompletedEventAttributes;
    if ((e.eventType as number) !== ACTIVITY_TASK_COMPLETED || !done) continue;
    const payload = done.result?.payloads?.[0];
    const result = payload
      ? defaultPayloadConverter.fromPayload<{ latency_ms?: number } | null>(payload)
      : null;
    const from = started.get(String(done.startedEventId));
    // Phases report their model's time; the projection's writes do not.
    if (typeof result?.latency_ms === 'number' && from !== undefined) {
      waits.push(Math.max(0, eventMs(e) - from - result.latency_ms));
    }
  }
  return { waits, retried };
}

export interface ProviderLimitOptions {
  binaries: ClusterBinaries;
  bundle: string;
  decisions: number;
  log: (line: string) => void;
}

const LIMIT = 600;
const CALL_MS = 2000;
const WORKERS = 2;

/**
 * The provider limit shared by two workers: one dev server, two workers with
 * LLM_REQUESTS_PER_MINUTE=600 and the openai provider, against the bench's model server, which
 * answers each call after 2 s, records when each arrived, and answers 429 (with Retry-After) a
 * call that would make more than 600 in the trailing minute. Decisions enough to keep the limit
 * busy for minutes start at once; on a Redis of the part's own.
 */
export async function providerLimit(options: ProviderLimitOptions): Promise<ProviderLimitFigures> {
  const { log } = options;
  const load = loadavg()[0]!;
  const { model, stack, stop } = await startModelStack({
    binaries: options.binaries,
    bundle: options.bundle,
    modelArgs: [1, CALL_MS, LIMIT],
    env: { LLM_STREAM: 'false', LLM_REQUESTS_PER_MINUTE: String(LIMIT) },
  });
  try {
    await stack.addWorker('bench');
    log(`${options.decisions} decisions at once, ${WORKERS} workers, ${LIMIT} requests a minute`);
    // Created 16 at a time: hundreds of creates at once on two busy cores outwait the API's
    // deadline for Temporal.
    const ids: string[] = [];
    let asked = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (asked < options.decisions) {
          asked += 1;
          ids.push(await stack.create());
        }
      }),
    );
    const ends = await Promise.allSettled(ids.map((id) => stack.completion(id)));
    const completed = ends.filter((e) => e.status === 'fulfilled').length;
    const res = await fetch(`${model.url}/bench/requests`);
    const received = (await res.json()) as ReceivedRequests;
    const waits: number[] = [];
    let retried = 0;
    for (const id of ids) {
      const found = limitWaits(await stack.history(id));
      waits.push(...found.waits);
      retried += found.retried;
    }
    const { arrivals } = received;
    const rate = perMinute(arrivals, LIMIT);
    const figures: ProviderLimitFigures = {
      date: new Date().toISOString(),
      machine: thisMachine(),
      limit_per_minute: LIMIT,
      workers: WORKERS,
      call_ms: CALL_MS,
      decisions: options.decisions,
      decisions_completed: completed,
      requests: arrivals.length,
      refused_429: received.refused,
      max_in_any_minute: mostInWindow(arrivals, MINUTE_MS),
      shortest_over_limit_s: shortestSpan(arrivals, LIMIT + 1),
      busy_seconds:
        arrivals.length > 0 ? round((Math.max(...arrivals) - Math.min(...arrivals)) / 1000) : 0,
      requests_per_minute: rate.perMinute,
      counted: rate.counted,
      wait_ms: {
        p50: Math.round(percentile(waits, 50)),
        p99: Math.round(percentile(waits, 99)),
        max: Math.round(Math.max(0, ...waits)),
      },
      retried_after_limit_wait: retried,
      load_average: { start: round(load, 2), end: round(loadavg()[0]!, 2) },
    };
    log(
      `  ${figures.requests} calls in ${figures.busy_seconds} s, at most ${figures.max_in_any_minute} in any minute, ${figures.refused_429} answered 429, ${figures.requests_per_minute}/min; ${completed} of ${options.decisions} decisions completed; longest wait ${figures.wait_ms.max} ms`,
    );
    return figures;
  } finally {
    await stop();
  }
}
