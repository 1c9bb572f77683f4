// Where a bare workflow's time goes, hop by hop, on a dev server with one setting changed at a
// time. Each variant runs on a fresh dev server (in memory, temporal/dev-server.json's settings
// plus the variant's), with an in-process worker, `--workflows` bare workflows of ten (`--steps`)
// no-op activities one after another; rounds go through the variants in turn, so that what else
// runs on the machine meanwhile falls on all of them alike.
//
//   npx tsx tools/bench/wft-gap.ts [--workflows 20] [--rounds 2] [--steps 10] [--concurrency 0]
//     [--json out.json] VARIANT...
//   --concurrency C adds a closed loop of 10·C workflows, C in flight: workflows per second and
//   CPU per workflow of the server and of this process (the worker and the client).
//   npx tsx tools/bench/wft-gap.ts --address 127.0.0.1:7233 [...]: against a server already running
//     (to watch it with strace, ss or its metrics), with worker changes only.
//
// A VARIANT is a label, alone (the settings as they are) or followed by `:` and changes separated
// by commas: `key=value` adds `--dynamic-config-value key=value` to the dev server's flags,
// `worker.<option>=value` sets a WorkerOptions field, `eager=false` lets no activity start eagerly,
// `sqlite=true` keeps the server's state in a SQLite file (a fresh one each run),
// `shape.<option>=value` adds one of a decision's features to the workflow (see BareShape),
// `server.<flag>=value` adds a start-dev flag. Values are JSON where they parse as JSON, else
// strings. E.g.:
//   npx tsx tools/bench/wft-gap.ts default 'one-partition:matching.numTaskqueueReadPartitions=1'
import {
  bundleWorkflowCode,
  DefaultLogger,
  NativeConnection,
  Runtime,
  Worker,
} from '@temporalio/worker';
import type { WorkerOptions } from '@temporalio/worker';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { findTemporalCli } from '../temporal/cli';
import { startDevServer } from '../temporal/dev-server';
import { freePort } from '../process/ports';
import { closedLoop, eventMs, percentile, processUsage, round } from './measure';
import type { BareShape, bareWorkflow } from './bare-workflow';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

const EventType = temporal.api.enums.v1.EventType;
const STICKY = temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_STICKY;

interface Variant {
  label: string;
  serverArgs: string[];
  worker: Partial<WorkerOptions>;
  eager: boolean;
  /** On a SQLite file of its own (fresh each run) instead of in memory. */
  sqlite: boolean;
  /** What the workflow does beside its steps (see BareShape). */
  shape: BareShape;
}

/** The hops of one workflow's history, each a list of samples in milliseconds. */
interface Samples {
  /** The first workflow task, on the task queue every worker polls. */
  firstWftScheduledToStarted: number[];
  /** Every later one: on the worker's sticky queue while it keeps the workflow cached. */
  wftScheduledToStarted: number[];
  wftStartedToCompleted: number[];
  activityScheduledToStarted: number[];
  activityStartedToCompleted: number[];
  /** WorkflowExecutionStarted → WorkflowExecutionCompleted, from the history. */
  historyEndToEnd: number[];
  /** The client's start call → its result received. */
  clientEndToEnd: number[];
  /** With `--concurrency`: workflows completed per second, and the server's CPU per workflow. */
  perSecond: number[];
  serverCpuMsPerWorkflow: number[];
  /** This process's CPU (the worker and the client) per workflow. */
  workerCpuMsPerWorkflow: number[];
  /** How many later workflow tasks went to a sticky queue, and how many in all. */
  stickyTasks: number[];
  laterTasks: number[];
}
type Hop = keyof Samples;
const HOPS: Hop[] = [
  'firstWftScheduledToStarted',
  'wftScheduledToStarted',
  'wftStartedToCompleted',
  'activityScheduledToStarted',
  'activityStartedToCompleted',
  'historyEndToEnd',
  'clientEndToEnd',
];

function emptySamples(): Samples {
  return {
    firstWftScheduledToStarted: [],
    wftScheduledToStarted: [],
    wftStartedToCompleted: [],
    activityScheduledToStarted: [],
    activityStartedToCompleted: [],
    historyEndToEnd: [],
    clientEndToEnd: [],
    perSecond: [],
    serverCpuMsPerWorkflow: [],
    workerCpuMsPerWorkflow: [],
    stickyTasks: [],
    laterTasks: [],
  };
}

