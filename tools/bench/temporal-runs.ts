import { randomUUID } from 'node:crypto';
import autocannon from 'autocannon';
import { BENCH_KEY, type BenchStack } from './stack';
import {
  closedLoop,
  cpuMeter,
  hopsOf,
  hopsPerPhase,
  postgresCpuMs,
  processUsage,
  round,
  spread,
  type Hops,
} from './measure';
import { PHASE_NAMES } from '../../src/domain/phases';

const PHASES = PHASE_NAMES.length;

export interface SerialFigures {
  decisions: number;
  /** Client-observed: POST /decisions sent → the workflow's result received. */
  latency_ms: { p50: number; p99: number };
  /** (End to end − the model's time on the critical path) / ten phases. */
  overhead_per_phase_ms: { p50: number; p99: number };
  /** The share of a decision that is not the model. */
  orchestration_share: number;
  hops_per_phase_ms: Hops;
}

/** Decisions one after another, each read back from its history. */
export async function serial(stack: BenchStack, decisions: number): Promise<SerialFigures> {
  const latencies: number[] = [];
  const overheads: number[] = [];
  const hops: Hops[] = [];
  let modelMs = 0;
  let totalMs = 0;
  for (let i = 0; i < decisions; i++) {
    const started = performance.now();
    const id = await stack.create();
    await stack.completion(id);
    const latency = performance.now() - started;
    const h = hopsOf(await stack.history(id));
    latencies.push(latency);
    overheads.push((latency - h.model) / PHASES);
    hops.push(h);
    modelMs += h.model;
    totalMs += latency;
  }
  return {
    decisions,
    latency_ms: spread(latencies),
    overhead_per_phase_ms: spread(overheads, 2),
    orchestration_share: round(1 - modelMs / totalMs, 4),
    hops_per_phase_ms: hopsPerPhase(hops),
  };
}

export interface ThroughputFigures {
  concurrency: number;
  decisions: number;
  per_second: number;
  latency_ms: { p50: number; p99: number };
  /** CPU time per decision of each process, from /proc. */
  cpu_ms_per_decision: { temporal: number; worker: number; api: number };
  /** Redis's CPU per decision (absent from results written before it was measured). */
  redis_cpu_ms_per_decision?: number;
  /**
   * On PostgreSQL: workflow state changes written per decision, each a transaction of one history
   * shard (absent on the dev server).
   */
  history_transactions_per_decision?: number;
  worker_rss_mb: number;
}

/** History transactions per workflow since `before` (see BenchStack.historyTransactions). */
async function settledTransactions(
  stack: BenchStack,
  before: number,
  workflows: number,
): Promise<number> {
  // PostgreSQL publishes a backend's table statistics within a second of its transactions.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  return round((stack.historyTransactions()! - before) / workflows, 1);
}

/** `decisions` decisions, `concurrency` of them in flight at any time (a closed loop). */
export async function throughput(
  stack: BenchStack,
  concurrency: number,
  decisions: number,
): Promise<ThroughputFigures> {
  const worker = stack.worker.pid;
  const cpu = cpuMeter({ temporal: stack.temporalPid, worker, api: stack.api.role.pid });
  const redisBefore = await stack.redisCpuMs();
  const transactionsBefore = stack.historyTransactions();
  const latencies: number[] = [];
  const seconds = await closedLoop(concurrency, decisions, async () => {
    const t0 = performance.now();
    await stack.completion(await stack.create());
    latencies.push(performance.now() - t0);
  });
  const cpuPerDecision = cpu(decisions);
  const redisMs = (await stack.redisCpuMs()) - redisBefore;
  return {
    concurrency,
    decisions,
    per_second: round(decisions / seconds, 2),
    latency_ms: spread(latencies),
    cpu_ms_per_decision: cpuPerDecision,
    redis_cpu_ms_per_decision: round(redisMs / decisions, 2),
    ...(transactionsBefore === null
      ? {}
      : {
          history_transactions_per_decision: await settledTransactions(
            stack,
            transactionsBefore,
            decisions,
          ),
        }),
    worker_rss_mb: round(processUsage(worker).rssMb),
  };
}

