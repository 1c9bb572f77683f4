import { describe, expect, it } from 'vitest';
import { phaseNamed } from '../../src/phases';
import type { AgentContext } from '../../src/phases/phase';
import { ApplicationFailure } from '@temporalio/common';
import { answerBounds, runAgent } from '../../src/activities/run-agent';
import { MIN_TOKEN_BUDGET, type PhaseOutputs } from '../../src/domain/decision';
import { MAX_CHARS, MAX_ITEMS } from '../../src/domain/outputs';
import { estimateInputTokens } from '../../src/llm/budget';
import { checkPayload, payloadBytes } from '../../src/domain/payload';
import { PHASE_NAMES, type PhaseName } from '../../src/domain/phases';
import { maxInstanceChars, toStrictSchema, type JsonSchema } from '../../src/llm/json-schema';
import { CANNED, CANNED_QUERY } from '../support/canned-outputs';
import { FakeModel } from '../support/fake-model';
import { strictSchemaProblems } from '../support/strict-schema-rules';

function contextFor(phase: PhaseName): AgentContext {
  const outputs: PhaseOutputs = {};
  for (const p of PHASE_NAMES.slice(0, PHASE_NAMES.indexOf(phase))) {
    (outputs as Record<string, unknown>)[p] = CANNED[p];
  }
  const passages = [1, 2, 3, 4].map((n) => ({
    ref: `P${n}`,
    id: `a.md#${n}`,
    source: 'a.md',
    heading: 'h',
    text: 't',
  }));
  return {
    query: CANNED_QUERY,
    outputs,
    need: CANNED.identifyInformationNeeds.needs[0]!,
    passages,
  };
}

/** The biggest instance: every string at its maxLength (of a 2-byte-in-JSON character), every list full. */
function largest(schema: JsonSchema): unknown {
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum)) {
    return [...schema.enum].sort((a, b) => JSON.stringify(b).length - JSON.stringify(a).length)[0];
  }
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'object':
      return Object.fromEntries(
        Object.entries(schema.properties as Record<string, JsonSchema>).map(([k, v]) => [
          k,
          largest(v),
        ]),
      );
    case 'array':
      return Array.from({ length: schema.maxItems as number }, () =>
        largest(schema.items as JsonSchema),
      );
    case 'string':
      return 'é'.repeat(schema.maxLength as number);
    case 'integer':
      return schema.maximum;
    case 'boolean':
      return false;
    default:
      return 0.123456789;
  }
}

