/**
 * An independent reading of OpenAI Structured Outputs' `strict: true` schema rules, so tests can
 * catch a schema the API would reject without calling the API.
 */

const TYPES = new Set(['string', 'number', 'integer', 'boolean', 'object', 'array', 'null']);

const COMMON_KEYWORDS = new Set([
  'type',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'anyOf',
  'enum',
  'const',
  'description',
  'title',
  '$ref',
  '$defs',
  'definitions',
]);

const TYPE_KEYWORDS: Record<string, string[]> = {
  string: ['pattern', 'format'],
  number: ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf'],
  integer: ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf'],
  array: ['minItems', 'maxItems'],
};

const MAX_OBJECT_DEPTH = 10;
const MAX_PROPERTIES = 5000;
const MAX_STRING_CHARS = 120_000;
const MAX_ENUM_VALUES = 1000;

type Node = Record<string, unknown>;

const isNode = (value: unknown): value is Node =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** JSON Pointer escaping, so a path can be pasted into a $ref. */
const child = (path: string, key: string | number) =>
  `${path}/${String(key).replaceAll('~', '~0').replaceAll('/', '~1')}`;

function typesOf(node: Node): string[] {
  if (typeof node.type === 'string') return [node.type];
  if (Array.isArray(node.type)) return node.type.filter((t): t is string => typeof t === 'string');
  return [];
}

const isObjectNode = (node: Node) => typesOf(node).includes('object') || 'properties' in node;

interface Totals {
  properties: number;
  chars: number;
  enumValues: number;
}

const valueChars = (value: unknown) =>
  typeof value === 'string' ? value.length : (JSON.stringify(value)?.length ?? 0);

function checkType(node: Node, path: string, problems: string[]) {
  const { type } = node;
  if (typeof type === 'string') {
    if (!TYPES.has(type)) problems.push(`${path}: unknown type ${JSON.stringify(type)}`);
    return;
  }
  if (!Array.isArray(type)) {
    problems.push(`${path}: type must be a string or an array of types`);
    return;
  }
  const members: unknown[] = type;
  const bad = members.filter((t) => typeof t !== 'string' || !TYPES.has(t));
  const nonNull = members.filter((t) => t !== 'null');
  const nulls = members.length - nonNull.length;
  if (bad.length > 0) problems.push(`${path}: unknown type(s) ${JSON.stringify(bad)} in type`);
  if (nonNull.length !== 1 || nulls > 1) {
    problems.push(
      `${path}: type array ${JSON.stringify(type)} must be one type plus "null", e.g. ["string","null"]`,
    );
  }
}

function checkObject(node: Node, path: string, problems: string[]) {
  if (node.additionalProperties !== false) {
    problems.push(`${path}: object must have additionalProperties: false`);
  }
  const keys = isNode(node.properties) ? Object.keys(node.properties) : [];
  if ('properties' in node && !isNode(node.properties)) {
    problems.push(`${path}: properties must be an object`);
  }
  if (node.required === undefined) {
    if (keys.length > 0) {
      problems.push(
        `${path}: object must have required listing every property: ${keys.join(', ')}`,
      );
    }
    return;
  }
  if (!Array.isArray(node.required)) {
    problems.push(`${path}: required must be an array`);
    return;
  }
  const required = new Set(node.required);
  const missing = keys.filter((k) => !required.has(k));
  const extra = [...required].filter((k) => typeof k !== 'string' || !keys.includes(k));
  if (missing.length > 0) {
    problems.push(`${path}: properties missing from required: ${missing.join(', ')}`);
  }
  if (extra.length > 0) {
    problems.push(`${path}: required names unknown properties: ${extra.map(String).join(', ')}`);
  }
  if (required.size !== node.required.length) problems.push(`${path}: required has duplicates`);
}