/** Adds one history's hops to `into`; each started event points at its scheduled event. */
function readHops(events: readonly HistoryEvent[], into: Samples): void {
  const byId = new Map(events.map((e) => [String(e.eventId), e]));
  let firstWft = true;
  let sticky = 0;
  let later = 0;
  let lastWftScheduled: HistoryEvent | undefined;
  for (const e of events) {
    switch (e.eventType) {
      case EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
        lastWftScheduled = e;
        break;
      case EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED: {
        const scheduled = lastWftScheduled;
        if (!scheduled) break;
        const gap = eventMs(e) - eventMs(scheduled);
        if (firstWft) into.firstWftScheduledToStarted.push(gap);
        else {
          into.wftScheduledToStarted.push(gap);
          later++;
          if (scheduled.workflowTaskScheduledEventAttributes?.taskQueue?.kind === STICKY) sticky++;
        }
        firstWft = false;
        break;
      }
      case EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED: {
        const started = byId.get(String(e.workflowTaskCompletedEventAttributes?.startedEventId));
        if (started) into.wftStartedToCompleted.push(eventMs(e) - eventMs(started));
        break;
      }
      case EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED: {
        const scheduled = byId.get(String(e.activityTaskStartedEventAttributes?.scheduledEventId));
        if (scheduled) into.activityScheduledToStarted.push(eventMs(e) - eventMs(scheduled));
        break;
      }
      case EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: {
        const started = byId.get(String(e.activityTaskCompletedEventAttributes?.startedEventId));
        if (started) into.activityStartedToCompleted.push(eventMs(e) - eventMs(started));
        break;
      }
    }
  }
  into.historyEndToEnd.push(eventMs(events.at(-1)!) - eventMs(events[0]!));
  into.stickyTasks.push(sticky);
  into.laterTasks.push(later);
}

