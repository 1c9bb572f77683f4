import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import type { LiveOutputFigures, LiveRunFigures } from './live-output';
import type { Distribution } from './live-latency';
import { LIVE_INTERVAL_MS } from '../../src/projection/live-channel';
import type { PeerFigures } from './peers';
import type { ProviderLimitFigures } from './provider-limit';
import type { SlowModelFigures } from './slow-model';
import type { FootprintRound, RedisFootprintFigures } from './redis-footprint';
import type { RedisScaleFigures } from './redis-scale';
import {
  decisionsPerGib,
  perSecondForGib,
  perSecondPerCore,
  redisPlan,
  type KeyKind,
  type KindTotals,
} from './key-kinds';
import { describeMachine, round, type Hops, type Machine } from './measure';
import { PHASE_NAMES } from '../../src/domain/phases';

const PHASE_COUNT = PHASE_NAMES.length;
import type {
  FloorFigures,
  LoadFigures,
  MemoryFigures,
  SerialFigures,
  ThroughputFigures,
} from './temporal-runs';

/** Throughput on the PostgreSQL server, with PostgreSQL's own CPU per decision. */
export type PostgresThroughput = ThroughputFigures & { postgres_cpu_ms_per_decision: number };

export interface BenchResults {
  date: string;
  /** Where it ran (absent from results written before it was recorded). */
  machine?: Machine;
  quick: boolean;
  seconds: number;
  memory_serial: SerialFigures;
  concurrency: ThroughputFigures[];
  worker_rss: {
    after: { after_decisions: number; rss_mb: number }[];
    in_flight: MemoryFigures;
    /** The same with a cache of 50 workflows (full runs). */
    small_cache?: MemoryFigures | null;
  };
  status_reads: LoadFigures;
  creates: LoadFigures;
  slow_model: { delay_ms: number; serial: SerialFigures };
  sqlite: { serial: SerialFigures; concurrency_32: ThroughputFigures };
  /**
   * The bare SDK's floor on each store, run before the decisions on the same server and worker
   * settings (absent from results written before it was measured).
   */
  floor?: { memory: FloorFigures; sqlite: FloorFigures; postgres: FloorFigures };
  /** The production topology's server (npm run cluster) on this machine's PostgreSQL. */
  postgres: {
    serial: SerialFigures;
    concurrency_32: PostgresThroughput;
    concurrency_128: PostgresThroughput;
  };
  /** Model output streamed to clients (absent from results written before it was measured). */
  live_output?: LiveOutputFigures;
  /** Two workers under one provider limit (absent from results written before it was measured). */
  provider_limit?: ProviderLimitFigures;
  /** Many decisions at once on one worker, the model slow (absent from results before it). */
  slow_model_burst?: SlowModelFigures;
  /** What one Redis holds and does per decision (absent from results before it was measured). */
  redis_footprint?: RedisFootprintFigures;
  redis_cluster?: RedisScaleFigures;
  in_process: PeerFigures;
  bullmq: PeerFigures;
}

/** Decisions against the floor on one store: each a figure of both and their ratio. */
export interface FloorRatio {
  store: string;
  what: string;
  floor: number;
  decisions: number;
  /** decisions / floor. */
  ratio: number;
  unit: string;
}

/** Every figure measured both for the floor and for the decisions, store by store. */
export function floorRatios(r: BenchResults): FloorRatio[] {
  if (!r.floor) return [];
  const rows: FloorRatio[] = [];
  const add = (store: string, what: string, unit: string, floor: number, decisions: number) =>
    rows.push({ store, what, unit, floor, decisions, ratio: round(decisions / floor, 2) });
  const stores: [string, FloorFigures, SerialFigures, ThroughputFigures[]][] = [
    ['dev server in memory', r.floor.memory, r.memory_serial, r.concurrency],
    ['dev server with SQLite', r.floor.sqlite, r.sqlite.serial, [r.sqlite.concurrency_32]],
    [
      'Temporal server on PostgreSQL',
      r.floor.postgres,
      r.postgres.serial,
      [r.postgres.concurrency_32, r.postgres.concurrency_128],
    ],
  ];
  for (const [store, floor, serial, runs] of stores) {
    add(
      store,
      'per phase, serial p50',
      'ms',
      floor.serial.per_step_ms.p50,
      round(serial.latency_ms.p50 / PHASE_COUNT, 2),
    );
    for (const f of floor.concurrency) {
      const d = runs.find((x) => x.concurrency === f.concurrency);
      if (!d) continue;
      const at = `at ${f.concurrency} in flight`;
      add(store, `per second ${at}`, '/s', f.per_second, d.per_second);
      add(
        store,
        `server CPU per workflow ${at}`,
        'ms',
        f.cpu_ms_per_workflow.temporal,
        d.cpu_ms_per_decision.temporal,
      );
      add(
        store,
        `worker CPU per workflow ${at}`,
        'ms',
        f.cpu_ms_per_workflow.worker,
        d.cpu_ms_per_decision.worker,
      );
      const pg = (d as Partial<PostgresThroughput>).postgres_cpu_ms_per_decision;
      const tx = d.history_transactions_per_decision;
      if (f.history_transactions_per_workflow !== undefined && tx !== undefined) {
        add(
          store,
          `history transactions per workflow ${at}`,
          '',
          f.history_transactions_per_workflow,
          tx,
        );
      }
      if (f.postgres_cpu_ms_per_workflow !== undefined && pg !== undefined) {
        add(store, `PostgreSQL CPU per workflow ${at}`, 'ms', f.postgres_cpu_ms_per_workflow, pg);
      }
    }
  }
  return rows;
}

/** One ratio of the dev server in memory, by what it measures. */
function memoryRatio(r: BenchResults, what: string): FloorRatio | undefined {
  return floorRatios(r).find((x) => x.store === 'dev server in memory' && x.what === what);
}

interface Target {
  what: string;
  target: string;
  measured: string;
  met: boolean;
}

/** The targets set against the floor: none for results without one. */
function floorTargets(r: BenchResults): Target[] {
  const out: Target[] = [];
  const ratio = (what: string, name: string, limit: number, atMost: boolean) => {
    const x = memoryRatio(r, what);
    if (!x) return;
    out.push({
      what: `${name}, to the floor's`,
      target: `${atMost ? '≤' : '≥'} ${limit}×`,
      measured: `${x.ratio}× (${x.decisions} ${x.unit} against ${x.floor} ${x.unit})`,
      met: atMost ? x.ratio <= limit : x.ratio >= limit,
    });
  };
  ratio('per second at 32 in flight', 'decisions/s at 32 in flight', 0.85, false);
  ratio('per second at 128 in flight', 'decisions/s at 128 in flight', 0.85, false);
  ratio('server CPU per workflow at 32 in flight', 'server CPU per decision at 32', 1.2, true);
  ratio('per phase, serial p50', 'latency per phase, serial p50', 1.05, true);
  return out;
}

