/** A JSON Schema as the worker sends it in `response_format` (strict or not): plain JSON. */
type Schema = { [keyword: string]: unknown };

const isSchema = (value: unknown): value is Schema =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Markers are `mk` and six base-36 digits: nothing else in an answer looks like one. */
export const MARKER_CHARS = 8;
export const MARKER = /\bmk[0-9a-z]{6}\b/g;

/** The n-th marker of a run (n from 0). */
export function markerOf(n: number): string {
  return `mk${n.toString(36).padStart(6, '0')}`;
}

/** The markers in a piece of an answer, in order. */
export function markersIn(text: string): string[] {
  return text.match(MARKER) ?? [];
}

/**
 * Words of the question the bench asks, so that information needs written from them find
 * passages in the knowledge base and retrieval calls the model too.
 */
const WORDS = [
  'managed',
  'postgres',
  'billing',
  'migration',
  'database',
  'cost',
  'risk',
  'backups',
];
const LONGEST_WORD = Math.max(...WORDS.map((w) => w.length));
/** One word and one marker: `billing mk00001a`, and the space before the next. */
const SLOT_CHARS = LONGEST_WORD + 1 + MARKER_CHARS + 1;

/** The longest a string may be: `maxLength`, or the limit strict mode moved into the description. */
export function maxChars(schema: Schema): number {
  if (typeof schema.maxLength === 'number') return schema.maxLength;
  const description = typeof schema.description === 'string' ? schema.description : '';
  const said = /At most (\d+) characters/.exec(description);
  return said ? Number(said[1]) : 200;
}

/** A string of the answer, filled once the markers are shared out. */
class Text {
  markers = 0;
  constructor(readonly max: number) {}
  /** How many word-and-marker slots fit. */
  get room(): number {
    return Math.floor((this.max + 1) / SLOT_CHARS);
  }
}

type Value = null | boolean | number | string | Text | Value[] | { [key: string]: Value };

function middle(schema: Schema, integer: boolean): number {
  const lo = typeof schema.minimum === 'number' ? schema.minimum : undefined;
  const hi = typeof schema.maximum === 'number' ? schema.maximum : undefined;
  const mid = lo !== undefined && hi !== undefined ? (lo + hi) / 2 : (lo ?? hi ?? 1);
  return integer ? Math.floor(mid) : mid;
}

/**
 * A value that satisfies `schema` (the subset the answer schemas use: objects with every property
 * required, bounded arrays and strings, enums, constants, integer ranges, unions with null), with
 * its strings left open. Lists get three items where they may (lists of an enum get one).
 */
function instance(schema: Schema, texts: Text[]): Value {
  if ('const' in schema) return schema.const as Value;
  if (Array.isArray(schema.enum)) return schema.enum[0] as Value;
  if (Array.isArray(schema.anyOf)) {
    const branch = schema.anyOf.filter(isSchema).find((s) => s.type !== 'null');
    return branch ? instance(branch, texts) : null;
  }
  const types: unknown[] = Array.isArray(schema.type) ? schema.type : [schema.type];
  const type = types.find((t) => t !== 'null') ?? (isSchema(schema.properties) ? 'object' : null);
  switch (type) {
    case 'object': {
      const properties = isSchema(schema.properties) ? schema.properties : {};
      return Object.fromEntries(
        Object.entries(properties).map(([k, v]) => [k, instance(isSchema(v) ? v : {}, texts)]),
      );
    }
    case 'array': {
      const min = typeof schema.minItems === 'number' ? schema.minItems : 0;
      const max = typeof schema.maxItems === 'number' ? schema.maxItems : 3;
      const items = isSchema(schema.items) ? schema.items : {};
      const choices = Array.isArray(items.enum) ? (items.enum as Value[]) : null;
      const n = Math.min(max, Math.max(min, choices ? 1 : 3));
      return Array.from({ length: n }, (_, i) =>
        choices ? choices[i % choices.length]! : instance(items, texts),
      );
    }
    case 'string': {
      const text = new Text(maxChars(schema));
      texts.push(text);
      return text;
    }
    case 'integer':
      return middle(schema, true);
    case 'number':
      return middle(schema, false);
    case 'boolean':
      return true;
    default:
      return null;
  }
}

/** The JSON text of `value`, as pieces: text, and a null where each marker goes. */
function serialize(value: Value, out: (string | null)[], words = { next: 0 }): void {
  const word = () => WORDS[words.next++ % WORDS.length]!;
  if (value instanceof Text) {
    out.push('"');
    if (value.markers === 0) out.push(word().slice(0, value.max));
    for (let i = 0; i < value.markers; i++) {
      out.push(`${i > 0 ? ' ' : ''}${word()} `, null);
    }
    out.push('"');
  } else if (Array.isArray(value)) {
    out.push('[');
    value.forEach((v, i) => {
      if (i > 0) out.push(',');
      serialize(v, out, words);
    });
    out.push(']');
  } else if (value !== null && typeof value === 'object') {
    out.push('{');
    Object.entries(value).forEach(([k, v], i) => {
      out.push(`${i > 0 ? ',' : ''}${JSON.stringify(k)}:`);
      serialize(v, out, words);
    });
    out.push('}');
  } else {
    out.push(JSON.stringify(value));
  }
}

/**
 * An answer valid for `schema`, cut into `chunks` pieces where the schema's strings have room
 * (fewer where they have not), each piece but a last one without room ending in a marker that
 * `nextMarker` names: the chunks a streaming model sends, each one findable where it arrives.
 */
export function markedAnswer(
  schema: Schema,
  chunks: number,
  nextMarker: () => string,
): { chunks: string[]; markers: string[] } {
  const texts: Text[] = [];
  const value = instance(schema, texts);
  // Markers shared out over the strings, one at a time, so that they spread through the answer.
  let left = chunks;
  while (left > 0 && texts.some((t) => t.markers < t.room)) {
    for (const text of texts) {
      if (left > 0 && text.markers < text.room) {
        text.markers += 1;
        left -= 1;
      }
    }
  }
  const pieces: (string | null)[] = [];
  serialize(value, pieces);
  const out: string[] = [];
  const markers: string[] = [];
  let current = '';
  for (const piece of pieces) {
    if (piece === null) {
      const marker = nextMarker();
      markers.push(marker);
      out.push(current + marker);
      current = '';
    } else {
      current += piece;
    }
  }
  if (current) {
    if (out.length > 0) out[out.length - 1] += current;
    else out.push(current);
  }
  return { chunks: out, markers };
}
