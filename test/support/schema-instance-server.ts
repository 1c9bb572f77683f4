import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenOnLoopback, sendCompletion, sendFault, type ModelFault } from './local-server';

/** The subset of JSON Schema that structured outputs use; other keywords pass through unread. */
export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  definitions?: Record<string, JsonSchema>;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number | boolean;
  exclusiveMaximum?: number | boolean;
  format?: string;
  [keyword: string]: unknown;
}

/** The parts of a Chat Completions request the tests read; the rest is kept as sent. */
export interface ChatRequestBody {
  model?: string;
  messages?: { role: string; content: unknown }[];
  response_format?: {
    type: string;
    json_schema?: { name?: string; schema?: unknown; strict?: boolean };
  };
  max_completion_tokens?: number;
  max_tokens?: number;
  [field: string]: unknown;
}

export interface RecordedRequest {
  /** response_format.json_schema.name, or 'unknown' */
  task: string;
  body: ChatRequestBody;
  at: number;
  /** True once an answer (of any status) was sent for it. */
  answered: boolean;
}

export type { ModelFault };

export interface SchemaInstanceServerOptions {
  /** Chooses a fault for a request, or none. */
  fault?: (request: RecordedRequest, sameTask: number) => ModelFault | undefined;
  /**
   * Characters ("x") appended to every generated string value of the answer, ignoring maxLength.
   * `const` and `enum` values are left alone. Default 0.
   */
  padStrings?: number;
}

/** Values for string formats, so that a format-checking client accepts them. */
const FORMAT_SAMPLES: Record<string, string> = {
  'date-time': '2024-01-02T03:04:05Z',
  date: '2024-01-02',
  time: '03:04:05Z',
  duration: 'P1D',
  email: 'someone@example.com',
  hostname: 'example.com',
  ipv4: '192.0.2.1',
  ipv6: '2001:db8::1',
  uri: 'https://example.com/',
  url: 'https://example.com/',
  uuid: '00000000-0000-4000-8000-000000000000',
};

/** Past this many nested schemas the schema is taken to recurse without an end. */
const MAX_DEPTH = 64;

interface Walk {
  root: JsonSchema;
  pad: number;
  /** $refs being expanded, outermost first. */
  refs: string[];
  depth: number;
}

function resolveRef(root: JsonSchema, ref: string): JsonSchema {
  if (!ref.startsWith('#')) throw new Error(`cannot resolve non-local $ref ${ref}`);
  let node: unknown = root;
  for (const raw of ref.slice(1).split('/').filter(Boolean)) {
    const key = decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~');
    if (typeof node !== 'object' || node === null || !(key in node)) {
      throw new Error(`$ref ${ref} points nowhere`);
    }
    node = (node as Record<string, unknown>)[key];
  }
  if (typeof node !== 'object' || node === null) throw new Error(`$ref ${ref} is not a schema`);
  return node as JsonSchema;
}

const isNullSchema = (s: JsonSchema) => s.type === 'null';

function textFor(path: (string | number)[]): string {
  return path.length === 0 ? 'value' : `value of ${path.join(' ')}`;
}

function lowerBound(schema: JsonSchema): { bound: number; exclusive: boolean } | undefined {
  const { minimum, exclusiveMinimum } = schema;
  if (
    typeof exclusiveMinimum === 'number' &&
    (minimum === undefined || exclusiveMinimum >= minimum)
  )
    return { bound: exclusiveMinimum, exclusive: true };
  if (typeof minimum === 'number') return { bound: minimum, exclusive: exclusiveMinimum === true };
  return undefined;
}

function upperBound(schema: JsonSchema): { bound: number; exclusive: boolean } | undefined {
  const { maximum, exclusiveMaximum } = schema;
  if (
    typeof exclusiveMaximum === 'number' &&
    (maximum === undefined || exclusiveMaximum <= maximum)
  )
    return { bound: exclusiveMaximum, exclusive: true };
  if (typeof maximum === 'number') return { bound: maximum, exclusive: exclusiveMaximum === true };
  return undefined;
}

