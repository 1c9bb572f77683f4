import { randomUUID } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { needContext } from '../../src/activities';
import { retrieveInformation, unansweredNeed } from '../../src/phases/retrieve-information';
import { runAgent } from '../../src/activities/run-agent';
import { initialRecord, type DecisionRecord, type PhaseOutputs } from '../../src/domain/decision';
import { phaseNamed, selectInputs } from '../../src/phases';
import { PHASE_NAMES, type PhaseName } from '../../src/domain/phases';
import { combineRetrievals } from '../../src/domain/retrieval';
import type { KnowledgeBase } from '../../src/knowledge/knowledge-base';
import { createOfflineModel } from '../../src/llm/offline-model';
import { DecisionProjection } from '../../src/projection/redis-projection';
import { closedLoop, round, spread } from './measure';

/**
 * One phase's work as the activities do it (the agent, the offline model, retrieval from the
 * knowledge base), without Temporal: what the peers below run ten times per decision.
 */
function phaseRunner(knowledge: KnowledgeBase) {
  const model = createOfflineModel();
  return async (phase: PhaseName, query: string, outputs: PhaseOutputs): Promise<unknown> => {
    if (phase !== 'retrieveInformation') {
      const ctx = { query, outputs: selectInputs(phase, outputs), context: null, review: null };
      return (await runAgent(phaseNamed(phase), ctx, model)).output;
    }
    const needs = outputs.identifyInformationNeeds?.needs ?? [];
    const runs = await Promise.all(
      needs.map(async (need) => {
        const ctx = needContext(query, need, knowledge, 4);
        if (ctx.passages.length === 0) {
          const usage = { input_tokens: 0, output_tokens: 0 };
          return { output: unansweredNeed(ctx), model_calls: 0, usage, latency_ms: 0 };
        }
        return runAgent(retrieveInformation, ctx, model);
      }),
    );
    return combineRetrievals(runs).output;
  };
}

/** The record after phase `index` completed, as the workflow would project it. */
function advance(record: DecisionRecord, index: number): DecisionRecord {
  const phase = record.phases[index]!;
  phase.status = 'completed';
  phase.completed_at = new Date().toISOString();
  record.seq += 1;
  record.updated_at = phase.completed_at;
  const next = record.phases[index + 1];
  if (next) {
    next.status = 'running';
    record.current_phase = next.name;
  } else {
    record.status = 'completed';
    record.completed_at = phase.completed_at;
  }
  return record;
}

export interface PeerFigures {
  serial_latency_ms: { p50: number; p99: number };
  /** (Serial p50 − the in-process bound's p50) / ten phases; null for the bound itself. */
  overhead_per_phase_ms: number | null;
  concurrency: number;
  per_second: number;
}

async function measure(
  run: (query: string) => Promise<void>,
  serialRuns: number,
  concurrency: number,
  decisions: number,
): Promise<Omit<PeerFigures, 'overhead_per_phase_ms'>> {
  const serialLatencies: number[] = [];
  for (let i = 0; i < serialRuns; i++) {
    const t0 = performance.now();
    await run(`Should we move billing to a managed Postgres? (serial ${i})`);
    serialLatencies.push(performance.now() - t0);
  }
  const seconds = await closedLoop(concurrency, decisions, (i) =>
    run(`Should we move billing to a managed Postgres? (${i})`),
  );
  return {
    serial_latency_ms: spread(serialLatencies, 2),
    concurrency,
    per_second: round(decisions / seconds, 1),
  };
}

/** Ten phases in one process, one after another, with one projection write to Redis each. */
export async function inProcessBound(
  redis: Redis,
  knowledge: KnowledgeBase,
  counts: { serial: number; concurrency: number; decisions: number },
): Promise<PeerFigures> {
  const runPhase = phaseRunner(knowledge);
  const projection = new DecisionProjection(redis, { prefix: 'bench:inproc:', ttlSeconds: 600 });
  const run = async (query: string) => {
    const record = initialRecord(randomUUID(), { query }, new Date().toISOString());
    record.status = 'running';
    const outputs: PhaseOutputs = {};
    for (const [index, phase] of PHASE_NAMES.entries()) {
      (outputs as Record<string, unknown>)[phase] = await runPhase(phase, query, outputs);
      await projection.write(advance(record, index), [], 'workflow', 'bench');
    }
  };
  const figures = await measure(run, counts.serial, counts.concurrency, counts.decisions);
  return { ...figures, overhead_per_phase_ms: null };
}

interface ChainJob {
  id: string;
  query: string;
  index: number;
  outputs: PhaseOutputs;
  record: DecisionRecord;
}

/**
 * A BullMQ chain: each phase is a job whose handler runs the phase, writes the projection and
 * enqueues the next phase's job, on the same Redis. The worker runs in this process.
 */
export async function bullmqChain(
  redisUrl: string,
  knowledge: KnowledgeBase,
  projectionRedis: Redis,
  counts: { serial: number; concurrency: number; decisions: number },
): Promise<Omit<PeerFigures, 'overhead_per_phase_ms'>> {
  const runPhase = phaseRunner(knowledge);
  const projection = new DecisionProjection(projectionRedis, {
    prefix: 'bench:bullmq:',
    ttlSeconds: 600,
  });
  const url = new URL(redisUrl);
  const connection = { host: url.hostname, port: Number(url.port || 6379) };
  const name = `bench-phases-${process.pid}`;
  const queue = new Queue<ChainJob>(name, {
    connection,
    prefix: 'bench-bull',
    defaultJobOptions: { removeOnComplete: true, removeOnFail: true },
  });
  const finished = new Map<string, () => void>();
  const worker = new Worker<ChainJob>(
    name,
    async (job: Job<ChainJob>) => {
      const { id, query, index, outputs, record } = job.data;
      const phase = PHASE_NAMES[index]!;
      (outputs as Record<string, unknown>)[phase] = await runPhase(phase, query, outputs);
      await projection.write(advance(record, index), [], 'workflow', 'bench');
      if (index + 1 < PHASE_NAMES.length) {
        await queue.add(PHASE_NAMES[index + 1]!, { id, query, index: index + 1, outputs, record });
      } else {
        finished.get(id)?.();
      }
    },
    { connection, prefix: 'bench-bull', concurrency: counts.concurrency },
  );
  await worker.waitUntilReady();
  const run = async (query: string) => {
    const id = randomUUID();
    const record = initialRecord(id, { query }, new Date().toISOString());
    record.status = 'running';
    const done = new Promise<void>((resolve) => finished.set(id, resolve));
    await queue.add(PHASE_NAMES[0]!, { id, query, index: 0, outputs: {}, record });
    await done;
    finished.delete(id);
  };
  try {
    return await measure(run, counts.serial, counts.concurrency, counts.decisions);
  } finally {
    await worker.close();
    await queue.obliterate({ force: true });
    await queue.close();
  }
}
