import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  instanceOf,
  startSchemaInstanceServer,
  type JsonSchema,
} from '../support/schema-instance-server';
import { strictSchemaProblems } from '../support/strict-schema-rules';

/** A strict-mode schema with one of each construct the instance rules cover. */
const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['kind', 'verdict', 'note', 'owner', 'score', 'confidence', 'criteria', 'none'],
  properties: {
    kind: { type: 'string', const: 'decision' },
    verdict: { type: 'string', enum: ['go', 'no-go'] },
    note: { anyOf: [{ type: 'null' }, { type: 'string', maxLength: 12 }] },
    owner: {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'active'],
      properties: { name: { type: 'string' }, active: { type: ['boolean', 'null'] } },
    },
    score: { type: 'integer', minimum: 1, maximum: 5 },
    confidence: { type: 'number', minimum: 0, maximum: 1 },
    criteria: {
      type: 'array',
      minItems: 2,
      maxItems: 4,
      items: { $ref: '#/$defs/criterion' },
    },
    none: { type: 'array', maxItems: 0, items: { type: 'string' } },
  },
  $defs: {
    criterion: {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'weight'],
      properties: {
        name: { type: 'string', maxLength: 40 },
        weight: { type: 'number', exclusiveMinimum: 0 },
      },
    },
  },
} satisfies JsonSchema;

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const strings = (value: unknown): string[] =>
  typeof value === 'string'
    ? [value]
    : Array.isArray(value)
      ? value.flatMap(strings)
      : isRecord(value)
        ? Object.values(value).flatMap(strings)
        : [];

/** Checks the instance against `schema` by hand, field by field; returns what is wrong. */
function schemaViolations(value: unknown): string[] {
  const wrong: string[] = [];
  const check = (ok: boolean, what: string) => {
    if (!ok) wrong.push(what);
  };
  if (!isRecord(value)) return ['root is not an object'];
  check(
    Object.keys(value).join() === Object.keys(schema.properties).join(),
    'keys differ from properties',
  );
  check(value.kind === 'decision', 'kind is not the const');
  check(value.verdict === 'go' || value.verdict === 'no-go', 'verdict not in enum');
  check(
    value.note === null || (typeof value.note === 'string' && value.note.length <= 12),
    'note is neither null nor a string of at most 12',
  );
  const owner = value.owner;
  check(
    isRecord(owner) && Object.keys(owner).join() === 'name,active',
    'owner does not have exactly name and active',
  );
  if (isRecord(owner)) {
    check(typeof owner.name === 'string', 'owner.name is not a string');
    check(typeof owner.active === 'boolean' || owner.active === null, 'owner.active wrong type');
  }
  check(
    Number.isInteger(value.score) && Number(value.score) >= 1 && Number(value.score) <= 5,
    'score is not an integer in 1..5',
  );
  check(
    typeof value.confidence === 'number' && value.confidence >= 0 && value.confidence <= 1,
    'confidence is not a number in 0..1',
  );
  const criteria = value.criteria;
  check(
    Array.isArray(criteria) && criteria.length >= 2 && criteria.length <= 4,
    'criteria is not an array of 2..4',
  );
  if (Array.isArray(criteria)) {
    criteria.forEach((c: unknown, i) => {
      check(isRecord(c) && Object.keys(c).join() === 'name,weight', `criteria[${i}] keys`);
      if (!isRecord(c)) return;
      check(typeof c.name === 'string' && c.name.length <= 40, `criteria[${i}].name`);
      check(typeof c.weight === 'number' && c.weight > 0, `criteria[${i}].weight`);
    });
  }
  check(Array.isArray(value.none) && value.none.length === 0, 'none is not []');
  return wrong;
}