export function targets(r: BenchResults): Target[] {
  const at32 = r.concurrency.find((c) => c.concurrency === 32)!;
  // Flat: no growth over the run's second half, once the heap has found its size.
  const after = r.worker_rss.after;
  const last = after.at(-1)!;
  const firstAfter = after.find((a) => a.after_decisions >= last.after_decisions / 2) ?? after[0]!;
  const growth = last.rss_mb - firstAfter.rss_mb;
  // Results from before the floor was measured keep the absolute targets of their time.
  const throughputTargets: Target[] = r.floor
    ? floorTargets(r)
    : [
        {
          what: 'orchestration overhead per phase, p50, serial',
          target: '≤ 10 ms',
          measured: `${r.memory_serial.overhead_per_phase_ms.p50} ms`,
          met: r.memory_serial.overhead_per_phase_ms.p50 <= 10,
        },
        {
          what: 'decisions/s at 32 concurrent, instant model',
          target: '≥ 20',
          measured: String(at32.per_second),
          met: at32.per_second >= 20,
        },
      ];
  return [
    ...throughputTargets,
    {
      what: `worker RSS with ${r.worker_rss.in_flight.in_flight} decisions in flight`,
      target: '≤ 350 MB',
      measured: `${r.worker_rss.in_flight.in_flight_rss_mb} MB`,
      met: r.worker_rss.in_flight.in_flight_rss_mb <= 350,
    },
    {
      what: `worker RSS after ${firstAfter.after_decisions} → ${last.after_decisions} decisions`,
      target: 'flat (within 10 %)',
      measured: `${firstAfter.rss_mb} → ${last.rss_mb} MB`,
      met: growth <= firstAfter.rss_mb * 0.1,
    },
    {
      what: 'status read p99 at 2,000 req/s',
      target: '≤ 10 ms',
      measured: `${r.status_reads.latency_ms.p99} ms (${r.status_reads.achieved_per_second}/s achieved)`,
      met:
        r.status_reads.latency_ms.p99 <= 10 && r.status_reads.errors + r.status_reads.non2xx === 0,
    },
    {
      what: 'create p99 at 200 req/s',
      target: '≤ 50 ms',
      measured: `${r.creates.latency_ms.p99} ms (${r.creates.achieved_per_second}/s achieved)`,
      met: r.creates.latency_ms.p99 <= 50 && r.creates.errors + r.creates.non2xx === 0,
    },
    {
      what: 'orchestration share of a decision, model 1 s per call',
      target: '≤ 2 %',
      measured: `${(r.slow_model.serial.orchestration_share * 100).toFixed(2)} %`,
      met: r.slow_model.serial.orchestration_share <= 0.02,
    },
    ...(r.live_output
      ? [
          {
            what: `model chunk → client p99, ${r.live_output.decisions} decisions streaming at once`,
            target: '≤ 50 ms',
            measured: `${r.live_output.on.latency_ms.p99} ms (p50 ${r.live_output.on.latency_ms.p50} ms)`,
            met: r.live_output.on.latency_ms.p99 <= 50,
          },
        ]
      : []),
    ...(r.provider_limit
      ? [
          {
            what: `calls in any minute at the model server, limit ${r.provider_limit.limit_per_minute} a minute, ${r.provider_limit.workers} workers`,
            target: `≤ ${r.provider_limit.limit_per_minute}, no 429`,
            measured: `${r.provider_limit.max_in_any_minute}, ${r.provider_limit.refused_429} answered 429`,
            met:
              r.provider_limit.max_in_any_minute <= r.provider_limit.limit_per_minute &&
              r.provider_limit.refused_429 === 0,
          },
        ]
      : []),
    ...(r.slow_model_burst
      ? [
          {
            what: `${r.slow_model_burst.decisions} decisions at once on one worker, model ${r.slow_model_burst.call_ms / 1000} s per call`,
            target: '≤ 30 s',
            measured: `${r.slow_model_burst.seconds} s (${r.slow_model_burst.model_max_open} calls at once)`,
            met: r.slow_model_burst.seconds <= 30,
          },
        ]
      : []),
  ];
}

const HOP_NAMES: [keyof Hops, string][] = [
  ['workflowTaskQueued', 'workflow task queued (activity completed → worker picks up)'],
  ['workflowTaskRun', 'workflow task on the worker (workflow code, projection write)'],
  ['activityQueued', 'activity queued (scheduled → started)'],
  ['activityRunOutsideModel', 'activity outside the model (budget, response store, heartbeat)'],
  ['model', 'model'],
  ['other', 'other gaps'],
];

function cacheLines(r: BenchResults): string[] {
  const small = r.worker_rss.small_cache;
  const full = r.worker_rss.in_flight;
  if (!small) return [];
  return [
    '',
    `With \`WORKER_MAX_CACHED_WORKFLOWS=${small.cache_size}\` instead of ${full.cache_size}, the same ${small.in_flight} decisions: ${small.in_flight_rss_mb} MB at`,
    `most (${small.idle_rss_mb} MB idle), all completed in ${small.seconds ?? '—'} s against ${full.seconds ?? '—'} s with the full cache: a`,
    'decision evicted from the cache replays its history at each of its workflow tasks.',
    small.in_flight_rss_mb >= full.in_flight_rss_mb * 0.9
      ? 'The peak barely moves: the cache is not what holds the memory; the work in flight is (activations, payloads, garbage between collections).'
      : `The smaller cache saved ${round(full.in_flight_rss_mb - small.in_flight_rss_mb)} MB at the peak.`,
  ];
}

function loadRow(name: string, f: LoadFigures): (string | number)[] {
  return [
    name,
    f.target_per_second,
    f.achieved_per_second,
    `${f.latency_ms.p50} ms`,
    `${f.latency_ms.p99} ms`,
    `${f.latency_ms.max} ms`,
    f.errors + f.non2xx,
    f.cpu_ms_per_request.api,
    f.cpu_ms_per_request.temporal,
  ];
}

