import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { needContext } from '../../src/activities';
import { runAgent } from '../../src/activities/run-agent';
import type { PhaseOutputs } from '../../src/domain/decision';
import { PHASE_NAMES } from '../../src/domain/phases';
import { combineRetrievals } from '../../src/domain/retrieval';
import { KnowledgeBase } from '../../src/knowledge/knowledge-base';
import { toStrictSchema } from '../../src/llm/json-schema';
import type { LanguageModel, ModelRequest } from '../../src/llm/model';
import { phaseNamed, selectInputs } from '../../src/phases';
import { retrieveInformation } from '../../src/phases/retrieve-information';
import {
  byPhase,
  countersDelta,
  distribution,
  liveIdOf,
  matchMarkers,
  parseInfo,
  streamIdMs,
} from '../../tools/bench/live-latency';
import { roundOrder, summarize, type Round } from '../../tools/bench/live-output';
import { percentile } from '../../tools/bench/measure';
import { markedAnswer, markerOf, markersIn } from '../../tools/bench/schema-answer';

/** The bench's model server's answers, without the server: one marked answer per call. */
function markedModel(strict: boolean, chunks: number) {
  let n = 0;
  const calls: { task: string; chunks: string[]; markers: string[] }[] = [];
  const model: LanguageModel = {
    name: 'marked',
    generate(request: ModelRequest) {
      const schema = strict ? toStrictSchema(request.jsonSchema) : request.jsonSchema;
      const answer = markedAnswer(schema, chunks, () => markerOf(n++));
      calls.push({ task: request.task, ...answer });
      return Promise.resolve({ text: answer.chunks.join(''), model: 'marked', usage: null });
    },
  };
  return { model, calls };
}

/** Runs the ten phases in order, as the workflow does, with `model` answering every call. */
async function decide(model: LanguageModel) {
  const knowledge = await KnowledgeBase.load(resolve(__dirname, '../../knowledge'));
  const query = 'Should we move billing to a managed Postgres?';
  const outputs: PhaseOutputs = {};
  const repairs: number[] = [];
  for (const phase of PHASE_NAMES) {
    if (phase === 'retrieveInformation') {
      const runs = await Promise.all(
        outputs.identifyInformationNeeds!.needs.map((need) =>
          runAgent(retrieveInformation, needContext(query, need, knowledge, 4), model),
        ),
      );
      repairs.push(...runs.map((r) => r.repair_rounds));
      outputs.retrieveInformation = combineRetrievals(runs).output;
      continue;
    }
    const ctx = { query, outputs: selectInputs(phase, outputs), context: null, review: null };
    const run = await runAgent(phaseNamed(phase), ctx, model);
    repairs.push(run.repair_rounds);
    (outputs as Record<string, unknown>)[phase] = run.output;
  }
  return { outputs, repairs };
}