function jsonOrString(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function parseVariant(spec: string): Variant {
  const at = spec.indexOf(':');
  const label = at < 0 ? spec : spec.slice(0, at);
  const variant: Variant = {
    label,
    serverArgs: [],
    worker: {},
    eager: true,
    sqlite: false,
    shape: {},
  };
  if (!label) throw new Error(`variant "${spec}" has no label`);
  if (at < 0) return variant;
  for (const change of spec.slice(at + 1).split(',')) {
    const eq = change.indexOf('=');
    if (eq <= 0) throw new Error(`"${change}" in variant "${spec}" is not key=value`);
    const key = change.slice(0, eq).trim();
    const value = change.slice(eq + 1).trim();
    if (key === 'eager' || key === 'sqlite') {
      if (value !== 'true' && value !== 'false') throw new Error(`${key}=${value}: true or false`);
      variant[key] = value === 'true';
    } else if (key.startsWith('worker.')) {
      (variant.worker as Record<string, unknown>)[key.slice('worker.'.length)] =
        jsonOrString(value);
    } else if (key.startsWith('shape.')) {
      (variant.shape as Record<string, unknown>)[key.slice('shape.'.length)] = jsonOrString(value);
    } else if (key.startsWith('server.')) {
      variant.serverArgs.push(`--${key.slice('server.'.length)}`, value);
    } else {
      variant.serverArgs.push(
        '--dynamic-config-value',
        `${key}=${JSON.stringify(jsonOrString(value))}`,
      );
    }
  }
  return variant;
}

/** The temporal CLI, needed only to start a server of the run's own. */
function cliPathOrFail(): string {
  const cliPath = findTemporalCli();
  if (!cliPath) throw new Error('No temporal CLI: run `npm run temporal:install` first');
  return cliPath;
}

async function runVariant(
  variant: Variant,
  workflows: number,
  /** Activities per workflow. */
  steps: number,
  /** Workflows in flight at once for the throughput part; 0 skips it. */
  concurrency: number,
  workflowBundle: { code: string },
  into: Samples,
  /** A server already running (to watch it from outside); null starts a fresh one. */
  existing: string | null,
): Promise<void> {
  const address = existing ?? `127.0.0.1:${await freePort()}`;
  const dir = variant.sqlite ? mkdtempSync(join(tmpdir(), 'wft-gap-')) : null;
  const server = existing
    ? null
    : await startDevServer({
        cliPath: cliPathOrFail(),
        address,
        namespace: 'default',
        uiPort: null,
        dbFile: dir ? join(dir, 'temporal.db') : null,
        extraArgs: variant.serverArgs,
      });
  const connection = await NativeConnection.connect({ address });
  const clientConnection = await Connection.connect({ address });
  const client = new Client({ connection: clientConnection, namespace: 'default' });
  const taskQueue = `wft-gap-${process.pid}`;
  const worker = await Worker.create({
    connection,
    namespace: 'default',
    taskQueue,
    workflowBundle,
    // An activity given a payload answers with as many bytes.
    activities: { noop: (input?: string) => Promise.resolve(input) },
    ...variant.worker,
  });
  const running = worker.run();
  try {
    const one = async (id: string) => {
      const started = performance.now();
      await client.workflow.execute<typeof bareWorkflow>('bareWorkflow', {
        taskQueue,
        workflowId: id,
        args: [steps, variant.eager, variant.shape],
      });
      return performance.now() - started;
    };
    // The first workflows warm the worker's and the server's caches and connections.
    for (let i = 0; i < 3; i++) await one(`warm-${i}-${Date.now()}`);
    for (let i = 0; i < workflows; i++) {
      const id = `bare-${i}-${Date.now()}`;
      const ms = await one(id);
      const history = await client.workflow.getHandle(id).fetchHistory();
      readHops(history.events ?? [], into);
      into.clientEndToEnd.push(ms);
    }
    if (concurrency > 0) {
      // Ten times as many workflows as are in flight, after as many to warm up.
      await closedLoop(concurrency, concurrency, async (i) => {
        await one(`warm-loop-${i}-${Date.now()}`);
      });
      const count = concurrency * 10;
      const serverBefore = server ? processUsage(server.process.pid!).cpuMs : NaN;
      const workerBefore = process.cpuUsage();
      const seconds = await closedLoop(concurrency, count, (i) =>
        one(`loop-${i}-${Date.now()}`).then(() => undefined),
      );
      const worker = process.cpuUsage(workerBefore);
      into.perSecond.push(count / seconds);
      if (server) {
        into.serverCpuMsPerWorkflow.push(
          (processUsage(server.process.pid!).cpuMs - serverBefore) / count,
        );
      }
      into.workerCpuMsPerWorkflow.push((worker.user + worker.system) / 1000 / count);
    }
  } finally {
    worker.shutdown();
    await running;
    await connection.close();
    await clientConnection.close();
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

function summary(samples: Samples) {
  const stat = (hop: Hop) => {
    const s = samples[hop];
    return { p50: round(percentile(s, 50), 2), p90: round(percentile(s, 90), 2), n: s.length };
  };
  const sticky = samples.stickyTasks.reduce((a, b) => a + b, 0);
  const later = samples.laterTasks.reduce((a, b) => a + b, 0);
  const median = (s: number[]) => (s.length ? round(percentile(s, 50), 2) : null);
  return {
    ...Object.fromEntries(HOPS.map((hop) => [hop, stat(hop)])),
    // Medians over the rounds.
    perSecond: median(samples.perSecond),
    serverCpuMsPerWorkflow: median(samples.serverCpuMsPerWorkflow),
    workerCpuMsPerWorkflow: median(samples.workerCpuMsPerWorkflow),
    eachRound: {
      perSecond: samples.perSecond.map((x) => round(x, 2)),
      serverCpuMsPerWorkflow: samples.serverCpuMsPerWorkflow.map((x) => round(x, 2)),
    },
    stickyShareOfLaterTasks: later ? round(sticky / later, 3) : null,
  };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      workflows: { type: 'string', default: '20' },
      rounds: { type: 'string', default: '2' },
      concurrency: { type: 'string', default: '0' },
      steps: { type: 'string', default: '10' },
      json: { type: 'string' },
      address: { type: 'string' },
    },
  });
  const workflows = Number(values.workflows);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(workflows) || workflows < 1) throw new Error('--workflows: a count ≥ 1');
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds: a count ≥ 1');
  const steps = Number(values.steps);
  if (!Number.isInteger(steps) || steps < 1) throw new Error('--steps: a count ≥ 1');
  const concurrency = Number(values.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 0) {
    throw new Error('--concurrency: a count ≥ 0 (0 runs no throughput part)');
  }
  const variants = (positionals.length ? positionals : ['default']).map(parseVariant);
  const existing = values.address ?? null;
  if (existing && variants.some((v) => v.serverArgs.length > 0)) {
    throw new Error(
      `--address ${existing}: that server's settings are its own; give no server changes`,
    );
  }
  Runtime.install({ shutdownSignals: [], logger: new DefaultLogger('WARN') });
  const workflowBundle = await bundleWorkflowCode({
    workflowsPath: resolve(__dirname, 'bare-workflow.ts'),
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} },
  });
  const results = new Map(variants.map((v) => [v.label, emptySamples()]));
  const load: number[] = [];
  const report = () => ({
    uptime: execFileSync('uptime', { encoding: 'utf8' }).trim(),
    load_1m_at_each_start: load.map((l) => round(l, 2)),
    workflows_per_variant_per_round: workflows,
    steps,
    concurrency,
    rounds,
    variants: Object.fromEntries(
      variants.map((v) => [
        v.label,
        {
          serverArgs: v.serverArgs,
          worker: v.worker,
          eager: v.eager,
          sqlite: v.sqlite,
          ...summary(results.get(v.label)!),
        },
      ]),
    ),
  });
  for (let r = 0; r < rounds; r++) {
    for (const variant of variants) {
      load.push(loadavg()[0]!);
      const before = results.get(variant.label)!.wftScheduledToStarted.length;
      await runVariant(
        variant,
        workflows,
        steps,
        concurrency,
        workflowBundle,
        results.get(variant.label)!,
        existing,
      );
      const gaps = results.get(variant.label)!.wftScheduledToStarted.slice(before);
      const rate = results.get(variant.label)!.perSecond.at(-1);
      process.stderr.write(
        `round ${r + 1} ${variant.label}: WFT scheduled→started p50 ${round(percentile(gaps, 50), 2)} ms` +
          (concurrency > 0 && rate !== undefined ? `, ${round(rate, 1)}/s at ${concurrency}` : '') +
          ` (load ${loadavg()[0]!.toFixed(2)})\n`,
      );
    }
    // After each round, so that a run cut short keeps what it measured.
    if (values.json) writeFileSync(values.json, `${JSON.stringify(report(), null, 2)}\n`);
  }
  process.stdout.write(`${JSON.stringify(report(), null, 2)}\n`);
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
