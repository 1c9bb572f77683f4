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