function integerFor(schema: JsonSchema): number {
  const lo = lowerBound(schema);
  const hi = upperBound(schema);
  const min = lo && (lo.exclusive ? Math.floor(lo.bound) + 1 : Math.ceil(lo.bound));
  const max = hi && (hi.exclusive ? Math.ceil(hi.bound) - 1 : Math.floor(hi.bound));
  if (min !== undefined && max !== undefined) return Math.floor((min + max) / 2);
  return min ?? max ?? 1;
}

function numberFor(schema: JsonSchema): number {
  const lo = lowerBound(schema);
  const hi = upperBound(schema);
  if (lo && hi) return (lo.bound + hi.bound) / 2;
  if (lo) return lo.exclusive ? lo.bound + 0.5 : lo.bound;
  if (hi) return hi.exclusive ? hi.bound - 0.5 : hi.bound;
  return 0.5;
}

function stringFor(schema: JsonSchema, path: (string | number)[], pad: number): string {
  let text =
    (schema.format === undefined ? undefined : FORMAT_SAMPLES[schema.format]) ?? textFor(path);
  if (schema.minLength !== undefined && text.length < schema.minLength) {
    text = text.padEnd(schema.minLength, 'x');
  }
  if (schema.maxLength !== undefined) text = text.slice(0, schema.maxLength);
  return text + 'x'.repeat(pad);
}

function instanceAt(schema: JsonSchema, path: (string | number)[], walk: Walk): unknown {
  if (walk.depth > MAX_DEPTH) {
    throw new Error(`schema nests deeper than ${MAX_DEPTH} levels at ${path.join('.')}`);
  }
  const inner: Walk = { ...walk, depth: walk.depth + 1 };
  // Once a $ref recurses into itself, prefer the branches that end the recursion.
  const recursing = new Set(walk.refs).size < walk.refs.length;

  if (schema.$ref !== undefined) {
    const target = resolveRef(walk.root, schema.$ref);
    return instanceAt(target, path, { ...inner, refs: [...walk.refs, schema.$ref] });
  }
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum)) return schema.enum[0];

  const union = schema.anyOf ?? schema.oneOf;
  if (union) {
    const branch = recursing
      ? (union.find(isNullSchema) ?? union[0])
      : union.find((s) => !isNullSchema(s));
    return branch ? instanceAt(branch, path, inner) : null;
  }

  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  let type = recursing && types.includes('null') ? 'null' : types.find((t) => t !== 'null');
  if (type === undefined && !types.includes('null')) {
    if (schema.properties) type = 'object';
    else if (schema.items) type = 'array';
  }

  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const [key, sub] of Object.entries(schema.properties ?? {})) {
        out[key] = instanceAt(sub, [...path, key], inner);
      }
      return out;
    }
    case 'array': {
      let n = recursing ? (schema.minItems ?? 0) : Math.max(schema.minItems ?? 0, 1);
      if (schema.maxItems !== undefined) n = Math.min(n, schema.maxItems);
      const items = schema.items ?? {};
      return Array.from({ length: n }, (_, i) => instanceAt(items, [...path, i + 1], inner));
    }
    case 'string':
      return stringFor(schema, path, walk.pad);
    case 'integer':
      return integerFor(schema);
    case 'number':
      return numberFor(schema);
    case 'boolean':
      return true;
    default:
      return null;
  }
}

/** The dumbest value that satisfies `schema`; deterministic, so tests can predict it. */
export function instanceOf(schema: JsonSchema, options: SchemaInstanceServerOptions = {}): unknown {
  return instanceAt(schema, [], {
    root: schema,
    pad: options.padStrings ?? 0,
    refs: [],
    depth: 0,
  });
}

function contentLength(content: unknown): number {
  if (typeof content === 'string') return content.length;
  if (!Array.isArray(content)) return 0;
  let total = 0;
  for (const part of content) {
    if (typeof part === 'string') total += part.length;
    else if (typeof part === 'object' && part !== null && 'text' in part) {
      const { text } = part as { text: unknown };
      if (typeof text === 'string') total += text.length;
    }
  }
  return total;
}

function sendJson(res: ServerResponse, status: number, payload: unknown) {
  if (res.destroyed) return;
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(payload));
}

function invalidRequest(res: ServerResponse, status: number, message: string) {
  sendJson(res, status, { error: { message, type: 'invalid_request_error', code: null } });
}