describe('instanceOf', () => {
  it('gives a valid, predictable instance of a strict schema', () => {
    const value = instanceOf(schema);
    expect(schemaViolations(value)).toEqual([]);
    expect(value).toEqual({
      kind: 'decision',
      verdict: 'go',
      note: 'value of not',
      owner: { name: 'value of owner name', active: true },
      score: 3,
      confidence: 0.5,
      criteria: [
        { name: 'value of criteria 1 name', weight: 0.5 },
        { name: 'value of criteria 2 name', weight: 0.5 },
      ],
      none: [],
    });
  });

  it('sanity: the hand check catches a wrong value', () => {
    expect(schemaViolations({ kind: 'decision' })).not.toEqual([]);
  });

  it('makes sibling array items differ', () => {
    const list = instanceOf({ type: 'array', minItems: 2, items: { type: 'string' } });
    expect(Array.isArray(list) && list.length === 2).toBe(true);
    const [first, second] = list as string[];
    expect(first).not.toEqual(second);
  });

  it('applies minLength, integer and number bounds', () => {
    expect(instanceOf({ type: 'string', minLength: 30 })).toEqual('value'.padEnd(30, 'x'));
    expect(instanceOf({ type: 'integer', minimum: 1, maximum: 4 })).toBe(2);
    expect(instanceOf({ type: 'integer', exclusiveMinimum: 3 })).toBe(4);
    expect(instanceOf({ type: 'integer', exclusiveMaximum: 3 })).toBe(2);
    expect(instanceOf({ type: 'integer' })).toBe(1);
    expect(instanceOf({ type: 'number', exclusiveMaximum: 2 })).toBe(1.5);
    expect(instanceOf({ type: 'number' })).toBe(0.5);
    expect(instanceOf({ anyOf: [{ type: 'null' }] })).toBeNull();
  });

  it('pads every string past its maxLength by padStrings', () => {
    const padded = instanceOf(schema, { padStrings: 50 });
    const plain = instanceOf(schema);
    const pad = 'x'.repeat(50);
    // const and enum values stay as the schema fixes them; every generated string grows.
    const fixed = new Set(['decision', 'go']);
    const pairs = strings(plain).map((s, i) => [s, strings(padded)[i]] as const);
    expect(pairs).toHaveLength(6);
    for (const [before, after] of pairs) {
      expect(after).toBe(fixed.has(before) ? before : before + pad);
    }
    const note = isRecord(padded) ? padded.note : undefined;
    expect(note).toBe('value of not' + pad);
    expect(String(note).length).toBe(12 + 50);
    const criteria = isRecord(padded) && Array.isArray(padded.criteria) ? padded.criteria : [];
    for (const c of criteria) {
      expect(isRecord(c) && typeof c.name === 'string' && c.name.length).toBeGreaterThan(40);
    }
  });
});

describe('startSchemaInstanceServer', () => {
  let server: Awaited<ReturnType<typeof startSchemaInstanceServer>>;
  let client: OpenAI;

  beforeAll(async () => {
    server = await startSchemaInstanceServer();
    client = new OpenAI({ apiKey: 'k', baseURL: server.baseURL, maxRetries: 0 });
  });
  afterAll(() => server.close());

  it('answers a json_schema request with the instance and records it', async () => {
    server.reset();
    const messages = [
      { role: 'system' as const, content: 'You decide.' },
      { role: 'user' as const, content: 'Should we ship?' },
    ];
    const completion = await client.chat.completions.create({
      model: 'm',
      messages,
      response_format: { type: 'json_schema', json_schema: { name: 'x', schema, strict: true } },
      max_completion_tokens: 100,
    });
    const content = completion.choices[0]?.message.content ?? '';
    expect(JSON.parse(content)).toEqual(instanceOf(schema));
    expect(completion.model).toBe('m');
    expect(completion.usage).toEqual({
      prompt_tokens: Math.ceil('You decide.Should we ship?'.length / 4),
      completion_tokens: Math.ceil(content.length / 4),
      total_tokens:
        Math.ceil('You decide.Should we ship?'.length / 4) + Math.ceil(content.length / 4),
    });

    expect(server.requests).toHaveLength(1);
    const [recorded] = server.requests;
    expect(recorded?.task).toBe('x');
    expect(recorded?.body).toMatchObject({
      model: 'm',
      messages,
      max_completion_tokens: 100,
      response_format: { json_schema: { name: 'x', schema } },
    });
    expect(recorded?.at).toBeLessThanOrEqual(Date.now());
  });

  it('pads strings after reset({ padStrings })', async () => {
    server.reset({ padStrings: 5 });
    const completion = await client.chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: 'hi' }],
      response_format: {
        type: 'json_schema',
        json_schema: { name: 'padded', schema: { type: 'string', maxLength: 3 } },
      },
    });
    expect(JSON.parse(completion.choices[0]?.message.content ?? '')).toBe('valxxxxx');
    expect(server.requests.map((r) => r.task)).toEqual(['padded']);
  });

  it('refuses json_object mode with HTTP 400, and still records the request', async () => {
    server.reset();
    const failure: unknown = await client.chat.completions
      .create({
        model: 'm',
        messages: [{ role: 'user', content: 'hi' }],
        response_format: { type: 'json_object' },
      })
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(failure).toBeInstanceOf(APIError);
    expect((failure as APIError).status).toBe(400);
    expect((failure as APIError).message).toContain('needs response_format json_schema');
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]?.task).toBe('unknown');
  });
});

