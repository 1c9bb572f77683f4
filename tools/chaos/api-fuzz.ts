import fc from 'fast-check';

type Schema = { [key: string]: unknown };
type Operation = {
  method: string;
  path: string;
  parameters: { in: string; name: string; schema: Schema }[];
  body: Schema | null;
};

/** The operations of an OpenAPI document, their parameters and JSON bodies. */
function operationsOf(doc: Schema): Operation[] {
  const paths = doc.paths as Record<string, Record<string, Schema>>;
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const content = (op.requestBody as Schema | undefined)?.content as
        Record<string, { schema: Schema }> | undefined;
      ops.push({
        method: method.toUpperCase(),
        path,
        parameters: (op.parameters ?? []) as Operation['parameters'],
        body: content?.['application/json']?.schema ?? null,
      });
    }
  }
  return ops;
}

/** Values a JSON Schema accepts, for the subset the API's zod schemas produce. */
function valid(schema: Schema, doc: Schema): fc.Arbitrary<unknown> {
  if (typeof schema.$ref === 'string') {
    const name = schema.$ref.split('/').at(-1)!;
    return valid(((doc.components as Schema).schemas as Record<string, Schema>)[name]!, doc);
  }
  if ('const' in schema) return fc.constant(schema.const);
  if (Array.isArray(schema.enum)) return fc.constantFrom(...(schema.enum as unknown[]));
  const union = (schema.anyOf ?? schema.oneOf) as Schema[] | undefined;
  if (union) return fc.oneof(...union.map((s) => valid(s, doc)));
  switch (schema.type) {
    case 'object': {
      const props = (schema.properties ?? {}) as Record<string, Schema>;
      const required = new Set((schema.required ?? []) as string[]);
      const record = fc.record(
        Object.fromEntries(Object.entries(props).map(([k, v]) => [k, valid(v, doc)])),
        { requiredKeys: [...required].filter((k) => k in props) },
      );
      const extra = schema.additionalProperties;
      return typeof extra === 'object' && extra !== null && Object.keys(props).length === 0
        ? fc.dictionary(fc.string({ maxLength: 20 }), valid(extra as Schema, doc), { maxKeys: 5 })
        : record;
    }
    case 'array':
      return fc.array(valid((schema.items ?? {}) as Schema, doc), { maxLength: 4 });
    case 'integer':
      return fc.integer({
        min: (schema.minimum as number | undefined) ?? -1000,
        max: (schema.maximum as number | undefined) ?? 1000,
      });
    case 'number':
      return fc.double({ min: -1000, max: 1000, noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'string':
      if (schema.format === 'date-time')
        return fc.date({ noInvalidDate: true }).map((d) => d.toISOString());
      // The API trims strings before it checks their length.
      return fc
        .string({
          minLength: (schema.minLength as number | undefined) ?? 0,
          maxLength: Math.min((schema.maxLength as number | undefined) ?? 40, 200),
        })
        .filter((text) => text.trim().length >= ((schema.minLength as number | undefined) ?? 0));
    default:
      return fc.jsonValue();
  }
}

interface Probe {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
}

/** Requests to one operation: valid ones from its schemas, and ones broken in one way or more. */
function probes(op: Operation, doc: Schema, ids: () => string[]): fc.Arbitrary<Probe> {
  const param = (p: Operation['parameters'][number]) =>
    p.name === 'wait' || p.name === 'timeout'
      ? fc.constantFrom('0s', '1', '200ms', '1s', 'soon', '-3s', '9999999s')
      : p.name === 'process_id'
        ? fc.oneof(
            fc.constantFrom(...ids(), 'unknown-id'),
            fc.string({ minLength: 1, maxLength: 80 }),
          )
        : fc.oneof(valid(p.schema, doc).map(String), fc.string({ maxLength: 60 }));
  const params = fc.record(
    Object.fromEntries(op.parameters.map((p) => [`${p.in}:${p.name}`, fc.option(param(p))])),
  );
  const body = op.body
    ? fc.oneof(
        { weight: 3, arbitrary: valid(op.body, doc).map((v) => JSON.stringify(v)) },
        { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
        { weight: 1, arbitrary: fc.constantFrom('{"query":', '', 'null', '[]', '{"query": 42}') },
      )
    : fc.constant(undefined);
  const json = fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, fc.constant(false));
  return fc.tuple(params, body, json).map(([values, text, isJson]) => {
    let path = op.path;
    const query = new URLSearchParams();
    const headers: Record<string, string> = {};
    for (const [key, value] of Object.entries(values)) {
      if (value === null || value === undefined) continue;
      const [where, name] = key.split(':') as [string, string];
      if (where === 'path') path = path.replace(`{${name}}`, encodeURIComponent(value));
      else if (where === 'query') query.set(name, value);
      // Header values a client can send at all: visible ASCII.
      else if (where === 'header' && /^[\x20-\x7e]*$/.test(value)) headers[name] = value;
    }
    path = path.replace(/\{process_id\}/g, 'missing');
    if (text !== undefined) headers['Content-Type'] = isJson ? 'application/json' : 'text/plain';
    const qs = query.toString();
    return { method: op.method, url: `${path}${qs ? `?${qs}` : ''}`, headers, body: text };
  });
}

export interface FuzzReport {
  requests: number;
  byStatus: Record<string, number>;
  serverErrors: { probe: Probe; status: number; body: string }[];
  /** 4xx answers that were not RFC 9457 problem documents. */
  notProblems: { probe: Probe; status: number; body: string }[];
  /** Requests with no answer within 10 s. */
  hangs: Probe[];
}

/**
 * Sends `count` requests generated from the API's OpenAPI document (fast-check, seeded), valid and
 * invalid, `concurrency` at a time, and reports every 5xx and every 4xx that is no problem document.
 */
export async function fuzzApi(baseUrl: string, count: number, seed = 7, concurrency = 12) {
  const doc = (await (await fetch(`${baseUrl}/openapi.json`)).json()) as Schema;
  const ids: string[] = [];
  const ops = operationsOf(doc);
  const all = fc.oneof(...ops.map((op) => probes(op, doc, () => ids)));
  const samples = fc.sample(all, { numRuns: count, seed });
  const report: FuzzReport = {
    requests: 0,
    byStatus: {},
    serverErrors: [],
    notProblems: [],
    hangs: [],
  };
  const send = async (probe: Probe) => {
    const abort = new AbortController();
    // No answer within 10 s is a hang, and counts against the API.
    const timer = setTimeout(() => abort.abort(), 10_000);
    try {
      const res = await fetch(`${baseUrl}${probe.url}`, {
        method: probe.method,
        headers: probe.headers,
        body: probe.method === 'GET' ? undefined : probe.body,
        signal: abort.signal,
      });
      const type = res.headers.get('content-type') ?? '';
      // An event stream of a decision that does not end: its status is what counts here.
      const text = type.includes('event-stream') ? (abort.abort(), '') : await res.text();
      report.requests += 1;
      report.byStatus[res.status] = (report.byStatus[res.status] ?? 0) + 1;
      if (res.status >= 500) report.serverErrors.push({ probe, status: res.status, body: text });
      if (res.status >= 400 && res.status < 500) {
        const problem = type.includes('application/problem+json')
          ? (JSON.parse(text) as { status?: number; title?: string; detail?: string })
          : null;
        if (!problem || problem.status !== res.status || !problem.title || !problem.detail) {
          report.notProblems.push({ probe, status: res.status, body: text.slice(0, 200) });
        }
      }
      if (res.status === 202 && probe.url.startsWith('/decisions') && text.startsWith('{')) {
        const id = (JSON.parse(text) as { process_id?: string }).process_id;
        if (id && ids.length < 50) ids.push(id);
      }
    } catch (err) {
      if (!abort.signal.aborted) throw err;
      report.hangs.push(probe);
    } finally {
      clearTimeout(timer);
    }
  };
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < samples.length) await send(samples[next++]!);
    }),
  );
  return report;
}
