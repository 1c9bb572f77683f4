/** A JSON Schema as zod writes it: plain JSON. */
export type JsonSchema = { [key: string]: unknown };

const isSchema = (value: unknown): value is JsonSchema =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The longest compact JSON text, in characters, of any instance of `schema` (Infinity when a
 * string or an array has no maximum). Phases size their token caps and answer limits from it.
 */
export function maxInstanceChars(schema: JsonSchema): number {
  const json = (value: unknown) => JSON.stringify(value).length;
  if ('const' in schema) return json(schema.const);
  if (Array.isArray(schema.enum)) return Math.max(...schema.enum.map(json));
  if (Array.isArray(schema.anyOf)) {
    return Math.max(...schema.anyOf.filter(isSchema).map(maxInstanceChars));
  }
  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  return Math.max(
    ...types.map((type): number => {
      switch (type) {
        case 'null':
          return 4;
        case 'boolean':
          return 5;
        case 'integer':
        case 'number': {
          const bounds = [schema.minimum, schema.maximum];
          if (type === 'integer' && bounds.every((b) => typeof b === 'number')) {
            return Math.max(...bounds.map((b) => String(b).length));
          }
          return 24;
        }
        case 'string':
          return typeof schema.maxLength === 'number' ? schema.maxLength + 2 : Infinity;
        case 'array': {
          if (typeof schema.maxItems !== 'number') return Infinity;
          const item = isSchema(schema.items) ? maxInstanceChars(schema.items) : Infinity;
          return 2 + schema.maxItems * (item + 1);
        }
        case 'object': {
          const properties = isSchema(schema.properties) ? schema.properties : {};
          return Object.entries(properties).reduce(
            (sum, [key, value]) =>
              sum + json(key) + 2 + (isSchema(value) ? maxInstanceChars(value) : Infinity),
            2,
          );
        }
        default:
          return Infinity;
      }
    }),
  );
}

const STRICT_UNSUPPORTED = ['minLength', 'maxLength', '$schema'];

/**
 * The schema in the subset strict structured outputs accept: string lengths are not enforced
 * there, so they move into the description (the answer is still checked against them), and
 * `$schema` goes. Everything else the answer schemas use (required, additionalProperties: false,
 * enum, const, minimum/maximum, minItems/maxItems, type unions with null) is in the subset.
 */
export function toStrictSchema(schema: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (STRICT_UNSUPPORTED.includes(key)) continue;
    if (key === 'properties' && isSchema(value)) {
      out[key] = Object.fromEntries(
        Object.entries(value).map(([k, v]) => [k, isSchema(v) ? toStrictSchema(v) : v]),
      );
    } else if ((key === 'items' || key === 'additionalProperties') && isSchema(value)) {
      out[key] = toStrictSchema(value);
    } else if (key === 'anyOf' && Array.isArray(value)) {
      out[key] = value.map((v: unknown) => (isSchema(v) ? toStrictSchema(v) : v));
    } else {
      out[key] = value;
    }
  }
  if (typeof schema.maxLength === 'number') {
    const limit = `At most ${schema.maxLength} characters.`;
    out.description =
      typeof schema.description === 'string' ? `${schema.description}. ${limit}` : limit;
  }
  return out;
}