describe("the bench's model server answers", () => {
  it.each([true, false])(
    'are valid for every phase, strict schema %s: ten phases, no repair round',
    async (strict) => {
      const { model, calls } = markedModel(strict, 50);
      const { outputs, repairs } = await decide(model);
      expect(repairs.every((r) => r === 0)).toBe(true);
      // Retrieval found passages for the needs the bench's answers wrote, so it called the model.
      const needs = outputs.identifyInformationNeeds!.needs.length;
      expect(needs).toBeGreaterThanOrEqual(2);
      expect(calls.filter((c) => c.task === 'retrieveInformation')).toHaveLength(needs);
      expect(calls).toHaveLength(9 + needs);
    },
  );

  it('come in chunks that each carry one marker of their own, about as many as asked', async () => {
    const { model, calls } = markedModel(true, 50);
    await decide(model);
    const all = calls.flatMap((c) => c.markers);
    expect(new Set(all).size).toBe(all.length);
    for (const call of calls) {
      // Every chunk carries its own marker (and any an earlier answer put in an enum it copies);
      // a tail without room joins the last chunk.
      expect(call.chunks.map((c) => markersIn(c).filter((m) => call.markers.includes(m)))).toEqual(
        call.markers.map((m) => [m]),
      );
      expect(call.chunks.slice(0, -1).every((c, i) => c.endsWith(call.markers[i]!))).toBe(true);
      expect(call.markers.length, call.task).toBeGreaterThanOrEqual(10);
      expect(call.markers.length, call.task).toBeLessThanOrEqual(50);
    }
    const mean = all.length / calls.length;
    expect(mean).toBeGreaterThan(30);
  });

  it('fit the limits that strict mode writes into descriptions', () => {
    const schema = {
      type: 'object',
      properties: {
        short: { type: 'string', description: 'A name. At most 12 characters.' },
        long: { type: 'string', maxLength: 60 },
      },
    };
    let n = 0;
    const answer = markedAnswer(schema, 10, () => markerOf(n++));
    const value = JSON.parse(answer.chunks.join('')) as { short: string; long: string };
    expect(value.short.length).toBeLessThanOrEqual(12);
    expect(value.long.length).toBeLessThanOrEqual(60);
    expect(markersIn(value.long)).toHaveLength(3);
    expect(answer.markers).toHaveLength(3);
  });
});

describe("the bench's chunk latency", () => {
  const receipt = (marker: string, at: number, storedMs = at, openedAt = 0) => ({
    marker,
    at,
    storedMs,
    openedAt,
  });

  it('pairs each marker sent with its first sighting, and splits it at Redis', () => {
    const sent = { mk000001: 1000, mk000002: 1020, mk000003: 1040 };
    const matched = matchMarkers(sent, [
      receipt('mk000001', 1030, 1010),
      receipt('mk000002', 1060, 1050),
      // An earlier answer's marker copied into a later phase's answer: its own chunk was earlier.
      receipt('mk000001', 5000, 4990),
      receipt('mk00zzzz', 1100),
    ]);
    expect(matched.latencies).toEqual([30, 40]);
    expect(matched.toRedis).toEqual([10, 30]);
    expect(matched.fromRedis).toEqual([20, 10]);
    expect(matched).toMatchObject({ missing: 1, repeats: 1, unknown: 1, beforeOpen: 0 });
  });

  it('groups the latencies by the phase whose delta carried them', () => {
    const sent = { mk000001: 0, mk000002: 0, mk000003: 0 };
    const matched = matchMarkers(sent, [
      { ...receipt('mk000001', 10), phase: 'identifyTrigger' },
      { ...receipt('mk000002', 30), phase: 'retrieveInformation' },
      { ...receipt('mk000003', 50), phase: 'retrieveInformation' },
    ]);
    expect(byPhase(matched)).toEqual({
      identifyTrigger: { samples: 1, p50: 10, p99: 10, max: 10 },
      retrieveInformation: { samples: 2, p50: 30, p99: 50, max: 50 },
    });
  });

  it('keeps the earliest sighting whatever order the clients report in', () => {
    const matched = matchMarkers({ mk000001: 1000 }, [
      receipt('mk000001', 3000),
      receipt('mk000001', 1005),
    ]);
    expect(matched.latencies).toEqual([5]);
    expect(matched.repeats).toBe(1);
  });

  it("leaves out chunks sent before their client's stream opened", () => {
    const matched = matchMarkers({ mk000001: 1000, mk000002: 2000 }, [
      receipt('mk000001', 1600, 1000, 1500),
      receipt('mk000002', 2010, 2005, 1500),
    ]);
    expect(matched.latencies).toEqual([10]);
    expect(matched.beforeOpen).toBe(1);
    expect(matched.missing).toBe(0);
  });

  it('summarises by nearest rank: p50, p99 and the largest', () => {
    const samples = Array.from({ length: 200 }, (_, i) => 200 - i);
    expect(distribution(samples)).toEqual({ samples: 200, p50: 100, p99: 198, max: 200 });
    expect(distribution([7])).toEqual({ samples: 1, p50: 7, p99: 7, max: 7 });
    expect(distribution([]).samples).toBe(0);
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
    expect(percentile([1, 2, 3, 4], 100)).toBe(4);
  });

  it('reads the live position of an event id and the time Redis stored it', () => {
    expect(liveIdOf('1700000000000-0_1700000000123-4')).toBe('1700000000123-4');
    expect(liveIdOf('1700000000000-0_0-0')).toBeNull();
    expect(liveIdOf('1700000000000-0')).toBeNull();
    expect(streamIdMs('1700000000123-4')).toBe(1700000000123);
  });

  it("reads Redis's INFO: command calls and numeric fields", () => {
    const info = [
      '# Commandstats',
      'cmdstat_xadd:calls=120,usec=300,usec_per_call=2.50,rejected_calls=0,failed_calls=0',
      'cmdstat_expire:calls=7,usec=9,usec_per_call=1.29,rejected_calls=0,failed_calls=0',
      '# Stats',
      'total_net_input_bytes:123456',
      'instantaneous_input_kbps:1.25',
      'redis_mode:standalone',
    ].join('\r\n');
    expect(parseInfo(info)).toEqual({
      calls: { xadd: 120, expire: 7 },
      fields: { total_net_input_bytes: 123456, instantaneous_input_kbps: 1.25 },
    });
  });

  it('counts what changed between two readings, per unit, leaving out what did not', () => {
    expect(countersDelta({ xadd: 100, get: 5 }, { xadd: 150, get: 5, xread: 10 }, 20)).toEqual({
      xadd: 2.5,
      xread: 0.5,
    });
  });
});