export interface MemoryFigures {
  idle_rss_mb: number;
  in_flight: number;
  /** The most the worker held while all of them were in flight. */
  in_flight_rss_mb: number;
  /** (In flight − idle) / decisions: what one cached decision costs. */
  per_cached_decision_kb: number;
  /** How many workflows the worker kept cached (WORKER_MAX_CACHED_WORKFLOWS). */
  cache_size: number;
  /** From the first create until all had completed; null when they were terminated instead. */
  seconds: number | null;
}

/**
 * Starts `inFlight` decisions at once against a worker whose model takes `delayMs` per call, and
 * samples the worker's RSS until they have all completed.
 */
export async function memoryInFlight(
  stack: BenchStack,
  inFlight: number,
  delayMs: number,
  /** Stop sampling after this long and terminate the decisions still running (quick runs). */
  holdMs?: number,
  cacheSize = 1000,
): Promise<MemoryFigures> {
  const worker = await stack.restartWorker(delayMs, {
    WORKER_MAX_CACHED_WORKFLOWS: String(cacheSize),
  });
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const idle = processUsage(worker.pid).rssMb;
  const ids: string[] = [];
  const started = performance.now();
  for (let i = 0; i < inFlight; i += 20) {
    ids.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(20, inFlight - i) }, () => stack.create()),
      )),
    );
  }
  let peak = 0;
  let done = false;
  const all = Promise.all(ids.map((id) => stack.completion(id))).finally(() => (done = true));
  const until = holdMs === undefined ? Infinity : Date.now() + holdMs;
  while (!done && Date.now() < until) {
    peak = Math.max(peak, processUsage(worker.pid).rssMb);
    await Promise.race([all, new Promise((resolve) => setTimeout(resolve, 250))]);
  }
  let seconds: number | null = null;
  if (done) {
    await all;
    seconds = round((performance.now() - started) / 1000);
  } else {
    all.catch(() => undefined);
    await Promise.all(
      ids.map((id) =>
        stack.client.workflow
          .getHandle(id)
          .terminate('bench: memory sampled')
          .catch(() => undefined),
      ),
    );
  }
  return {
    idle_rss_mb: round(idle),
    in_flight: inFlight,
    in_flight_rss_mb: round(peak),
    per_cached_decision_kb: round(((peak - idle) * 1024) / inFlight),
    cache_size: cacheSize,
    seconds,
  };
}

export interface LoadFigures {
  target_per_second: number;
  achieved_per_second: number;
  seconds: number;
  latency_ms: { p50: number; p99: number; max: number };
  errors: number;
  non2xx: number;
  /** CPU time per request of the API process and of the Temporal server, from /proc. */
  cpu_ms_per_request: { api: number; temporal: number };
}