function checkNode(node: unknown, path: string, root: boolean, totals: Totals, problems: string[]) {
  if (!isNode(node)) {
    problems.push(`${path}: schema must be an object, got ${JSON.stringify(node)}`);
    return;
  }
  const types = typesOf(node);

  if ('type' in node) checkType(node, path, problems);
  else if (!('anyOf' in node || '$ref' in node || 'const' in node || 'enum' in node)) {
    problems.push(`${path}: schema needs a type (or anyOf, $ref, const or enum)`);
  }

  const allowed = new Set(COMMON_KEYWORDS);
  for (const t of types) for (const k of TYPE_KEYWORDS[t] ?? []) allowed.add(k);
  if (root) allowed.add('$schema');
  for (const key of Object.keys(node)) {
    if (allowed.has(key)) continue;
    const owner = Object.keys(TYPE_KEYWORDS).filter((t) => TYPE_KEYWORDS[t]?.includes(key));
    problems.push(
      owner.length > 0
        ? `${path}: keyword ${key} is only allowed on type ${owner.join('/')}`
        : `${path}: keyword ${key} is not supported in strict mode`,
    );
  }

  if (isObjectNode(node)) checkObject(node, path, problems);

  if (isNode(node.properties)) {
    for (const [key, sub] of Object.entries(node.properties)) {
      totals.properties += 1;
      totals.chars += key.length;
      checkNode(sub, child(child(path, 'properties'), key), false, totals, problems);
    }
  }

  if (types.includes('array') && !('items' in node)) {
    problems.push(`${path}: array schema must have items`);
  }
  if ('items' in node) {
    if (Array.isArray(node.items)) problems.push(`${path}: items must be one schema, not a tuple`);
    else checkNode(node.items, child(path, 'items'), false, totals, problems);
  }

  if ('anyOf' in node) {
    if (root) problems.push(`${path}: the root must be an object, not anyOf`);
    if (!Array.isArray(node.anyOf) || node.anyOf.length === 0) {
      problems.push(`${path}: anyOf must be a non-empty array`);
    } else {
      node.anyOf.forEach((sub, i) =>
        checkNode(sub, child(child(path, 'anyOf'), i), false, totals, problems),
      );
    }
  }

  if ('enum' in node) {
    if (!Array.isArray(node.enum) || node.enum.length === 0) {
      problems.push(`${path}: enum must be a non-empty array`);
    } else {
      totals.enumValues += node.enum.length;
      for (const value of node.enum) totals.chars += valueChars(value);
    }
  }
  if ('const' in node) totals.chars += valueChars(node.const);

  if ('$ref' in node && typeof node.$ref !== 'string') {
    problems.push(`${path}: $ref must be a string`);
  }

  for (const defsKey of ['$defs', 'definitions']) {
    const defs = node[defsKey];
    if (defs === undefined) continue;
    if (!isNode(defs)) {
      problems.push(`${path}: ${defsKey} must be an object`);
      continue;
    }
    for (const [name, sub] of Object.entries(defs)) {
      checkNode(sub, child(child(path, defsKey), name), false, totals, problems);
    }
  }
}

function resolveRef(root: Node, ref: string): unknown {
  if (!ref.startsWith('#')) return undefined;
  let node: unknown = root;
  for (const raw of ref.slice(1).split('/').filter(Boolean)) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (!isNode(node)) return undefined;
    node = node[key];
  }
  return node;
}

/**
 * The deepest chain of nested objects under `node`, following $refs (a $ref already being
 * followed is recursion, which the API allows, so it adds nothing).
 */
function objectDepth(node: unknown, root: Node, refs: string[]): { depth: number; path: string } {
  if (!isNode(node)) return { depth: 0, path: '' };
  let deepest = { depth: 0, path: '' };
  const consider = (sub: unknown, key: string, nextRefs = refs) => {
    const found = objectDepth(sub, root, nextRefs);
    if (found.depth > deepest.depth) deepest = { depth: found.depth, path: key + found.path };
  };
  if (typeof node.$ref === 'string' && !refs.includes(node.$ref)) {
    consider(resolveRef(root, node.$ref), ` -> ${node.$ref}`, [...refs, node.$ref]);
  }
  if (isNode(node.properties)) {
    for (const [key, sub] of Object.entries(node.properties))
      consider(sub, child('/properties', key));
  }
  if (isNode(node.items)) consider(node.items, '/items');
  if (Array.isArray(node.anyOf)) node.anyOf.forEach((sub, i) => consider(sub, `/anyOf/${i}`));
  const own = isObjectNode(node) ? 1 : 0;
  return { depth: deepest.depth + own, path: deepest.path };
}

/** Problems that would make OpenAI reject `schema` in strict mode, each with its path; [] if none. */
export function strictSchemaProblems(schema: unknown): string[] {
  const problems: string[] = [];
  if (!isNode(schema)) return [`#: schema must be an object, got ${JSON.stringify(schema)}`];
  if (schema.type !== 'object') {
    problems.push(`#: the root must have type "object", got ${JSON.stringify(schema.type)}`);
  }

  const totals: Totals = { properties: 0, chars: 0, enumValues: 0 };
  checkNode(schema, '#', true, totals, problems);

  const deepest = objectDepth(schema, schema, []);
  if (deepest.depth > MAX_OBJECT_DEPTH) {
    problems.push(
      `#${deepest.path}: objects nest ${deepest.depth} levels deep, more than ${MAX_OBJECT_DEPTH}`,
    );
  }
  if (totals.properties > MAX_PROPERTIES) {
    problems.push(`#: ${totals.properties} properties in total, more than ${MAX_PROPERTIES}`);
  }
  if (totals.chars > MAX_STRING_CHARS) {
    problems.push(
      `#: property names, enum and const values total ${totals.chars} characters, more than ${MAX_STRING_CHARS}`,
    );
  }
  if (totals.enumValues > MAX_ENUM_VALUES) {
    problems.push(`#: ${totals.enumValues} enum values in total, more than ${MAX_ENUM_VALUES}`);
  }
  return problems;
}