describe("the bench's live-output rounds", () => {
  it('alternate so that a steady drift of the load falls on every mode alike', () => {
    expect(roundOrder(['on', 'unpublished', 'off'], 2)).toEqual([
      'on',
      'unpublished',
      'off',
      'off',
      'unpublished',
      'on',
    ]);
    expect(roundOrder(['a', 'b'], 3)).toEqual(['a', 'b', 'b', 'a', 'a', 'b']);
  });

  it('add up: samples pooled, counts summed, then per decision and per phase', () => {
    const round = (n: number, marker: string, latency: number, workerMs: number): Round => ({
      decisions: n,
      seconds: 10,
      decisionMs: [1000 * n],
      sent: {
        sent: { [marker]: 0 },
        calls: 12 * n,
        streamed: 12 * n,
        chunks: 600 * n,
        aborted: 0,
        max_open: 0,
      },
      receipts: [
        { marker, at: latency, storedMs: latency / 2, openedAt: 0, phase: 'identifyTrigger' },
      ],
      deltas: 200 * n,
      calls: { xadd: 250 * n },
      fields: { total_commands_processed: 600 * n, total_net_input_bytes: 1000 * n },
      liveBytes: 40_000 * n,
      liveEntries: 200 * n,
      cpuMs: { worker: workerMs, api: 0, redis: 0, temporal: 0, model_server: 0, clients: 0 },
      machineBusyMs: 15_000,
    });
    const figures = summarize([round(1, 'mk000001', 30, 200), round(3, 'mk000002', 50, 1000)]);
    expect(figures).toMatchObject({
      rounds: 2,
      decisions: 4,
      seconds: 20,
      model_calls: 12,
      chunks_per_call: 50,
      deltas_per_decision: 200,
      latency_ms: { samples: 2, p50: 30, p99: 50, missing: 0 },
      to_redis_ms: { p50: 15, p99: 25 },
      redis_per_phase: {
        commands: 60,
        net_input_bytes: 100,
        live_entries: 20,
        by_command: { xadd: 25 },
      },
      live_stream_per_decision: { bytes: 40_000, entries: 200 },
      cores_busy: { machine: 1.5, stack: 0.06 },
    });
    expect(figures.cpu_ms_per_decision.worker).toBe(300);
  });
});