async function cannon(
  options: autocannon.Options,
  pids: { api: number; temporal: number },
): Promise<LoadFigures> {
  const cpu = cpuMeter(pids);
  const result = await autocannon(options);
  return {
    cpu_ms_per_request: cpu(Math.max(1, result.requests.total), 3),
    target_per_second: options.overallRate ?? 0,
    achieved_per_second: round(result.requests.average),
    seconds: result.duration,
    latency_ms: {
      p50: result.latency.p50,
      p99: result.latency.p99,
      max: result.latency.max,
    },
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}

/** GET /decisions/:id of a finished decision at a fixed rate (autocannon). */
export async function statusReads(
  stack: BenchStack,
  rate: number,
  seconds: number,
): Promise<LoadFigures> {
  const id = await stack.create();
  await stack.completion(id);
  return cannon(
    {
      url: `${stack.api.url}/decisions/${id}`,
      headers: { Authorization: `Bearer ${BENCH_KEY}` },
      connections: 32,
      overallRate: rate,
      duration: seconds,
    },
    { api: stack.api.role.pid, temporal: stack.temporalPid },
  );
}

/**
 * POST /decisions at a fixed rate (autocannon), through an API whose task queue no worker polls:
 * the thousands of decisions it starts would otherwise compete for the same two cores.
 */
export async function creates(
  stack: BenchStack,
  rate: number,
  seconds: number,
): Promise<LoadFigures> {
  const idle = await stack.startApi('bench-unpolled');
  try {
    return await cannon(
      {
        url: `${idle.url}/decisions`,
        method: 'POST',
        headers: { Authorization: `Bearer ${BENCH_KEY}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ query: 'Should we move billing to a managed Postgres?' }),
        connections: 16,
        overallRate: rate,
        duration: seconds,
      },
      { api: idle.role.pid, temporal: stack.temporalPid },
    );
  } finally {
    await idle.role.stop();
  }
}

/** The floor: a bare workflow of ten no-op activities, nothing else (tools/bench/bare-workflow.ts). */
export interface FloorFigures {
  serial: {
    workflows: number;
    /** Client-observed: start sent → result received. */
    latency_ms: { p50: number; p99: number };
    per_step_ms: { p50: number; p99: number };
  };
  concurrency: {
    concurrency: number;
    workflows: number;
    per_second: number;
    latency_ms: { p50: number; p99: number };
    /** CPU time per workflow of the server and of the floor's worker, from /proc. */
    cpu_ms_per_workflow: { temporal: number; worker: number };
    /** On the PostgreSQL server: PostgreSQL's own CPU per workflow. */
    postgres_cpu_ms_per_workflow?: number;
    /** On the PostgreSQL server: workflow state changes written per workflow (see throughput). */
    history_transactions_per_workflow?: number;
  }[];
}

const FLOOR_QUEUE = 'bench-floor';

/**
 * Runs the floor on the stack's server with a worker of the decisions' settings (see
 * tools/bench/floor-worker.cjs), which is stopped after: serial workflows, then a closed loop at
 * each concurrency given, as the decisions are measured.
 */
export async function floor(
  stack: BenchStack,
  bundle: string,
  runs: { serial: number; throughput: Record<number, number> },
): Promise<FloorFigures> {
  const worker = await stack.startFloorWorker(bundle, FLOOR_QUEUE);
  const run = async () => {
    const handle = await stack.client.workflow.start('bareWorkflow', {
      taskQueue: FLOOR_QUEUE,
      workflowId: `bench-floor-${randomUUID()}`,
      args: [PHASES, true],
    });
    await handle.result();
  };
  try {
    for (let i = 0; i < 3; i++) await run(); // warm-up, as for the decisions
    const latencies: number[] = [];
    for (let i = 0; i < runs.serial; i++) {
      const t0 = performance.now();
      await run();
      latencies.push(performance.now() - t0);
    }
    const concurrency: FloorFigures['concurrency'] = [];
    for (const [c, workflows] of Object.entries(runs.throughput)) {
      const cpu = cpuMeter({ temporal: stack.temporalPid, worker: worker.pid });
      const postgresBefore = stack.store === 'postgres' ? postgresCpuMs() : null;
      const transactionsBefore = stack.historyTransactions();
      const times: number[] = [];
      const seconds = await closedLoop(Number(c), workflows, async () => {
        const t0 = performance.now();
        await run();
        times.push(performance.now() - t0);
      });
      concurrency.push({
        concurrency: Number(c),
        workflows,
        per_second: round(workflows / seconds, 2),
        latency_ms: spread(times),
        cpu_ms_per_workflow: cpu(workflows),
        ...(postgresBefore === null || transactionsBefore === null
          ? {}
          : {
              postgres_cpu_ms_per_workflow: round(
                (postgresCpuMs() - postgresBefore) / workflows,
                1,
              ),
              history_transactions_per_workflow: await settledTransactions(
                stack,
                transactionsBefore,
                workflows,
              ),
            }),
      });
    }
    return {
      serial: {
        workflows: runs.serial,
        latency_ms: spread(latencies),
        per_step_ms: spread(
          latencies.map((l) => l / PHASES),
          2,
        ),
      },
      concurrency,
    };
  } finally {
    await worker.stop();
  }
}

/** A floor's figures in one line of the bench's log. */
export function describeFloor(f: FloorFigures): string {
  const rates = f.concurrency.map((c) => `${c.per_second}/s at ${c.concurrency}`).join(', ');
  return `p50 ${f.serial.latency_ms.p50} ms (${f.serial.per_step_ms.p50} ms/step), ${rates}`;
}