describe('strictSchemaProblems', () => {
  // The API refuses maxLength in strict mode; everything else in `schema` is allowed.
  const withoutMaxLength = (value: unknown): unknown =>
    Array.isArray(value)
      ? value.map(withoutMaxLength)
      : isRecord(value)
        ? Object.fromEntries(
            Object.entries(value)
              .filter(([key]) => key !== 'maxLength')
              .map(([key, sub]) => [key, withoutMaxLength(sub)]),
          )
        : value;
  const base = () => withoutMaxLength(schema) as typeof schema;

  it('passes a compliant schema', () => {
    expect(strictSchemaProblems(base())).toEqual([]);
  });

  it('finds the maxLength of the representative schema', () => {
    expect(strictSchemaProblems(schema)).toEqual([
      '#/properties/note/anyOf/1: keyword maxLength is not supported in strict mode',
      '#/$defs/criterion/properties/name: keyword maxLength is not supported in strict mode',
    ]);
  });

  it('reports a nested object without additionalProperties: false', () => {
    const s = base();
    delete (s.properties.owner as Partial<typeof s.properties.owner>).additionalProperties;
    expect(strictSchemaProblems(s)).toEqual([
      '#/properties/owner: object must have additionalProperties: false',
    ]);
  });

  it('reports a property missing from required, also inside $defs', () => {
    const s = base();
    s.$defs.criterion.required = ['name'];
    expect(strictSchemaProblems(s)).toEqual([
      '#/$defs/criterion: properties missing from required: weight',
    ]);
  });

  it('reports maxLength', () => {
    const s = base();
    Object.assign(s.properties.owner.properties.name, { maxLength: 5 });
    expect(strictSchemaProblems(s)).toEqual([
      '#/properties/owner/properties/name: keyword maxLength is not supported in strict mode',
    ]);
  });

  it('reports oneOf', () => {
    const s = base();
    Object.assign(s.properties, {
      note: { oneOf: [{ type: 'string' }, { type: 'null' }] },
    });
    expect(strictSchemaProblems(s)).toEqual([
      '#/properties/note: schema needs a type (or anyOf, $ref, const or enum)',
      '#/properties/note: keyword oneOf is not supported in strict mode',
    ]);
  });

  it('reports an anyOf at the root', () => {
    const problems = strictSchemaProblems({
      anyOf: [
        { type: 'object', additionalProperties: false, required: [], properties: {} },
        { type: 'null' },
      ],
    });
    expect(problems).toContain('#: the root must be an object, not anyOf');
    expect(problems).toContain('#: the root must have type "object", got undefined');
  });

  it('reports a type array that is not one type plus null', () => {
    const s = base();
    Object.assign(s.properties.owner.properties, { name: { type: ['string', 'number'] } });
    expect(strictSchemaProblems(s)).toEqual([
      '#/properties/owner/properties/name: type array ["string","number"] must be one type plus "null", e.g. ["string","null"]',
    ]);
  });

  it('reports keywords of another type, arrays without items and limits', () => {
    expect(
      strictSchemaProblems({
        type: 'object',
        additionalProperties: false,
        required: ['a', 'b'],
        properties: { a: { type: 'string', minimum: 1 }, b: { type: 'array' } },
      }),
    ).toEqual([
      '#/properties/a: keyword minimum is only allowed on type number/integer',
      '#/properties/b: array schema must have items',
    ]);

    let deep: Record<string, unknown> = { type: 'string' };
    for (let i = 0; i < 11; i++) {
      deep = {
        type: 'object',
        additionalProperties: false,
        required: ['d'],
        properties: { d: deep },
      };
    }
    expect(strictSchemaProblems(deep)).toEqual([
      '#/properties/d/properties/d/properties/d/properties/d/properties/d/properties/d/properties/d/properties/d/properties/d/properties/d: objects nest 11 levels deep, more than 10',
    ]);

    const many = Array.from({ length: 1001 }, (_, i) => `v${i}`);
    expect(
      strictSchemaProblems({
        type: 'object',
        additionalProperties: false,
        required: ['e'],
        properties: { e: { type: 'string', enum: many } },
      }),
    ).toEqual(['#: 1001 enum values in total, more than 1000']);
  });
});
