import { loadavg } from 'node:os';
import type { ClusterBinaries } from '../cluster/binaries';
import { cpuMeter, machineCpuMs, processUsage, round, thisMachine, type Machine } from './measure';
import type { SentMarkers } from './model-server';
import { startModelStack } from './stack';

export interface SlowModelFigures {
  date: string;
  machine: Machine;
  /** Decisions started at once. */
  decisions: number;
  /** How long the model server takes per call: `chunks_per_answer` chunks spread over it. */
  call_ms: number;
  chunks_per_answer: number;
  /** From the first create until every decision had completed. */
  seconds: number;
  /** Calls the model server answered, and the most it had open at once. */
  model_calls: number;
  model_max_open: number;
  worker_idle_rss_mb: number;
  worker_peak_rss_mb: number;
  cpu_ms_per_decision: { worker: number; temporal: number; api: number; model_server: number };
  /** Cores busy on average: the whole machine, and the stack's processes. */
  cores_busy: { machine: number; stack: number };
  /** The machine's 1-minute load average before and after: what else ran beside it. */
  load_average: [number, number];
}

export interface SlowModelOptions {
  binaries: ClusterBinaries;
  bundle: string;
  decisions: number;
  callMs: number;
  chunks: number;
  log: (line: string) => void;
}

/**
 * Many decisions at once against a slow model, on one worker with the settings' defaults, started
 * as Dockerfile.worker starts it: a model server that streams each answer over `callMs` (the worker's openai
 * provider, as in production), a Redis of its own. How long all take, how many calls the model
 * saw at once (the worker's activity slots bound it), and the worker's memory meanwhile.
 */
export async function slowModel(options: SlowModelOptions): Promise<SlowModelFigures> {
  const { model, stack, stop } = await startModelStack({
    binaries: options.binaries,
    bundle: options.bundle,
    modelArgs: [options.chunks, Math.round(options.callMs / options.chunks)],
  });
  const markers = async () =>
    (await (await fetch(`${model.url}/bench/markers`)).json()) as SentMarkers;
  try {
    const worker = stack.worker.pid;
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const idle = processUsage(worker).rssMb;
    await markers();
    const cpu = cpuMeter({
      worker,
      temporal: stack.temporalPid,
      api: stack.api.role.pid,
      model_server: model.role.pid,
    });
    const machine = machineCpuMs();
    const loadBefore = loadavg()[0]!;
    const started = performance.now();
    const s = stack;
    // Created 20 at a time, as fast as the API takes them: hundreds of requests at one instant
    // would measure the dev server's start-workflow queue instead.
    const ids: string[] = [];
    for (let i = 0; i < options.decisions; i += 20) {
      const batch = Math.min(20, options.decisions - i);
      ids.push(...(await Promise.all(Array.from({ length: batch }, () => s.create()))));
    }
    let peak = idle;
    let done = false;
    const all = Promise.all(ids.map((id) => s.completion(id))).finally(() => (done = true));
    while (!done) {
      peak = Math.max(peak, processUsage(worker).rssMb);
      await Promise.race([all, new Promise((resolve) => setTimeout(resolve, 250))]);
    }
    await all;
    const seconds = (performance.now() - started) / 1000;
    const cpuMs = cpu(options.decisions, 1);
    const sent = await markers();
    const stackMs = Object.values(cpuMs).reduce((a, b) => a + b, 0) * options.decisions;
    options.log(
      `  ${options.decisions} decisions in ${round(seconds)} s, the model saw ${sent.max_open} calls at once, worker RSS ${round(peak)} MB`,
    );
    return {
      date: new Date().toISOString(),
      machine: thisMachine(),
      decisions: options.decisions,
      call_ms: options.callMs,
      chunks_per_answer: options.chunks,
      seconds: round(seconds),
      model_calls: sent.calls,
      model_max_open: sent.max_open,
      worker_idle_rss_mb: round(idle),
      worker_peak_rss_mb: round(peak),
      cpu_ms_per_decision: cpuMs,
      cores_busy: {
        machine: round((machineCpuMs().busy - machine.busy) / 1000 / seconds, 2),
        stack: round(stackMs / 1000 / seconds, 2),
      },
      load_average: [round(loadBefore, 2), round(loadavg()[0]!, 2)],
    };
  } finally {
    await stop();
  }
}