function table(header: string[], rows: (string | number)[][]): string {
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

interface Step {
  label: string;
  date: string;
  quick: boolean;
  overhead_per_phase_p50_ms: number;
  serial_p50_ms: number;
  per_second_32: number;
  cpu_ms_per_decision: ThroughputFigures['cpu_ms_per_decision'];
  worker_rss_in_flight_mb: number;
  status_read_p99_ms: number;
  create_p99_ms: number;
  /** Requests a second the API kept up with (absent in the first steps). */
  status_read_per_second?: number;
  create_per_second?: number;
  /** Ratios to the bare SDK's floor in memory (absent before it was measured). */
  to_floor?: {
    per_second_32: number;
    per_second_128: number;
    server_cpu_32: number;
    per_phase: number;
  };
}

function stepOf(label: string, r: BenchResults): Step {
  const at32 = r.concurrency.find((c) => c.concurrency === 32)!;
  return {
    label,
    date: r.date,
    quick: r.quick,
    overhead_per_phase_p50_ms: r.memory_serial.overhead_per_phase_ms.p50,
    serial_p50_ms: r.memory_serial.latency_ms.p50,
    per_second_32: at32.per_second,
    cpu_ms_per_decision: at32.cpu_ms_per_decision,
    worker_rss_in_flight_mb: r.worker_rss.in_flight.in_flight_rss_mb,
    status_read_p99_ms: r.status_reads.latency_ms.p99,
    create_p99_ms: r.creates.latency_ms.p99,
    status_read_per_second: r.status_reads.achieved_per_second,
    create_per_second: r.creates.achieved_per_second,
    ...(r.floor
      ? {
          to_floor: {
            per_second_32: memoryRatio(r, 'per second at 32 in flight')?.ratio ?? NaN,
            per_second_128: memoryRatio(r, 'per second at 128 in flight')?.ratio ?? NaN,
            server_cpu_32: memoryRatio(r, 'server CPU per workflow at 32 in flight')?.ratio ?? NaN,
            per_phase: memoryRatio(r, 'per phase, serial p50')?.ratio ?? NaN,
          },
        }
      : {}),
  };
}

const STEPS_FILE = resolve(__dirname, '../../docs/bench-steps.json');

/**
 * Findings measured apart from the bench (with their own tools and dates), kept under the bench's
 * figures each time BENCHMARKS.md is written.
 */
const FINDINGS_FILE = resolve(__dirname, '../../docs/bench-findings.md');

function readSteps(): Step[] {
  return existsSync(STEPS_FILE) ? (JSON.parse(readFileSync(STEPS_FILE, 'utf8')) as Step[]) : [];
}

export function markdown(r: BenchResults, steps: Step[]): string {
  const s = r.memory_serial;
  const hops = s.hops_per_phase_ms;
  const lines = [
    '# Benchmarks',
    '',
    `Figures from \`npm run bench${r.quick ? ' -- --quick' : ''}\` on ${r.date.slice(0, 10)} (${r.seconds} s), on this`,
    `machine: ${r.machine ? describeMachine(r.machine) : 'not recorded'}.`,
    'The bench starts its own stack: a Temporal dev server (in memory, then with its SQLite file),',
    'one worker and one API process run as built JavaScript (`node dist/…`, as the images run them),',
    'and Redis. The model is the offline stand-in, instant unless a delay is named: the worker',
    'then runs as `node tools/bench/worker.cjs <ms>`, the built worker with a slower model. Every',
    'process shares the same two cores with the load generator, so compare figures within one run;',
    'they move between runs on this noisy machine.',
    '',
    '![Latency, throughput and where a phase goes](benchmarks.svg)',
    '',
    '## Targets',
    '',
    table(
      ['what', 'target', 'measured', ''],
      targets(r).map((t) => [t.what, t.target, t.measured, t.met ? 'met' : '**missed**']),
    ),
    '',
    '## A decision, one at a time',
    '',
    `${s.decisions} decisions one after another, dev server in memory. End to end is what a client`,
    'sees: `POST /decisions` sent → the workflow result received. Overhead is end to end less the',
    "model's time on the critical path, per phase.",
    '',
    table(
      ['', 'p50', 'p99'],
      [
        ['end to end', `${s.latency_ms.p50} ms`, `${s.latency_ms.p99} ms`],
        [
          'orchestration overhead per phase',
          `${s.overhead_per_phase_ms.p50} ms`,
          `${s.overhead_per_phase_ms.p99} ms`,
        ],
      ],
    ),
    '',
    "Where a phase's time goes, read from each decision's history (the gap before each event is",
    'charged to the hop that event ends), mean per phase:',
    '',
    table(
      ['hop', 'ms per phase'],
      [
        ...HOP_NAMES.map(([key, name]) => [name, hops[key]]),
        ['**total (history start → end)**', hops.total],
      ],
    ),
    '',
    '## Throughput',
    '',
    'A closed loop: this many decisions in flight at any time, each created over HTTP and awaited.',
    'CPU is user + system time from `/proc`, per decision completed.',
    '',
    table(
      [
        'in flight',
        'decisions',
        'decisions/s',
        'p50',
        'p99',
        'CPU ms/decision: Temporal',
        'worker',
        'API',
      ],
      r.concurrency.map((c) => [
        c.concurrency,
        c.decisions,
        c.per_second,
        `${c.latency_ms.p50} ms`,
        `${c.latency_ms.p99} ms`,
        c.cpu_ms_per_decision.temporal,
        c.cpu_ms_per_decision.worker,
        c.cpu_ms_per_decision.api,
      ]),
    ),
    '',
    ...floorSection(r),
    '## Worker memory',
    '',
    table(
      ['after decisions', 'worker RSS'],
      r.worker_rss.after.map((a) => [a.after_decisions, `${a.rss_mb} MB`]),
    ),
    '',
    `With ${r.worker_rss.in_flight.in_flight} decisions in flight at once (model 1 s per call, so they stay`,
    `cached): ${r.worker_rss.in_flight.in_flight_rss_mb} MB at most, ${r.worker_rss.in_flight.idle_rss_mb} MB idle just before:`,
    `≈ ${r.worker_rss.in_flight.per_cached_decision_kb} KB per decision in flight.`,
    ...cacheLines(r),
    '',
    '## API under load (autocannon)',
    '',
    table(
      [
        '',
        'target rate',
        'achieved',
        'p50',
        'p99',
        'max',
        'errors + non-2xx',
        'CPU ms/request: API',
        'Temporal',
      ],
      [
        loadRow('`GET /decisions/:id` (status read)', r.status_reads),
        loadRow('`POST /decisions` (create)', r.creates),
      ],
    ),
    '',
    'Creates go through an API whose task queue no worker polls: the decisions they start would',
    'otherwise compete with the API and the dev server for the same two cores. Rate limiting is off',
    '(one key sends thousands of requests a second); authentication is on.',
    '',
    '## A slow model',
    '',
    `The offline model answering each call after ${r.slow_model.delay_ms} ms, ${r.slow_model.serial.decisions} decision(s): ${r.slow_model.serial.latency_ms.p50} ms end`,
    `to end, of which ${(r.slow_model.serial.orchestration_share * 100).toFixed(2)} % is not the model (with the instant model: ${(r.memory_serial.orchestration_share * 100).toFixed(1)} %).`,
    '',
    '## Beside its peers, same run, same Redis',
    '',
    table(
      ['', 'serial p50', 'serial p99', 'overhead per phase', 'decisions/s at 32'],
      [
        [
          'Temporal, dev server in memory',
          `${s.latency_ms.p50} ms`,
          `${s.latency_ms.p99} ms`,
          `${s.overhead_per_phase_ms.p50} ms`,
          r.concurrency.find((c) => c.concurrency === 32)!.per_second,
        ],
        [
          'Temporal, dev server with SQLite',
          `${r.sqlite.serial.latency_ms.p50} ms`,
          `${r.sqlite.serial.latency_ms.p99} ms`,
          `${r.sqlite.serial.overhead_per_phase_ms.p50} ms`,
          r.sqlite.concurrency_32.per_second,
        ],
        [
          'Temporal server on PostgreSQL (npm run cluster)',
          `${r.postgres.serial.latency_ms.p50} ms`,
          `${r.postgres.serial.latency_ms.p99} ms`,
          `${r.postgres.serial.overhead_per_phase_ms.p50} ms`,
          r.postgres.concurrency_32.per_second,
        ],
        [
          'BullMQ chain of ten jobs',
          `${r.bullmq.serial_latency_ms.p50} ms`,
          `${r.bullmq.serial_latency_ms.p99} ms`,
          `${r.bullmq.overhead_per_phase_ms} ms (over the bound)`,
          r.bullmq.per_second,
        ],
        [
          'in-process bound (ten phases, one Redis write each)',
          `${r.in_process.serial_latency_ms.p50} ms`,
          `${r.in_process.serial_latency_ms.p99} ms`,
          '—',
          r.in_process.per_second,
        ],
      ],
    ),
    '',
    'The in-process bound runs the same agents and offline model with one projection write per',
    "phase, in the bench's own process: no durability at all, the floor. The BullMQ chain runs the",
    "same phases as jobs on the same Redis, each enqueuing the next; its worker runs in the bench's",
    'process. Neither survives a crash mid-phase the way a Temporal decision does.',
    '',
    '## On PostgreSQL: what a decision costs',
    '',
    ...onPostgres(r),
    ...sizing(r),
    ...liveSection(r.live_output, r.machine),
    ...limitSection(r.provider_limit, r.machine),
    ...burstSection(r.slow_model_burst),
    ...footprintSection(r.redis_footprint, r.machine),
    ...clusterSection(r.redis_cluster),
  ];
  lines.push('', '## Where the time goes, and why targets are missed', '', ...whereTimeGoes(r));
  if (steps.length > 0) {
    lines.push(
      '',
      '## What each change bought',
      '',
      'Key figures recorded by `npm run bench -- --step <label>` after each change (most are quick',
      'runs: fewer decisions, so noisier; each label says what else it holds), oldest first.',
      '',
      table(
        [
          'change',
          'overhead/phase p50',
          'serial p50',
          'decisions/s at 32',
          'CPU ms/decision Temporal · worker · API',
          'RSS 200 in flight',
          'read p99',
          'create p99',
          'to the floor: /s at 32 · 128, server CPU, per phase',
        ],
        steps.map((st) => [
          st.label,
          `${st.overhead_per_phase_p50_ms} ms`,
          `${st.serial_p50_ms} ms`,
          st.per_second_32,
          `${st.cpu_ms_per_decision.temporal} · ${st.cpu_ms_per_decision.worker} · ${st.cpu_ms_per_decision.api}`,
          `${st.worker_rss_in_flight_mb} MB`,
          `${st.status_read_p99_ms} ms${st.status_read_per_second ? ` (${st.status_read_per_second}/s)` : ''}`,
          `${st.create_p99_ms} ms${st.create_per_second ? ` (${st.create_per_second}/s)` : ''}`,
          st.to_floor
            ? `${st.to_floor.per_second_32}× · ${st.to_floor.per_second_128}× · ${st.to_floor.server_cpu_32}× · ${st.to_floor.per_phase}×`
            : '—',
        ]),
      ),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** The decisions next to the bare SDK's floor, store by store. */
function floorSection(r: BenchResults): string[] {
  const rows = floorRatios(r);
  if (rows.length === 0) return [];
  return [
    '## Next to the bare Temporal SDK',
    '',
    'The floor is a bare Temporal TypeScript workflow of ten no-op activities, nothing else',
    "(`tools/bench/bare-workflow.ts`), run by a worker made with the decisions' own worker options",
    'and settings (`tools/bench/floor-worker.cjs`), on the same server, just before the decisions:',
    "serially, then in the same closed loops. A ratio is the decisions' figure over the floor's;",
    'for a rate, higher is better, for a time or CPU, lower.',
    '',
    table(
      ['store', 'figure', 'floor', 'decisions', 'ratio'],
      rows.map((x) => [
        x.store,
        x.what,
        `${x.floor} ${x.unit}`,
        `${x.decisions} ${x.unit}`,
        `**${x.ratio}×**`,
      ]),
    ),
    '',
  ];
}

/** What the floor says about the throughput: where a decision's CPU goes beyond the floor's. */
function floorReading(r: BenchResults): string[] {
  const server = memoryRatio(r, 'server CPU per workflow at 32 in flight');
  const worker = memoryRatio(r, 'worker CPU per workflow at 32 in flight');
  const rate = memoryRatio(r, 'per second at 32 in flight');
  if (!server || !worker || !rate) return [];
  return [
    `  The floor costs ${server.floor} ms of server CPU and ${worker.floor} ms of worker CPU per workflow and runs ${rate.floor}/s;`,
    `  a decision costs ${server.ratio}× and ${worker.ratio}× that. On the server, the bare workflow given a`,
    "  decision's shape (its retrieval fan-out, payloads, projection markers and result) costs about 1.2×",
    "  the floor (docs/bench-findings.md); the rest (search attributes, real payloads) is not broken down. The worker's is",
    "  mostly the phases' own work, which no-op activities do not do (prompts, the offline model,",
    '  schema checks, the knowledge base, the Redis writes around each call), and a local activity',
    '  per phase, which doubles the activations of a workflow task.',
  ];
}

/** The reading of this run's figures, target by target, computed from them. */
function whereTimeGoes(r: BenchResults): string[] {
  const h = r.memory_serial.hops_per_phase_ms;
  const at32 = r.concurrency.find((c) => c.concurrency === 32)!;
  const cpu = at32.cpu_ms_per_decision;
  const cpuTotal = cpu.temporal + cpu.worker + cpu.api;
  const cores = r.machine?.cores ?? cpus().length;
  const ceiling = (cores * 1000) / cpuTotal;
  const reads = r.status_reads;
  const creates = r.creates;
  const inFlight = r.worker_rss.in_flight;
  const slow = r.slow_model.serial;
  const slowOverheadMs = round(slow.hops_per_phase_ms.total - slow.hops_per_phase_ms.model);
  return [
    `- **Overhead per phase (${r.memory_serial.overhead_per_phase_ms.p50} ms p50).** Of a phase's ${h.total} ms in`,
    `  history, ${h.workflowTaskRun} ms is the workflow task on the worker: the SDK runs workflow code in a`,
    '  worker thread (every activation crosses threads and V8 contexts, and every promise the',
    "  workflow creates records a stack trace for the SDK's stack-trace query), and the projection",
    '  write is a local activity inside that task (a Redis write and one more activation).',
    `  ${h.activityRunOutsideModel} ms is the activity around the model (budget reservation and response-store`,
    `  write in Redis, the SDK's activity dispatch), ${h.workflowTaskQueued} ms the workflow task waiting for the worker,`,
    `  ${h.activityQueued} ms the activity waiting (eager execution hands it over with the workflow task's answer).`,
    `  The in-process bound does a phase in ${round(r.in_process.serial_latency_ms.p50 / PHASE_COUNT, 2)} ms: the rest is what durability costs here.`,
    `- **Throughput (${at32.per_second}/s at 32).** It is CPU-bound: a decision costs ${cpu.temporal} ms of the Temporal`,
    `  server's CPU, ${cpu.worker} ms of the worker's and ${cpu.api} ms of the API's, ${round(cpuTotal)} ms in all, so ${cores} cores`,
    `  finish at most ≈ ${round(ceiling, 1)} decisions/s, whatever the concurrency.`,
    ...floorReading(r),
    `- **Worker memory (${inFlight.in_flight_rss_mb} MB with ${inFlight.in_flight} in flight).** ${inFlight.idle_rss_mb} MB idle (Node, the SDK's Rust core,`,
    `  one workflow thread), then ≈ ${inFlight.per_cached_decision_kb} KB per decision in flight at the peak: heap between`,
    "  collections, the SDK's core, the calls' buffers. Every workflow shares src/domain's modules (zod",
    '  and the phase declarations were about 1 MB of heap per cached workflow before; now about 35 KB),',
    "  and the worker's V8 flags keep its young generation small and its old generation within 25 % of",
    '  what it keeps (src/main/worker-memory.ts): left to grow, the heap hid what sharing saved.',
    `- **Status reads (p99 ${reads.latency_ms.p99} ms, ${reads.achieved_per_second}/s of ${reads.target_per_second}/s).** One API process serves them at`,
    `  ${reads.cpu_ms_per_request.api} ms of CPU each, which caps it near ${round(1000 / Math.max(0.001, reads.cpu_ms_per_request.api))}/s on one core, while the load`,
    '  generator shares the other core with Redis: the tail is queueing in a saturated process.',
    '  Several API processes behind a load balancer (the API is stateless) scale reads on a',
    '  machine with the cores for them.',
    `- **Creates (p99 ${creates.latency_ms.p99} ms at ${creates.achieved_per_second}/s).** Each start costs the Temporal server ${creates.cpu_ms_per_request.temporal} ms`,
    `  and the API ${creates.cpu_ms_per_request.api} ms of CPU: ${round(creates.achieved_per_second * creates.cpu_ms_per_request.temporal)} ms of server CPU a second at this rate, on`,
    '  the cores the API and the load generator share.',
    `- **A 1 s model (${(slow.orchestration_share * 100).toFixed(2)} % orchestration).** ${slowOverheadMs} ms per phase outside the model, the`,
    '  same hops as above; the 2 % target allows 20 ms per phase.',
  ];
}

/**
 * The production topology's server on PostgreSQL: throughput and where the CPU goes, per
 * decision, which is what sizing needs.
 */
function onPostgres(r: BenchResults): string[] {
  const runs = [r.postgres.concurrency_32, r.postgres.concurrency_128];
  const at32 = r.postgres.concurrency_32;
  const server = at32.cpu_ms_per_decision.temporal + at32.postgres_cpu_ms_per_decision;
  const perCore = (ms: number) => Math.round(1000 / Math.max(ms, 1));
  return [
    'The Temporal server of `npm run cluster` and docker-compose.yml (frontend, history, matching',
    "and worker services in one process, `temporal/server/production.yaml`) on this machine's",
    'PostgreSQL, history and SQL visibility in two databases; one worker and one API as above.',
    '',
    table(
      [
        'concurrency',
        'decisions/s',
        'p50',
        'p99',
        'CPU per decision: Temporal server',
        'PostgreSQL',
        'worker',
        'API',
      ],
      runs.map((f) => [
        f.concurrency,
        f.per_second,
        `${f.latency_ms.p50} ms`,
        `${f.latency_ms.p99} ms`,
        `${f.cpu_ms_per_decision.temporal} ms`,
        `${f.postgres_cpu_ms_per_decision} ms`,
        `${f.cpu_ms_per_decision.worker} ms`,
        `${f.cpu_ms_per_decision.api} ms`,
      ]),
    ),
    '',
    `Sizing from these figures: one core of Temporal server and PostgreSQL together carries about`,
    `${perCore(server)} decisions/s (${server.toFixed(0)} ms of CPU per decision), one core of worker about`,
    `${perCore(at32.cpu_ms_per_decision.worker)} decisions/s with the instant offline model. A real model adds no worker CPU`,
    'to speak of while it thinks, only decisions in flight (memory: see above). The two cores here',
    'are shared by every process, so the rate is bounded by their sum, not by any one of them.',
  ];
}

/**
 * Cores per 100 decisions/s for each role, from the CPU per decision on PostgreSQL at the
 * highest concurrency measured, and the history transactions they make (docs/DEPLOYMENT.md).
 */
export function sizingRows(
  r: BenchResults,
): { role: string; per_decision: string; per_100: string }[] {
  const f = r.postgres.concurrency_128;
  const cores = (ms: number) => `${round((ms * 100) / 1000, 1)} cores`;
  const rows = [
    ['Temporal server (all four services)', f.cpu_ms_per_decision.temporal],
    ['PostgreSQL (history and visibility)', f.postgres_cpu_ms_per_decision],
    ['workers (instant offline model)', f.cpu_ms_per_decision.worker],
    ['API (creates)', f.cpu_ms_per_decision.api],
    ...(f.redis_cpu_ms_per_decision === undefined
      ? []
      : [['Redis (projection, budget, response store)', f.redis_cpu_ms_per_decision] as const]),
  ] as const;
  const out: { role: string; per_decision: string; per_100: string }[] = rows.map(([role, ms]) => ({
    role,
    per_decision: `${ms} ms CPU`,
    per_100: cores(ms),
  }));
  if (f.history_transactions_per_decision !== undefined) {
    out.push({
      role: 'history shards: state changes written',
      per_decision: `${f.history_transactions_per_decision} transactions`,
      per_100: `${round(f.history_transactions_per_decision * 100)} transactions/s`,
    });
  }
  return out;
}

function sizing(r: BenchResults): string[] {
  if (r.postgres.concurrency_128.redis_cpu_ms_per_decision === undefined) return [];
  return [
    '',
    `Per 100 decisions/s, from the run at ${r.postgres.concurrency_128.concurrency} in flight (docs/DEPLOYMENT.md turns this into a plan):`,
    '',
    table(
      ['role', 'per decision', 'per 100 decisions/s'],
      sizingRows(r).map((x) => [x.role, x.per_decision, x.per_100]),
    ),
  ];
}

/** Many decisions at once against a slow model, on one worker (see tools/bench/slow-model.ts). */
function burstSection(b: SlowModelFigures | undefined): string[] {
  if (!b) return [];
  const cpu = b.cpu_ms_per_decision;
  return [
    '',
    `## ${b.decisions} decisions at once, the model ${b.call_ms / 1000} s per call`,
    '',
    `One worker with the settings' defaults (started as Dockerfile.worker starts it), its openai provider streaming`,
    `from the bench's model server (${b.chunks_per_answer} chunks over ${b.call_ms} ms a call), all ${b.decisions} decisions created at once.`,
    '',
    table(
      ['all completed', 'model calls', 'most calls at once', 'worker RSS idle → peak'],
      [
        [
          `${b.seconds} s`,
          b.model_calls,
          b.model_max_open,
          `${b.worker_idle_rss_mb} → ${b.worker_peak_rss_mb} MB`,
        ],
      ],
    ),
    '',
    `CPU per decision: worker ${cpu.worker} ms, Temporal ${cpu.temporal} ms, API ${cpu.api} ms, model server ${cpu.model_server} ms;`,
    `cores busy ${b.cores_busy.stack} of the stack, ${b.cores_busy.machine} of the machine (load average ${b.load_average[0]} → ${b.load_average[1]}).`,
    `That CPU is ${round((Object.values(cpu).reduce((a, c) => a + c, 0) * b.decisions) / 1000 / b.machine.cores)} s of work for ${b.machine.cores} cores with nothing else running, so no run here ends sooner`,
    'however many slots the worker has; the most calls at once shows whether its slots held calls back.',
  ];
}

/** Model output on its way to clients, streaming on and off (see tools/bench/live-output.ts). */
function liveSection(l: LiveOutputFigures | undefined, machine: Machine | undefined): string[] {
  if (!l) return [];
  const elsewhere =
    !machine || describeMachine(machine) !== describeMachine(l.machine)
      ? `, on ${describeMachine(l.machine)}`
      : '';
  const { on, off } = l;
  const callSeconds = round((on.chunks_per_call * l.chunk_interval_ms) / 1000, 1);
  const leg = (name: string, d: Distribution) => [
    name,
    d.samples,
    `${d.p50} ms`,
    `${d.p99} ms`,
    `${d.max} ms`,
  ];
  const runs = [on, l.unpublished, off];
  const columns = ['streaming on', 'streaming, unpublished', 'off'];
  const worker = (f: LiveRunFigures) => f.cpu_ms_per_decision.worker;
  const onOff = (name: string, pick: (f: LiveRunFigures) => number | string) => [
    name,
    ...runs.map(pick),
  ];
  const cpu = (name: string, key: keyof LiveRunFigures['cpu_ms_per_decision']) => [
    ...onOff(name, (f) => f.cpu_ms_per_decision[key]),
    off.cpu_ms_per_decision[key] > 0
      ? round(on.cpu_ms_per_decision[key] / off.cpu_ms_per_decision[key], 2)
      : '—',
  ];
  return [
    '',
    '## Live output',
    '',
    `${l.decisions} decisions at once, each followed from its creation by a client of its own on`,
    `\`GET /decisions/{id}/events\` (deltas included), in ${on.rounds} round(s) per mode (${l.order.join(', ')});`,
    `measured on ${l.date.slice(0, 10)}${elsewhere}. The model is the`,
    "bench's own Chat Completions server (`tools/bench/model-server.ts`), a process of its own reached",
    "over HTTP by the worker's `openai` provider: it answers each call with JSON valid for the phase's",
    `schema, streamed in ${on.chunks_per_call} chunks ${l.chunk_interval_ms} ms apart on average (about ${callSeconds} s a call, ${on.model_calls} calls a`,
    'decision), each chunk carrying a marker of its own whose send time it records. Redis is a server',
    "of the bench's own for this part, so its counts are this stack's alone. One machine, one clock:",
    "a chunk's latency runs from the model server writing it to the client reading the delta that",
    'carries its text; the legs split at the id Redis gave the live event (its clock, whole',
    'milliseconds).',
    '',
    table(
      ['streaming on', 'chunks', 'p50', 'p99', 'max'],
      [
        leg(`model server → client, ${l.decisions} decisions at once`, on.latency_ms),
        leg('model server → Redis (the worker reads, batches, writes)', on.to_redis_ms),
        leg(
          'Redis → client (the API reads the live stream, sends the delta)',
          on.redis_to_client_ms,
        ),
        leg('model server → client, one decision on its own', l.alone.latency_ms),
        leg('model server → Redis', l.alone.to_redis_ms),
        leg('Redis → client', l.alone.redis_to_client_ms),
      ],
    ),
    '',
    on.latency_ms.missing === 0
      ? 'Every chunk sent reached its client.'
      : `**${on.latency_ms.missing} chunks sent never reached a client.**`,
    ...(on.latency_ms.before_open > 0
      ? [
          `${on.latency_ms.before_open} chunks were sent before their client's stream opened: read from the stream's past, they are left out.`,
        ]
      : []),
    `Over the rounds streaming on, the machine had ${on.cores_busy.machine} of its ${l.machine.cores} cores busy on average, ${on.cores_busy.stack} of them this`,
    "stack's processes and the clients: the rest is other work on the machine, which the figures share it with.",
    '',
    table(
      ['phase', 'chunks', 'p50', 'p99', 'max'],
      Object.entries(on.latency_by_phase_ms).map(([phase, d]) => leg(`\`${phase}\``, d)),
    ),
    '',
    `Where it goes. The worker writes a running phase's output at most once per ${LIVE_INTERVAL_MS} ms`,
    '(`LIVE_INTERVAL_MS`) in one pipelined write, so a chunk waits 0 to 50 ms in the worker before it',
    `leaves, ${LIVE_INTERVAL_MS / 2} ms on average, however idle the machine: the leg to Redis alone has a p99 of about`,
    `${LIVE_INTERVAL_MS} ms by design (one decision on its own: p50 ${l.alone.to_redis_ms.p50} ms, p99 ${l.alone.to_redis_ms.p99} ms). The rest is waiting for a core: the worker's`,
    'one event loop parses every stream it reads (retrieval starts a call per information need of',
    'every decision at once) beside its activities and workflow tasks, and the API parses each',
    "call's answer so far for every delta it sends.",
    on.latency_ms.p99 <= 50
      ? 'The p99 stays within 50 ms.'
      : `A p99 under 50 ms at the client needs a shorter interval (more writes: see Redis below) and cores to spare.`,
    `A decision took ${round(on.decision_ms.p50 / 1000)} s (p50) with streaming, ${round(off.decision_ms.p50 / 1000)} s without.`,
    '',
    '### Redis, per phase run',
    '',
    table(
      ['', ...columns],
      [
        onOff('commands (all)', (f) => f.redis_per_phase.commands),
        ...['xadd', 'expire', 'xread', 'evalsha'].map((c) =>
          onOff(c.toUpperCase(), (f) => f.redis_per_phase.by_command[c] ?? 0),
        ),
        onOff('bytes received by Redis', (f) => f.redis_per_phase.net_input_bytes),
        onOff('bytes sent by Redis', (f) => f.redis_per_phase.net_output_bytes),
        onOff(
          'live events written (entries of the live streams)',
          (f) => f.redis_per_phase.live_entries,
        ),
        onOff(
          'live stream per decision, after it ended',
          (f) =>
            `${round(f.live_stream_per_decision.bytes / 1024, 1)} KB, ${f.live_stream_per_decision.entries} entries`,
        ),
        onOff('deltas a client received per decision', (f) => f.deltas_per_decision),
      ],
    ),
    '',
    "From Redis's own counters (`INFO commandstats`, `INFO stats`) over each mode's rounds, divided by the",
    "phases run (ten per decision); they include every other write of the stack's (projection,",
    "budget, stored answers) and the API's reads. A live stream's bytes are `MEMORY USAGE`.",
    '',
    '### CPU per decision',
    '',
    table(
      ['ms of CPU per decision', ...columns, 'on / off'],
      [
        cpu('worker', 'worker'),
        cpu('API', 'api'),
        cpu('Redis', 'redis'),
        cpu('Temporal dev server', 'temporal'),
        cpu('model server', 'model_server'),
        cpu("clients (the bench's process)", 'clients'),
        onOff(
          'cores busy on average: the machine (this stack)',
          (f) => `${f.cores_busy.machine} (${f.cores_busy.stack})`,
        ).concat(''),
      ],
    ),
    '',
    'Three modes, each a worker and an API of its own on a task queue of its own (one Temporal dev',
    'server, one Redis, one model server), run the same workload (decisions, pace, a client per',
    'decision with deltas) in alternating rounds, so that what else runs on the machine falls on',
    'each alike. Streaming on: as deployed. Streaming, unpublished: the worker streams as before but',
    'hands the output to no one (`node tools/bench/worker.cjs --unpublished`), so the live channel',
    'writes nothing. Off: `LLM_STREAM=false`: the provider asks for whole answers, the model server',
    'sends each after the time streaming it would have taken, and the live channel publishes each',
    'answer as one delta.',
    `Streaming costs the worker ${l.worker_cpu_ratio}× its CPU without: ${round(worker(on) - worker(off))} ms more per decision, of which`,
    `reading the stream is ${round(worker(l.unpublished) - worker(off))} ms and publishing it ${round(worker(on) - worker(l.unpublished))} ms (${on.live_stream_per_decision.entries} live events a decision);`,
    'on a shared machine, differences of a few ms are noise.',
  ];
}

/** Two workers under one provider limit (see tools/bench/provider-limit.ts). */
function limitSection(p: ProviderLimitFigures | undefined, machine: Machine | undefined): string[] {
  if (!p) return [];
  const elsewhere =
    !machine || describeMachine(machine) !== describeMachine(p.machine)
      ? `, on ${describeMachine(p.machine)}`
      : '';
  return [
    '',
    '## The provider limit',
    '',
    `${p.decisions} decisions started at once on one Temporal dev server and ${p.workers} workers, each with`,
    `\`LLM_REQUESTS_PER_MINUTE=${p.limit_per_minute}\` and the \`openai\` provider (one Redis counting for both), against`,
    `the bench's model server, which answers each call after ${p.call_ms / 1000} s, records when each arrived, and answers`,
    `429 with \`Retry-After\` a call that would make more than ${p.limit_per_minute} in the trailing minute; measured on`,
    `${p.date.slice(0, 10)}${elsewhere}, load average ${p.load_average.start} at its start and ${p.load_average.end} at its end.`,
    '',
    table(
      ['figure', 'measured'],
      [
        ['calls seen by the model server', `${p.requests} in ${p.busy_seconds} s`],
        [
          'most calls in any 60 s (from its arrival times)',
          `${p.max_in_any_minute} (limit ${p.limit_per_minute})`,
        ],
        [
          `the shortest time in which it saw ${p.limit_per_minute + 1} calls`,
          p.shortest_over_limit_s === null ? '—' : `${p.shortest_over_limit_s} s`,
        ],
        ['answered 429', p.refused_429],
        [
          `calls a minute, busy (the first ${p.counted} calls, first to ${p.counted + 1}st)`,
          p.requests_per_minute,
        ],
        ['decisions completed', `${p.decisions_completed} of ${p.decisions}`],
        [
          "a phase's wait for the limit p50 · p99 · longest",
          `${p.wait_ms.p50} · ${p.wait_ms.p99} · ${p.wait_ms.max} ms`,
        ],
        ['attempts retried after a wait cut at their deadline', p.retried_after_limit_wait],
      ],
    ),
    '',
    'The limit is a sliding log in Redis: no minute, wherever it starts, holds more grants than the',
    'limit, and each grant counts two seconds past its minute, for its way to the provider. With',
    "far more calls waiting than the limit lets through, the first minute's calls go within",
    'seconds and each later call goes when one of a minute (and two seconds) before has left: the',
    `first burst repeats every 62 s, hence at most ${p.limit_per_minute} × 60 / 62 ≈ ${Math.round((p.limit_per_minute * 60) / 62)} calls a minute. A`,
    "phase's wait is its activity's last attempt, start to completion, less the model's time it",
    'reported.',
  ];
}

/** A chart of the run, drawn by Vega-Lite as SVG. */
export async function chart(r: BenchResults): Promise<string> {
  const vega = await import('vega');
  const vl = await import('vega-lite');
  const systems = [
    {
      system: 'Temporal (memory)',
      serial: r.memory_serial.latency_ms.p50,
      rate: r.concurrency.find((c) => c.concurrency === 32)!.per_second,
    },
    {
      system: 'Temporal (SQLite)',
      serial: r.sqlite.serial.latency_ms.p50,
      rate: r.sqlite.concurrency_32.per_second,
    },
    {
      system: 'Temporal (PostgreSQL)',
      serial: r.postgres.serial.latency_ms.p50,
      rate: r.postgres.concurrency_32.per_second,
    },
    { system: 'BullMQ chain', serial: r.bullmq.serial_latency_ms.p50, rate: r.bullmq.per_second },
    {
      system: 'in-process bound',
      serial: r.in_process.serial_latency_ms.p50,
      rate: r.in_process.per_second,
    },
  ];
  const hops = HOP_NAMES.filter(
    ([key]) => key !== 'model' || r.memory_serial.hops_per_phase_ms.model > 0,
  ).map(([key, name]) => ({
    hop: name.replace(/ \(.*\)$/, ''),
    ms: r.memory_serial.hops_per_phase_ms[key],
  }));
  const bar = (title: string, values: object[], x: string, y: string, xTitle: string) => ({
    title,
    width: 260,
    height: 180,
    data: { values },
    mark: { type: 'bar', tooltip: true },
    encoding: {
      y: { field: y, type: 'nominal', sort: null, title: null, axis: { labelLimit: 320 } },
      x: { field: x, type: 'quantitative', title: xTitle },
    },
  });
  const spec = vl.compile({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    vconcat: [
      {
        hconcat: [
          bar('Serial decision, p50', systems, 'serial', 'system', 'ms'),
          bar('Throughput at 32 in flight', systems, 'rate', 'system', 'decisions/s'),
        ],
      },
      {
        hconcat: [
          bar(
            'Temporal throughput by concurrency',
            r.concurrency.map((c) => ({ in_flight: String(c.concurrency), rate: c.per_second })),
            'rate',
            'in_flight',
            'decisions/s',
          ),
          bar('Where a phase goes (serial, mean)', hops, 'ms', 'hop', 'ms per phase'),
        ],
      },
    ],
    config: { font: 'sans-serif' },
  } as Parameters<typeof vl.compile>[0]).spec;
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  return view.toSVG();
}

/** The results written to `dir` by an earlier run; fails when there are none. */
export function readResults(dir: string): BenchResults {
  const path = join(dir, 'benchmarks.json');
  if (!existsSync(path)) {
    throw new Error(`${path} does not exist: run the whole bench first, then one part of it`);
  }
  return JSON.parse(readFileSync(path, 'utf8')) as BenchResults;
}

/** Writes BENCHMARKS.md, benchmarks.json and benchmarks.svg to `dir`; records a step if asked. */
export async function writeResults(r: BenchResults, dir: string, step?: string): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  // Written as the project's Prettier would write them, so that `npm run lint` passes on them.
  const prettier = await import('prettier');
  const write = async (path: string, text: string) =>
    writeFileSync(
      path,
      await prettier.format(text, { ...(await prettier.resolveConfig(path)), filepath: path }),
    );
  const steps = readSteps();
  if (step) {
    steps.push(stepOf(step, r));
    await write(STEPS_FILE, JSON.stringify(steps, null, 2));
  }
  const files = {
    md: join(dir, 'BENCHMARKS.md'),
    json: join(dir, 'benchmarks.json'),
    svg: join(dir, 'benchmarks.svg'),
  };
  await write(files.json, JSON.stringify(r, null, 2));
  writeFileSync(files.svg, await chart(r));
  const findings = existsSync(FINDINGS_FILE) ? `\n${readFileSync(FINDINGS_FILE, 'utf8')}` : '';
  await write(files.md, markdown(r, steps) + findings);
  return [...Object.values(files), ...(step ? [STEPS_FILE] : [])];
}

function bytesText(bytes: number): string {
  if (bytes >= 2 ** 30) return `${round(bytes / 2 ** 30, 2)} GiB`;
  if (bytes >= 2 ** 20) return `${round(bytes / 2 ** 20, 1)} MiB`;
  if (bytes >= 10 * 1024) return `${round(bytes / 1024, 1)} KiB`;
  return `${Math.round(bytes)} B`;
}

function ttlText(t: Pick<KindTotals, 'ttl_s' | 'no_ttl'> | undefined): string {
  if (!t) return '—';
  const parts: string[] = [];
  if (t.ttl_s) {
    parts.push(
      t.ttl_s.min === t.ttl_s.max ? `${t.ttl_s.min} s` : `${t.ttl_s.min}–${t.ttl_s.max} s`,
    );
  }
  if (t.no_ttl > 0) parts.push(`none (${t.no_ttl} keys)`);
  return parts.join(', ');
}

/** What one Redis holds and does per decision (see tools/bench/redis-footprint.ts). */
function footprintSection(f: RedisFootprintFigures | undefined, machine: Machine | undefined) {
  if (!f) return [];
  const elsewhere =
    !machine || describeMachine(machine) !== describeMachine(f.machine)
      ? `, on ${describeMachine(f.machine)}`
      : '';
  const { offline, streaming } = f;
  const kinds: [KeyKind, string][] = [
    ['record', 'record hash `decision:<id>`'],
    ['result', 'result `decision:<id>:result`'],
    ['events', 'durable events `decision:<id>:events`'],
    ['live', 'live output `decision:<id>:live`'],
    ['ledger', 'budget ledger `budget:<workflow>:<run>`'],
    ['response', 'stored model answers `llm:<workflow>:<run>:<activity>:<hash>`'],
  ];
  const index = f.shared.index;
  const indexEntryBytes = index && index.entries > 0 ? index.bytes / index.entries : 0;
  const indexBytes = Math.round(indexEntryBytes * f.index_entries_per_decision);
  const perEntry = (kind: KeyKind, r: FootprintRound) => {
    const k = r.keys[kind];
    return k && k.entries > 0 ? `${Math.round(k.bytes / k.entries)} B` : '—';
  };
  const peak = f.running.reduce<(typeof f.running)[number] | null>(
    (best, s) => (!best || s.bytes_all > best.bytes_all ? s : best),
    null,
  );
  const finished = Math.max(
    streaming.used_memory_per_decision,
    streaming.key_bytes_per_decision + indexBytes,
  );
  const finishedOffline = Math.max(
    offline.used_memory_per_decision,
    offline.key_bytes_per_decision + indexBytes,
  );
  const week = 7 * 24 * 3600;
  const plan = redisPlan({
    perSecond: 1,
    ttlSeconds: week,
    decisionSeconds: 60,
    finishedBytes: finished,
    runningBytes: peak?.bytes_all ?? finished,
    cpuMsPerDecision: streaming.work.cpu_ms_per_decision,
    commandsPerDecision: streaming.work.commands_per_decision,
  });
  const work = (name: string, pick: (w: typeof offline.work) => string | number) => [
    name,
    pick(offline.work),
    pick(streaming.work),
  ];
  const hook = f.webhook;
  const limitLog = f.shared['provider-limit'];
  const grantBytes =
    limitLog && limitLog.entries > 0 ? Math.round(limitLog.bytes / limitLog.entries) : 0;
  return [
    '',
    '## Redis: what it holds and does per decision',
    '',
    `On a Redis server of this part's own (${f.redis_version}, so that no other keys count), measured on ${f.date.slice(0, 10)}${elsewhere}:`,
    `${offline.decisions} decisions with the offline model, ${offline.concurrency} at a time (every other one with a webhook to a`,
    `local receiver), then ${streaming.decisions} created at once streaming from the bench's model server (${streaming.chunks_per_answer} chunks`,
    `${streaming.chunk_interval_ms} ms apart a call), a client on each one's event stream. The stack ran with`,
    `\`DECISION_TTL_SECONDS=${f.ttl_seconds}\`, and with the rate limit and the provider limit on (high enough to hold nothing`,
    "back) so that their keys exist. Bytes are Redis's own `MEMORY USAGE` of each key (`SAMPLES 0`:",
    'every element counted), the keys grouped by kind by their names (with or without hash tags);',
    "`used_memory` is `INFO memory`'s after a round less before it, which also counts the keyspace's",
    'own tables (an entry per key, one more per key with a TTL) and the index entries.',
    '',
    '### Per finished decision',
    '',
    table(
      ['key', 'offline', 'streaming', 'entries (offline · streaming)', 'TTL once finished'],
      [
        ...kinds.map(([kind, name]) => {
          const a = offline.keys[kind];
          const b = streaming.keys[kind];
          const keys = (k: typeof a) => (k && k.keys !== 1 ? ` (${k.keys} keys)` : '');
          return [
            name,
            a ? `${bytesText(a.bytes)}${keys(a)}` : '—',
            b ? `${bytesText(b.bytes)}${keys(b)}` : '—',
            `${a?.entries ?? '—'} · ${b?.entries ?? '—'}`,
            ttlText(b ?? a),
          ];
        }),
        [
          '**its keys in all**',
          `**${bytesText(offline.key_bytes_per_decision)}**`,
          `**${bytesText(streaming.key_bytes_per_decision)}**`,
          '',
          '',
        ],
        [
          `index entries (${f.index_entries_per_decision} a decision, ${Math.round(indexEntryBytes)} B each)`,
          `${indexBytes} B`,
          `${indexBytes} B`,
          '',
          ttlText(index),
        ],
        [
          '`used_memory` per decision',
          bytesText(offline.used_memory_per_decision),
          bytesText(streaming.used_memory_per_decision),
          '',
          '',
        ],
      ],
    ),
    '',
    `An event of the durable stream takes ${perEntry('events', offline)} offline, ${perEntry('events', streaming)} streaming (a phase's`,
    `output rides in its \`phase.completed\`, the result in \`decision.completed\`); an entry of the live stream`,
    `${perEntry('live', streaming)} (a delta: the text of ${LIVE_INTERVAL_MS} ms of output), at most 2000 entries kept. A stored answer is`,
    "the model's whole answer, kept for the TTL from its call (the offline model's answers reach the",
    'live stream whole, one delta a call). TTLs were read back with `PTTL` once every decision had ended: the record, result and',
    "events get the TTL when the decision finishes, the live stream at its last write's refresh (every",
    '10 s), the ledger and each stored answer at their call.',
    `With a webhook (one delivery, \`decision.completed\`, ${hook.delivered} of ${hook.decisions} recorded delivered), the record hash takes ${bytesText(hook.record_bytes)}`,
    `against ${bytesText(hook.without_bytes)} without: ${bytesText(hook.record_bytes - hook.without_bytes)} for the subscription and the delivery's state.`,
    '',
    '### While decisions run (streaming)',
    '',
    table(
      [
        's after the first create',
        'running',
        'finished',
        'record',
        'events',
        'live',
        'ledger',
        'answers',
        'keys in all, per running decision',
        'entries: events · live',
      ],
      f.running.map((x) => [
        x.seconds,
        x.running,
        x.finished,
        bytesText(x.bytes.record ?? 0),
        bytesText(x.bytes.events ?? 0),
        bytesText(x.bytes.live ?? 0),
        bytesText(x.bytes.ledger ?? 0),
        bytesText(x.bytes.response ?? 0),
        `**${bytesText(x.bytes_all)}**`,
        `${x.events_entries} · ${x.live_entries}`,
      ]),
    ),
    '',
    'A decision is running while it has no result key. Its record and events have no TTL until it',
    "ends; its keys grow phase by phase to about the finished decision's less the result.",
    '',
    '### Shared by all decisions',
    '',
    table(
      ['kind', 'keys', 'bytes', 'entries', 'TTL'],
      (Object.entries(f.shared) as [KeyKind, KindTotals][]).map(([kind, t]) => [
        kind,
        t.keys,
        bytesText(t.bytes),
        t.entries,
        ttlText(t),
      ]),
    ),
    '',
    'Indexes: `index:created`, `index:completed` and one `index:owner:<principal>` per owner, one',
    'entry each per decision and no TTL (see below). The provider limit: a log per limit key',
    '(provider, host and model), one entry per call granted in the last 62 s,',
    `${grantBytes} B each, so a limit of N calls a minute holds at most about N entries. The rate limit: one`,
    'counter per API key, and one per client address that presented a wrong key, for a minute.',
    "`events-hub:<uuid>`: an API process's wake-up stream while it has event streams open (ten",
    'entries at most, no TTL; deleted once its last stream has closed).',
    `After both rounds Redis held ${f.memory.keys} keys in ${bytesText(f.memory.used_memory)} (\`used_memory\`; \`used_memory_dataset\``,
    `${bytesText(f.memory.used_memory_dataset)}), ${bytesText(f.memory.used_memory_rss)} resident (fragmentation ratio ${f.memory.fragmentation_ratio}).`,
    '',
    '### Work',
    '',
    table(
      ['', 'offline', 'streaming, a client each'],
      [
        work('round (s)', (w) => w.seconds),
        work('commands run per decision', (w) => w.commands_per_decision),
        work('commands a second, the round’s mean', (w) => w.commands_per_second),
        work('Redis CPU per decision', (w) => `${w.cpu_ms_per_decision} ms`),
        work('Redis cores busy, the round’s mean', (w) => w.cores_busy),
        work('decisions a second that fill one core', (w) =>
          Math.round(perSecondPerCore(w.cpu_ms_per_decision)),
        ),
        work('commands a second then', (w) =>
          Math.round(perSecondPerCore(w.cpu_ms_per_decision) * w.commands_per_decision),
        ),
      ],
    ),
    '',
    `Calls per decision, offline: ${Object.entries(offline.work.by_command)
      .map(([c, n]) => `${c} ${n}`)
      .join(', ')}; streaming: ${Object.entries(streaming.work.by_command)
      .map(([c, n]) => `${c} ${n}`)
      .join(', ')}.`,
    'Commands and CPU from `INFO stats` and `INFO cpu`, which count the commands a script runs as',
    "well as the script's call (`EVALSHA`), less the bench's own reads (`SCAN`,",
    '`MEMORY USAGE`, `XLEN`, `INFO`, by their `commandstats` time). Redis runs commands on one',
    `thread: one core is its ceiling. This machine is shared (load average ${f.load_average[0]} at the part's start,`,
    `${f.load_average[1]} at its end), so CPU per decision moves between runs; the bytes do not.`,
    '',
    '### Expiry',
    '',
    `${f.expiry.decisions} more decisions with \`DECISION_TTL_SECONDS=${f.expiry.ttl_seconds}\`: every key of theirs was gone ${f.expiry.gone_after_s} s after the`,
    `last had ended (Redis expires keys on access and in a background cycle). Their index entries`,
    `stayed: ${f.expiry.index_entries_left} of ${Math.round(f.expiry.decisions * f.index_entries_per_decision)}; after one more decision finished, ${f.expiry.index_entries_left_after_next}. A finishing write drops`,
    "entries of the created and completed indexes older than the TTL (100 at a time); an owner's",
    'index loses them when a listing meets them.',
    '',
    '### What it comes to',
    '',
    `A finished decision kept for the TTL costs ${bytesText(finished)} streaming, ${bytesText(finishedOffline)} offline (the larger of`,
    `\`used_memory\` per decision and its keys with their index entries): 1 GiB holds ${decisionsPerGib(finished, 1).toLocaleString('en-US')} streaming decisions (${decisionsPerGib(finishedOffline, 1).toLocaleString('en-US')}`,
    `offline). With the default TTL of seven days, a steady 1 decision/s keeps ${plan.kept.toLocaleString('en-US')} decisions:`,
    `${bytesText(plan.bytes)} (running ones, at ${bytesText(peak?.bytes_all ?? finished)} each, are a rounding error beside them);`,
    `1 GiB holds a steady ${round(perSecondForGib(finished, 1, week) * 60, 1)} decisions a minute. A real model's answers are longer than the`,
    "bench's: the events, the result and the stored answers grow with them.",
  ];
}

/** Decisions on a Redis Cluster beside one Redis (see tools/bench/redis-scale.ts). */
function clusterSection(c: RedisScaleFigures | undefined): string[] {
  if (!c) return [];
  const first = c.rounds[0];
  return [
    '',
    '## Decisions on a Redis Cluster beside one Redis',
    '',
    `The same stack (dev server in memory, one worker, one API, the offline model) with everything`,
    `the project keeps in Redis on one redis-server, then on a Redis Cluster of ${c.cluster.masters} masters with`,
    `${c.cluster.replicas_per_master} replica each (all on this machine), alternating, ${first?.decisions ?? 0} decisions a round in a closed loop of`,
    `${first?.concurrency ?? 0}. On the cluster each projection write waits for its master's replica (WAIT).`,
    '',
    table(
      [
        'Redis',
        'decisions/s',
        'latency p50 / p99',
        'Redis CPU a decision',
        'worker CPU a decision',
        'load before',
      ],
      c.rounds.map((r) => [
        r.redis,
        r.per_second,
        `${r.latency_ms.p50} / ${r.latency_ms.p99} ms`,
        `${r.redis_cpu_ms_per_decision ?? '—'} ms`,
        `${r.cpu_ms_per_decision.worker} ms`,
        r.load_average,
      ]),
    ),
    '',
    `Cluster ÷ one Redis: ${c.ratio.per_second}× the decisions/s, ${c.ratio.redis_cpu_ms_per_decision}× the Redis CPU per decision (every`,
    "node's, replicas included). On two cores the cluster's six servers share the machine with the",
    'stack, so this shows what the cluster costs, not what it adds: its gain is capacity spread over',
    'machines (docs/DEPLOYMENT.md, "When one Redis is not enough").',
  ];
}
