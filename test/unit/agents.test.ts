import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { compileResult } from '../../src/phases/compile-result';
import { identifyInformationNeeds } from '../../src/phases/identify-information-needs';
import { updateDraft } from '../../src/phases/update-draft';
import { phaseNamed } from '../../src/phases';
import type { AgentContext } from '../../src/phases/phase';
import { draftDecision } from '../../src/phases/draft-decision';
import { establishGoals, normaliseWeights } from '../../src/phases/establish-goals';
import { generateAlternatives } from '../../src/phases/generate-alternatives';
import { retrieveInformation } from '../../src/phases/retrieve-information';
import { runAgent, validateAnswer } from '../../src/activities/run-agent';
import type { PhaseOutputs } from '../../src/domain/decision';
import { selectInputs } from '../../src/phases';
import { createOfflineModel } from '../../src/llm/offline-model';
import { PHASE_NAMES, type PhaseName } from '../../src/domain/phases';
import { CANNED, CANNED_QUERY } from '../support/canned-outputs';
import { cannedAnswer, FakeModel } from '../support/fake-model';

const passages = [
  {
    ref: 'P1',
    id: 'a.md#cost',
    source: 'a.md',
    heading: 'Cost',
    text: 'PASSAGE-MARK costs 4,900 USD.',
  },
];

/** The context each phase runs with: every earlier canned output, and for retrieval one need. */
function contextFor(phase: PhaseName): AgentContext {
  const outputs: PhaseOutputs = {};
  for (const p of PHASE_NAMES.slice(0, PHASE_NAMES.indexOf(phase))) {
    (outputs as Record<string, unknown>)[p] = CANNED[p];
  }
  return phase === 'retrieveInformation'
    ? { query: CANNED_QUERY, outputs, need: CANNED.identifyInformationNeeds.needs[0]!, passages }
    : { query: CANNED_QUERY, outputs };
}

// What each prompt must carry forward from the question and the earlier phases' fields.
const EXPECTED_IN_PROMPT: Record<PhaseName, string[]> = {
  identifyTrigger: [CANNED_QUERY],
  analyzeRootCause: ['TRIGGER-MARK', 'STAKEHOLDER-MARK', 'urgency: high'],
  defineScope: ['TRIGGER-MARK', 'ROOT-CAUSE-MARK', 'FACTOR-MARK'],
  establishGoals: ['ROOT-CAUSE-MARK', 'SCOPE-MARK', 'CONSTRAINT-MARK'],
  identifyInformationNeeds: ['SCOPE-MARK', 'GOAL-MARK', 'Reliability (weight 0.6)'],
  retrieveInformation: [
    'N1',
    'What would a managed Postgres cost for billing?',
    '[P1] source: a.md',
    'PASSAGE-MARK',
  ],
  generateAlternatives: [
    'CONSTRAINT-MARK',
    'Reliability (weight 0.6)',
    'Cost (weight 0.4)',
    'EVIDENCE-MARK',
  ],
  draftDecision: ['GOAL-MARK', 'ALTERNATIVE-MARK', 'Migrate (0.8)', 'EVIDENCE-MARK'],
  updateDraft: ['DRAFT-MARK', 'GOAL-MARK', 'Migrate, Pilot, Stay'],
  compileResult: ['TRIGGER-MARK', 'ROOT-CAUSE-MARK', 'REVISED-MARK', 'CRITIQUE-MARK'],
};