/**
 * A local Chat Completions server that answers every request with a plain instance of the JSON
 * schema in its response_format, without reading the prompt: it shows what the code around the
 * model does with answers that are valid but say nothing.
 */
export async function startSchemaInstanceServer(options: SchemaInstanceServerOptions = {}) {
  const requests: RecordedRequest[] = [];
  let padStrings = options.padStrings ?? 0;
  let fault = options.fault;
  let answered = 0;

  // A client that asks for a stream gets the answer as server-sent events.
  const streamPlan = (body: Record<string, unknown>) => (body.stream === true ? {} : undefined);

  const handle = (req: IncomingMessage, res: ServerResponse, raw: string) => {
    const url = (req.url ?? '').split('?')[0];
    if (req.method !== 'POST' || url !== '/v1/chat/completions') {
      invalidRequest(res, 404, `no route ${req.method} ${req.url}`);
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      parsed = undefined;
    }
    const body: Record<string, unknown> =
      typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
        ? (parsed as Record<string, unknown>)
        : {};
    const format = body.response_format as
      { json_schema?: { name?: unknown; schema?: unknown } } | undefined;
    const name = format?.json_schema?.name;
    const request: RecordedRequest = {
      task: typeof name === 'string' ? name : 'unknown',
      body,
      at: Date.now(),
      answered: false,
    };
    requests.push(request);
    res.on('finish', () => (request.answered = true));
    const injected = fault?.(request, requests.filter((r) => r.task === request.task).length);
    if (sendFault(res, injected, streamPlan(body))) return;
    if (injected?.kind === 'hold') {
      void injected.until.then(
        () => answer(parsed, body, format, res),
        () => undefined,
      );
      return;
    }
    answer(parsed, body, format, res);
  };

  const answer = (
    parsed: unknown,
    body: Record<string, unknown>,
    format: { json_schema?: { name?: unknown; schema?: unknown } } | undefined,
    res: ServerResponse,
  ) => {
    if (parsed === undefined) return invalidRequest(res, 400, 'request body is not JSON');
    const schema = format?.json_schema?.schema;
    if (typeof schema !== 'object' || schema === null) {
      return invalidRequest(res, 400, 'this test server needs response_format json_schema');
    }
    let content: string;
    try {
      content = JSON.stringify(instanceOf(schema as JsonSchema, { padStrings }));
    } catch (err) {
      return invalidRequest(res, 400, `cannot build an instance of the schema: ${String(err)}`);
    }
    const messages = Array.isArray(body.messages) ? (body.messages as unknown[]) : [];
    let promptChars = 0;
    for (const m of messages) {
      if (typeof m === 'object' && m !== null && 'content' in m)
        promptChars += contentLength(m.content);
    }
    answered += 1;
    sendCompletion(
      res,
      {
        id: `chatcmpl-${answered}`,
        model: body.model,
        content,
        promptTokens: Math.ceil(promptChars / 4),
        completionTokens: Math.ceil(content.length / 4),
      },
      streamPlan(body),
    );
  };

  const server = createServer((req, res) => {
    // A client that gave up leaves nothing to answer; its socket errors are not the test's concern.
    req.on('error', () => {});
    res.on('error', () => {});
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (raw += chunk));
    req.on('end', () => handle(req, res, raw));
  });
  const { port, close } = await listenOnLoopback(server);

  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    requests,
    /** Change padding and faults, and forget earlier requests. */
    reset(next: SchemaInstanceServerOptions = {}) {
      padStrings = next.padStrings ?? 0;
      fault = next.fault;
      requests.length = 0;
    },
    close,
  };
}

/**
 * Holds the model's answer to the first call for `phase` until `release`; `inFlight` settles when
 * that call has arrived. Replaces the server's faults and forgets earlier requests.
 */
export function holdFirstCall(
  model: Pick<Awaited<ReturnType<typeof startSchemaInstanceServer>>, 'reset'>,
  phase: string,
) {
  let arrived!: () => void;
  const inFlight = new Promise<void>((done) => (arrived = done));
  let release!: () => void;
  const held = new Promise<void>((done) => (release = done));
  model.reset({
    fault: (request, sameTask) =>
      request.task === phase && sameTask === 1
        ? (arrived(), { kind: 'hold', until: held })
        : undefined,
  });
  return { inFlight, release };
}