describe('answer bounds', () => {
  it.each(PHASE_NAMES)('%s: no instance of its answer schema is longer than its bound', (phase) => {
    const bounds = answerBounds(phaseNamed(phase).answer(contextFor(phase)));
    const text = JSON.stringify(largest(bounds.jsonSchema));
    expect(text.length).toBeLessThanOrEqual(bounds.maxInstanceChars);
    // The bound is tight: within a few characters a field of the largest instance.
    expect(text.length).toBeGreaterThan(bounds.maxInstanceChars * 0.9);
  });

  /** A model that answers every call with `text`. */
  const answering = (text: string) => new FakeModel(() => text);

  it.each(PHASE_NAMES)(
    '%s: the largest answer fits its token cap at a token per character, and is not refused pretty-printed',
    async (phase) => {
      const agent = phaseNamed(phase);
      const ctx = contextFor(phase);
      const bounds = answerBounds(agent.answer(ctx));
      const biggest = largest(bounds.jsonSchema);
      expect(JSON.stringify(biggest).length).toBeLessThanOrEqual(bounds.maxOutputTokens);
      const err = await runAgent(agent, ctx, answering(JSON.stringify(biggest, null, 2))).then(
        () => null,
        (e: unknown) => e as { type?: string },
      );
      expect(err?.type).not.toBe('OutputTooLarge');
    },
  );

  it.each(PHASE_NAMES)(
    '%s: an answer a character past its bound is refused at once, for good',
    async (phase) => {
      const agent = phaseNamed(phase);
      const ctx = contextFor(phase);
      const bounds = answerBounds(agent.answer(ctx));
      const model = answering('x'.repeat(bounds.maxAnswerChars + 1));
      const err = (await runAgent(agent, ctx, model).catch(
        (e: unknown) => e,
      )) as ApplicationFailure;
      expect(err).toBeInstanceOf(ApplicationFailure);
      expect(err).toMatchObject({ type: 'OutputTooLarge', nonRetryable: true });
      expect(model.requests.map((r) => r.task)).toEqual([phase]);
      // One character less is read (and, not being JSON, repaired): not refused for its size.
      const under = answering('x'.repeat(bounds.maxAnswerChars));
      const other = (await runAgent(agent, ctx, under).catch(
        (e: unknown) => e,
      )) as ApplicationFailure;
      expect(other.type).not.toBe('OutputTooLarge');
      expect(under.requests).toHaveLength(2);
    },
  );

  it.each(PHASE_NAMES)(
    '%s: the strict form of its schema passes the strict-mode rules',
    (phase) => {
      const { jsonSchema } = answerBounds(phaseNamed(phase).answer(contextFor(phase)));
      const strict = toStrictSchema(jsonSchema);
      expect(strictSchemaProblems(strict)).toEqual([]);
      // The lengths it no longer enforces are still said, in the descriptions.
      expect(JSON.stringify(strict)).toMatch(/At most \d+ characters/);
    },
  );

  it('no call can reserve more than the smallest token budget allowed', () => {
    const criteria = Array.from({ length: MAX_ITEMS.criteria }, (_, i) => ({
      name: `${i}`.padEnd(MAX_CHARS.name, 'c'),
      importance: 1,
      weight: 1 / MAX_ITEMS.criteria,
      description: 'd'.repeat(MAX_CHARS.item),
    }));
    const alternatives = Array.from({ length: MAX_ITEMS.alternatives }, (_, i) => ({
      name: `${i}`.padEnd(MAX_CHARS.name, 'a'),
    }));
    const ctx = {
      ...contextFor('compileResult'),
      outputs: {
        ...contextFor('compileResult').outputs,
        establishGoals: { ...CANNED.establishGoals, criteria },
        generateAlternatives: { ...CANNED.generateAlternatives, alternatives },
      },
    } as AgentContext;
    // The longest input the API accepts: a question and a context at their limits, and every
    // earlier field a prompt reads at its own (about 75,000 characters for compileResult).
    const longestPrompt = 'x'.repeat(80_000);
    for (const phase of PHASE_NAMES) {
      const bounds = answerBounds(phaseNamed(phase).answer(ctx));
      const reserved =
        estimateInputTokens({
          task: phase,
          system: phaseNamed(phase).system,
          messages: [{ role: 'user', content: longestPrompt }],
          schemaName: phase,
          jsonSchema: bounds.jsonSchema,
          maxOutputTokens: bounds.maxOutputTokens,
          maxAnswerChars: bounds.maxAnswerChars,
          hints: ctx,
        }) + bounds.maxOutputTokens;
      expect(reserved, phase).toBeLessThan(MIN_TOKEN_BUDGET);
    }
  });

  it('is infinite for a string or a list without a maximum', () => {
    expect(maxInstanceChars({ type: 'string' })).toBe(Infinity);
    expect(maxInstanceChars({ type: 'array', items: { type: 'boolean' } })).toBe(Infinity);
    expect(maxInstanceChars({ type: 'array', maxItems: 2, items: { type: 'boolean' } })).toBe(14);
  });
});

describe('payload guard', () => {
  it('measures JSON in UTF-8 bytes, as Temporal stores it', () => {
    for (const value of [{ a: 'plain' }, { a: 'é€', b: ['😀', 'x'] }, 'naïve', [1, null, true]]) {
      expect(payloadBytes(value)).toBe(Buffer.byteLength(JSON.stringify(value), 'utf8'));
    }
  });

  it('fails for good, naming the phase, what, the size and the limit', () => {
    let thrown: unknown;
    try {
      checkPayload('draftDecision', 'output', { a: 'x'.repeat(100) }, 50);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toMatchObject({
      type: 'PayloadTooLarge',
      nonRetryable: true,
      message:
        'draftDecision: its output is 108 bytes, over the 50-byte limit for one phase (PHASE_PAYLOAD_MAX_BYTES)',
    });
    expect(() => checkPayload('draftDecision', 'output', { a: 'x' }, 50)).not.toThrow();
  });
});
