import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { phaseNamed } from '../../src/phases';
import type { AgentContext } from '../../src/phases/phase';
import { runAgent } from '../../src/activities/run-agent';
import type { PhaseOutputs } from '../../src/domain/decision';
import type { PhaseOutputMap, RetrievalAnswer } from '../../src/domain/outputs';
import { PHASE_NAMES } from '../../src/domain/phases';
import { KnowledgeBase } from '../../src/knowledge/knowledge-base';
import { createOfflineModel } from '../../src/llm/offline-model';
import { subjectOf } from '../../src/phases/offline-rules';

/** Runs all ten agents on the offline model, retrieval against the sample knowledge base. */
async function decide(kb: KnowledgeBase, query: string): Promise<PhaseOutputMap> {
  const model = createOfflineModel();
  const outputs: PhaseOutputs = {};
  for (const phase of PHASE_NAMES) {
    if (phase === 'retrieveInformation') {
      const answers: RetrievalAnswer[] = [];
      for (const need of outputs.identifyInformationNeeds!.needs) {
        const hits = kb.search(need.question, 4);
        const ctx: AgentContext = {
          query,
          outputs,
          need,
          passages: hits.map((h, i) => ({ ...h, ref: `P${i + 1}` })),
        };
        answers.push(
          (await runAgent(phaseNamed('retrieveInformation'), ctx, model)).output as RetrievalAnswer,
        );
      }
      outputs.retrieveInformation = { summary: `${answers.length} needs`, answers };
    } else {
      (outputs as Record<string, unknown>)[phase] = (
        await runAgent(phaseNamed(phase), { query, outputs }, model)
      ).output;
    }
  }
  return outputs as PhaseOutputMap;
}

describe('offline model', () => {
  let kb: KnowledgeBase;
  beforeAll(async () => {
    kb = await KnowledgeBase.load(resolve(__dirname, '../../knowledge'));
  });

  it('produces schema-valid output for every phase, specific to the question', async () => {
    const out = await decide(kb, 'Should we move billing to a managed Postgres?');
    expect(out.identifyTrigger.summary).toContain('move billing to a managed Postgres');
    expect(out.identifyTrigger.stakeholders).toContain('Finance');
    expect(out.establishGoals.criteria.reduce((n, c) => n + c.weight, 0)).toBeCloseTo(1);
    expect(out.generateAlternatives.alternatives.length).toBeGreaterThanOrEqual(3);
    expect(out.compileResult.title).toBe('Should we move billing to a managed Postgres?');
    expect(out.generateAlternatives.alternatives.map((a) => a.name)).toContain(
      out.updateDraft.revised_recommendation,
    );
  });

  it('answers information needs from retrieved passages and cites their real sources', async () => {
    const out = await decide(kb, 'Should we move billing to a managed Postgres?');
    const answered = out.retrieveInformation.answers.filter((a) => a.answered);
    expect(answered.length).toBeGreaterThan(0);
    for (const a of answered) {
      // Each citation names a passage its need was given, and that passage's own file.
      const need = out.identifyInformationNeeds.needs.find((n) => n.id === a.need_id)!;
      const given = new Map(kb.search(need.question, 4).map((h, i) => [`P${i + 1}`, h.source]));
      expect(a.citations.length).toBeGreaterThan(0);
      for (const c of a.citations) {
        expect(given.has(c.passage_id), c.passage_id).toBe(true);
        expect(c.source).toBe(given.get(c.passage_id));
      }
    }
    expect(JSON.stringify(answered)).toMatch(/4,900 USD|60 to 120 seconds|six to eight weeks/);
  });

  it('is deterministic and differs between questions', async () => {
    const a = await decide(kb, 'Should we hire two more platform engineers?');
    const b = await decide(kb, 'Should we hire two more platform engineers?');
    const c = await decide(kb, 'Should we move billing to a managed Postgres?');
    expect(a).toEqual(b);
    expect(a.identifyTrigger).not.toEqual(c.identifyTrigger);
    expect(subjectOf('Should we hire two more platform engineers?')).toBe(
      'hire two more platform engineers',
    );
  });

  it('holds each answer back by its delay setting, and an aborted call stops waiting', async () => {
    const ctx = { query: 'Should we hire two more platform engineers?', outputs: {} };
    const slow = createOfflineModel({ delayMs: 300 });
    const started = performance.now();
    const run = await runAgent(phaseNamed('identifyTrigger'), ctx, slow);
    // Measured by the runner around the call, as it measures a remote model's.
    expect(run.latency_ms).toBeGreaterThanOrEqual(295);
    expect(performance.now() - started).toBeGreaterThanOrEqual(295);
    expect(run.output).toEqual(
      (await runAgent(phaseNamed('identifyTrigger'), ctx, createOfflineModel())).output,
    );

    const aborted = new AbortController();
    const call = runAgent(
      phaseNamed('identifyTrigger'),
      ctx,
      createOfflineModel({ delayMs: 60_000 }),
      {
        signal: aborted.signal,
      },
    );
    aborted.abort();
    await expect(call).rejects.toThrow(/abort/i);
  });

  it('answers from the agent context the runner passes as hints, and refuses a call without it', async () => {
    const model = createOfflineModel();
    const request = {
      task: 'identifyTrigger',
      system: 'You identify triggers.',
      messages: [{ role: 'user' as const, content: 'Should we hire two more platform engineers?' }],
      schemaName: 'identifyTrigger',
      jsonSchema: {},
      maxOutputTokens: 1000,
      maxAnswerChars: 10_000,
    };
    await expect(model.generate(request)).rejects.toThrow(/carries no agent context/);
    // The prompt asks about hiring; the hints about billing: the answer follows the hints.
    const answer = await model.generate({
      ...request,
      hints: { query: 'Should we move billing to a managed Postgres?', outputs: {} },
    });
    const { stakeholders } = JSON.parse(answer.text) as { stakeholders: string[] };
    expect(stakeholders).toContain('Finance');
    expect(stakeholders).not.toContain('Engineering managers');
  });
});
