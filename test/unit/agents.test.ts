import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { AGENTS } from '../../src/agents';
import type { AgentContext } from '../../src/agents/context';
import { draftDecision } from '../../src/agents/draft-decision';
import { establishGoals } from '../../src/agents/establish-goals';
import { generateAlternatives } from '../../src/agents/generate-alternatives';
import { retrieveInformation } from '../../src/agents/retrieve-information';
import { runAgent, validateAnswer } from '../../src/agents/runner';
import type { PhaseOutputs } from '../../src/domain/decision';
import { PHASE_NAMES, type PhaseName } from '../../src/domain/phases';
import { CANNED, CANNED_QUERY } from '../support/canned-outputs';
import { FakeModel } from '../support/fake-model';

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
      const run = await runAgent(AGENTS[phase], contextFor(phase), model);

      expect(model.requests).toHaveLength(1);
      const request = model.requests[0]!;
      expect(request.task).toBe(phase);
      for (const text of EXPECTED_IN_PROMPT[phase])
        expect(request.messages[0]!.content).toContain(text);
      expect(request.system).toContain('"type":"object"');
      expect(run).toMatchObject({
        model: 'fake-model',
        model_calls: 1,
        usage: { input_tokens: 10, output_tokens: 5 },
      });
    },
  );

  it('repairs invalid output with one more call that lists the problems', async () => {
    const model = new FakeModel((_req, call) => (call === 1 ? '{"summary": 42}' : undefined));
    const run = await runAgent(AGENTS.identifyTrigger, contextFor('identifyTrigger'), model);

    expect(model.requests).toHaveLength(2);
    const repair = model.requests[1]!.messages;
    expect(repair.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect(repair[1]!.content).toBe('{"summary": 42}');
    expect(repair[2]!.content).toMatch(/summary: .*string/);
    expect(repair[2]!.content).toContain('trigger:');
    expect(run.output).toEqual(CANNED.identifyTrigger);
    expect(run.model_calls).toBe(2);
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
    const err = await runAgent(AGENTS.defineScope, contextFor('defineScope'), model).catch(
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
    const text = '```json\n' + JSON.stringify(CANNED.identifyTrigger) + '\n```';
    expect(validateAnswer(AGENTS.identifyTrigger, text, contextFor('identifyTrigger'))).toEqual({
      ok: true,
      output: CANNED.identifyTrigger,
    });
  });

  describe('checks beyond the schema', () => {
    const problems = (result: ReturnType<typeof validateAnswer>) =>
      result.ok ? [] : result.problems;

    it('criteria weights must add up to 1', () => {
      const output = {
        ...CANNED.establishGoals,
        criteria: CANNED.establishGoals.criteria.map((c) => ({ ...c, weight: 0.2 })),
      };
      expect(
        problems(
          validateAnswer(establishGoals, JSON.stringify(output), contextFor('establishGoals')),
        ),
      ).toEqual(['criteria weights add up to 0.40; they must add up to 1']);
    });

    it('every alternative must be scored on every criterion', () => {
      const alternatives = CANNED.generateAlternatives.alternatives.map((a, i) =>
        i === 0 ? { ...a, scores: { Reliability: 5 } } : a,
      );
      expect(
        problems(
          validateAnswer(
            generateAlternatives,
            JSON.stringify({ ...CANNED.generateAlternatives, alternatives }),
            contextFor('generateAlternatives'),
          ),
        ),
      ).toEqual(['"Migrate" has no score for: Cost']);
    });

    it('the recommendation must name one of the alternatives', () => {
      const output = { ...CANNED.draftDecision, recommended: 'Something else' };
      expect(
        problems(
          validateAnswer(draftDecision, JSON.stringify(output), contextFor('draftDecision')),
        ),
      ).toEqual(['recommended must be one of: "Migrate", "Pilot", "Stay"']);
    });

    it('citations must be passages that were given, with their real source', () => {
      const ctx = contextFor('retrieveInformation');
      const output = {
        need_id: 'N1',
        question: 'q',
        answered: true,
        answer: 'a',
        confidence: 'high',
        citations: [
          { passage_id: 'P9', source: 'invented.md' },
          { passage_id: 'P1', source: 'elsewhere.md' },
        ],
      };
      expect(problems(validateAnswer(retrieveInformation, JSON.stringify(output), ctx))).toEqual([
        'citation P9 is not one of the passages given',
        'citation P1 has source "a.md"',
      ]);
    });
  });

  it('computes weighted scores in code from the scores and the weights', () => {
    const ctx = contextFor('generateAlternatives');
    const out = generateAlternatives.finish!(CANNED.generateAlternatives, ctx);
    // Migrate: 0.6 × (5−1)/4 + 0.4 × (3−1)/4 = 0.8; Stay: 0.6 × 0.25 + 0.4 × 0.75 = 0.45
    expect(out.alternatives.map((a) => a.weighted_score)).toEqual([0.8, 0.75, 0.45]);
  });
});