describe('agents', () => {
  it.each(PHASE_NAMES)(
    '%s builds its prompt from the earlier phases and validates',
    async (phase) => {
      const model = new FakeModel();
      const run = await runAgent(phaseNamed(phase), contextFor(phase), model);

      expect(model.requests).toHaveLength(1);
      const request = model.requests[0]!;
      expect(request.task).toBe(phase);
      for (const text of EXPECTED_IN_PROMPT[phase])
        expect(request.messages[0]!.content).toContain(text);
      expect(request.jsonSchema).toMatchObject({ type: 'object', additionalProperties: false });
      expect(run.output).toEqual(
        phase === 'retrieveInformation'
          ? expect.objectContaining({
              need_id: 'N1',
              citations: [{ passage_id: 'P1', source: 'a.md' }],
            })
          : CANNED[phase],
      );
      expect(run).toMatchObject({
        model: 'fake-model',
        model_calls: 1,
        repair_rounds: 0,
        usage: { input_tokens: 10, output_tokens: 5 },
      });
    },
  );

  it('repairs invalid output with one more call that lists the problems', async () => {
    const model = new FakeModel((_req, call) => (call === 1 ? '{"summary": 42}' : undefined));
    const run = await runAgent(phaseNamed('identifyTrigger'), contextFor('identifyTrigger'), model);

    expect(model.requests).toHaveLength(2);
    const repair = model.requests[1]!.messages;
    expect(repair.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect(repair[1]!.content).toBe('{"summary": 42}');
    expect(repair[2]!.content).toMatch(/summary: .*string/);
    expect(repair[2]!.content).toContain('trigger:');
    expect(run.output).toEqual(CANNED.identifyTrigger);
    expect(run.model_calls).toBe(2);
    expect(run.repair_rounds).toBe(1);
    expect(run.usage).toEqual({ input_tokens: 20, output_tokens: 10 });
  });

  it('fails retryably, naming the phase and the problem, when the repair is invalid too', async () => {
    let forgotten = false;
    const model = Object.assign(new FakeModel(() => 'not json at all'), {
      forget: () => {
        forgotten = true;
        return Promise.resolve();
      },
    });
    const err = await runAgent(phaseNamed('defineScope'), contextFor('defineScope'), model).catch(
      (e: unknown) => e,
    );

    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({
      type: 'InvalidModelOutput',
      nonRetryable: false,
      message: expect.stringMatching(
        /^defineScope: .*invalid after a repair round: the answer is not valid JSON/,
      ),
    });
    expect(model.requests).toHaveLength(2);
    expect(forgotten).toBe(true);
  });

  it('accepts an answer wrapped in a Markdown fence', () => {
    const answer = cannedAnswer('identifyTrigger', {});
    const text = '```json\n' + JSON.stringify(answer) + '\n```';
    const schema = phaseNamed('identifyTrigger').answer(contextFor('identifyTrigger'));
    expect(validateAnswer(schema, text)).toEqual({ ok: true, answer });
  });

  it('fails an answer past its bounds at once, for good, without a repair round', async () => {
    const model = new FakeModel(() => JSON.stringify({ summary: 'x'.repeat(200_000) }));
    const err = await runAgent(
      phaseNamed('identifyTrigger'),
      contextFor('identifyTrigger'),
      model,
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({
      type: 'OutputTooLarge',
      nonRetryable: true,
      message: expect.stringMatching(
        /^identifyTrigger: the answer of fake-model is 2000\d\d characters, over the phase's limit of \d+$/,
      ),
    });
    expect(model.requests).toHaveLength(1);
  });

  describe('per-call schemas: what earlier phases fixed, the schema enforces', () => {
    const problems = <S extends z.ZodType>(schema: S, answer: unknown) => {
      const result = validateAnswer(schema, JSON.stringify(answer));
      return result.ok ? [] : result.problems;
    };

    it('scores: exactly one required integer 1–5 per criterion, by name', () => {
      const ctx = contextFor('generateAlternatives');
      const schema = generateAlternatives.answer(ctx);
      const answer = cannedAnswer('generateAlternatives', {}) as {
        alternatives: { scores: Record<string, number> }[];
      };
      const withScores = (scores: Record<string, number>) => ({
        ...answer,
        alternatives: answer.alternatives.map((a, i) => (i === 0 ? { ...a, scores } : a)),
      });
      expect(problems(schema, answer)).toEqual([]);
      expect(problems(schema, withScores({ Reliability: 5 }))).toEqual([
        expect.stringMatching(/^alternatives\.0\.scores\.Cost: /),
      ]);
      expect(problems(schema, withScores({ Reliability: 5, Cost: 3, Speed: 2 }))).toEqual([
        expect.stringMatching(/^alternatives\.0\.scores: Unrecognized key: "Speed"/),
      ]);
      expect(problems(schema, withScores({ Reliability: 6, Cost: 3 }))).toHaveLength(1);
      const json = z.toJSONSchema(schema) as unknown as {
        properties: { alternatives: { items: { properties: { scores: { required: string[] } } } } };
      };
      expect(json.properties.alternatives.items.properties.scores.required).toEqual([
        'Reliability',
        'Cost',
      ]);
    });

    it('the recommendation is one of the alternatives, by name', () => {
      for (const agent of [draftDecision, updateDraft]) {
        const ctx = contextFor(agent.name);
        const answer = cannedAnswer(agent.name, {}) as Record<string, unknown>;
        const field = agent === draftDecision ? 'recommended' : 'revised_recommendation';
        expect(problems(agent.answer(ctx), answer)).toEqual([]);
        expect(problems(agent.answer(ctx), { ...answer, [field]: 'Something else' })).toEqual([
          expect.stringMatching(new RegExp(`^${field}: .*"Migrate"\\|"Pilot"\\|"Stay"`)),
        ]);
      }
    });

    it('retrieval: the need id is a constant and citations are refs of the passages given', () => {
      const ctx = contextFor('retrieveInformation');
      const schema = retrieveInformation.answer(ctx);
      const answer = {
        need_id: 'N1',
        answered: true,
        answer: 'a',
        confidence: 'high',
        citations: ['P1'],
      };
      expect(problems(schema, answer)).toEqual([]);
      expect(problems(schema, { ...answer, need_id: 'N2' })).toEqual([
        expect.stringMatching(/^need_id: /),
      ]);
      expect(problems(schema, { ...answer, citations: ['P9'] })).toEqual([
        expect.stringMatching(/^citations\.0: /),
      ]);
    });
  });

  describe('what code computes', () => {
    it('criteria weights: the importances normalised to add up to 1', () => {
      expect(normaliseWeights([3, 2])).toEqual([0.6, 0.4]);
      expect(normaliseWeights([3, 3, 3]).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 10);
      const out = establishGoals.finish(
        {
          summary: 's',
          goals: [{ goal: 'g', metric: 'm' }],
          criteria: [
            { name: 'Risk', importance: 5, description: 'd' },
            { name: 'risk', importance: 4, description: 'd' },
            { name: 'Cost', importance: 1, description: 'd' },
          ],
        },
        contextFor('establishGoals'),
      );
      expect(out.criteria.map((c) => [c.name, c.weight])).toEqual([
        ['Risk', 0.5],
        ['risk (2)', 0.4],
        ['Cost', 0.1],
      ]);
    });

    it('information need ids, in order', () => {
      const out = identifyInformationNeeds.finish(
        {
          summary: 's',
          needs: [
            { question: 'a', why: 'b' },
            { question: 'c', why: 'd' },
          ],
        },
        contextFor('identifyInformationNeeds'),
      );
      expect(out.needs.map((n) => n.id)).toEqual(['N1', 'N2']);
    });

    it('citation sources from the passages; an answer that cites nothing is unanswered', () => {
      const ctx = contextFor('retrieveInformation');
      const answer = { need_id: 'N1', answered: true, answer: 'a', confidence: 'high' as const };
      expect(retrieveInformation.finish({ ...answer, citations: ['P1', 'P1'] }, ctx)).toMatchObject(
        {
          question: 'What would a managed Postgres cost for billing?',
          answered: true,
          citations: [{ passage_id: 'P1', source: 'a.md' }],
        },
      );
      expect(retrieveInformation.finish({ ...answer, citations: [] }, ctx)).toMatchObject({
        answered: false,
        confidence: 'none',
        citations: [],
      });
    });

    it('weighted scores from the scores and the weights', () => {
      const ctx = contextFor('generateAlternatives');
      const answer = cannedAnswer('generateAlternatives', {}) as Parameters<
        typeof generateAlternatives.finish
      >[0];
      const out = generateAlternatives.finish(answer, ctx);
      // Migrate: 0.6 × (5−1)/4 + 0.4 × (3−1)/4 = 0.8; Stay: 0.6 × 0.25 + 0.4 × 0.75 = 0.45
      expect(out.alternatives.map((a) => a.weighted_score)).toEqual([0.8, 0.75, 0.45]);
    });

    it('the alternatives considered, copied with their scores', () => {
      const out = compileResult.finish(
        cannedAnswer('compileResult', {}) as Parameters<typeof compileResult.finish>[0],
        contextFor('compileResult'),
      );
      expect(out.alternatives_considered).toEqual(CANNED.compileResult.alternatives_considered);
    });
  });

  it.each(PHASE_NAMES.filter((p) => p !== 'retrieveInformation'))(
    '%s reads nothing outside its selected inputs: prompt, schema, output and offline answer alike',
    async (phase) => {
      const full = contextFor(phase);
      const selected = { ...full, outputs: selectInputs(phase, full.outputs) };
      const agent = phaseNamed(phase);
      expect(agent.prompt(selected)).toBe(agent.prompt(full));
      const schema = z.toJSONSchema(agent.answer(full));
      expect(z.toJSONSchema(agent.answer(selected))).toEqual(schema);
      const answer = cannedAnswer(phase, {});
      expect(agent.finish(answer, selected)).toEqual(agent.finish(answer, full));
      const offline = (ctx: AgentContext) => runAgent(agent, ctx, createOfflineModel());
      expect((await offline(selected)).output).toEqual((await offline(full)).output);
    },
  );
});
