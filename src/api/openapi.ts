import { DECISION_EVENT_TYPES } from '../domain/decision';
import { LIVE_EVENT_TYPES } from '../domain/live';

// The OpenAPI document: what @hono/zod-openapi generates from the routes (OpenAPI 3.1), finished
// here with what it cannot say: OpenAPI 3.2's `itemSchema` for the event stream, the headers
// every response carries, and the document's own servers, tags and license.

/** A JSON object of the document; the generator's types stop at 3.1. */
type Json = Record<string, unknown>;

export const API_TITLE = 'Decision backend API';
export const API_VERSION = '0.1.0';

export const TAGS = [
  {
    name: 'Decisions',
    description:
      'Ask a decision question, follow it, review it, fork or retry it. A decision runs ten agent phases durably on Temporal.',
  },
  {
    name: 'Events',
    description:
      "A decision's events as Server-Sent Events, resumable with Last-Event-ID; the running phase's model output as it is written.",
  },
  { name: 'Keys', description: 'The calling API key.' },
  { name: 'Webhooks', description: "The secret that signs the caller's webhook deliveries." },
  {
    name: 'Service',
    description: 'Whether the API, Temporal, Redis and the workers answer; public (no key).',
  },
  {
    name: 'Legacy',
    description:
      "The seed's start and status routes, kept for existing clients: use POST /decisions and GET /decisions/{process_id} instead.",
  },
] as const;
export type Tag = (typeof TAGS)[number]['name'];

const ref = (kind: string, name: string) => ({ $ref: `#/components/${kind}/${name}` });

const HEADERS = {
  'X-Request-Id': {
    description:
      "The request's id: the one the request sent in X-Request-Id, or one made for it. Quote it when reporting a problem.",
    schema: { type: 'string' },
  },
  'RateLimit-Limit': {
    description: 'Requests a minute this key (without auth: this address) may send',
    schema: { type: 'integer', minimum: 1 },
  },
  'RateLimit-Remaining': {
    description: 'Requests left in the current minute',
    schema: { type: 'integer', minimum: 0 },
  },
  'Retry-After': {
    description: 'Seconds to wait before sending the request again',
    schema: { type: 'integer', minimum: 1 },
  },
  'WWW-Authenticate': {
    description: 'How to authenticate: `Bearer realm="decisions"`',
    schema: { type: 'string' },
  },
  Location: {
    description: 'The path of the decision (`/decisions/{process_id}`)',
    schema: { type: 'string', format: 'uri-reference' },
  },
} satisfies Record<string, Json>;

export const headerRef = (name: keyof typeof HEADERS) => ref('headers', name);

const OPERATIONS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/**
 * The item schema of the event stream: per event type, the SSE fields as OpenAPI 3.2 reads them
 * (`event`, `id`, and `data` as a string holding the JSON of `EventData.<type>`), one of them by
 * the `event` field.
 */
function eventStreamSchemas(): Record<string, Json> {
  const types = [...DECISION_EVENT_TYPES, ...LIVE_EVENT_TYPES];
  const schemas: Record<string, Json> = {};
  for (const type of types) {
    schemas[`DecisionStreamEvent.${type}`] = {
      type: 'object',
      required: ['event', 'id', 'data'],
      properties: {
        event: { type: 'string', const: type },
        id: {
          type: 'string',
          description:
            'Where the stream is: send the last one seen back as Last-Event-ID to resume after it',
        },
        data: {
          type: 'string',
          contentMediaType: 'application/json',
          contentSchema: ref('schemas', `EventData.${type}`),
        },
      },
    };
  }
  schemas.DecisionStreamEvent = {
    description:
      "One event of a decision's stream. The stream also carries comments (`: keep-alive`), which are no events.",
    oneOf: types.map((type) => ref('schemas', `DecisionStreamEvent.${type}`)),
    discriminator: {
      propertyName: 'event',
      mapping: Object.fromEntries(
        types.map((type) => [type, `#/components/schemas/DecisionStreamEvent.${type}`]),
      ),
    },
  };
  return schemas;
}

/**
 * Finishes the generated document: OpenAPI 3.2, the API's URL as its server, license and tags,
 * `security: []` on the public routes, the headers of every response, and the event stream's
 * items by their schemas.
 */
export function finishDocument(generated: object, publicUrl: string): Json {
  const doc = structuredClone(generated) as Json & {
    paths: Record<string, Record<string, Json>>;
    components: Json & { schemas?: Record<string, Json> };
  };
  doc.openapi = '3.2.0';
  doc.info = {
    ...(doc.info as Json),
    license: { name: 'MIT', identifier: 'MIT' },
  };
  doc.servers = [{ url: publicUrl, description: 'This API' }];
  doc.tags = TAGS;
  doc.components.headers = HEADERS;
  doc.components.schemas = { ...doc.components.schemas, ...eventStreamSchemas() };

  for (const item of Object.values(doc.paths)) {
    for (const method of OPERATIONS) {
      const operation = item[method] as
        (Json & { security?: unknown[]; responses: Record<string, Json> }) | undefined;
      if (!operation) continue;
      // Routes with no key: said, not left to a default the document does not have.
      const secured = (operation.security?.length ?? 0) > 0;
      if (!secured) operation.security = [];
      for (const [status, response] of Object.entries(operation.responses)) {
        const headers: Record<string, Json> = {
          'X-Request-Id': headerRef('X-Request-Id'),
          // Keyed routes pass the rate limiter (when it is on), which answers with the count.
          ...(secured && status !== '401'
            ? {
                'RateLimit-Limit': headerRef('RateLimit-Limit'),
                'RateLimit-Remaining': headerRef('RateLimit-Remaining'),
              }
            : {}),
          ...(status === '429' || status === '503'
            ? { 'Retry-After': headerRef('Retry-After') }
            : {}),
          ...(status === '401' ? { 'WWW-Authenticate': headerRef('WWW-Authenticate') } : {}),
          ...((response.headers as Record<string, Json> | undefined) ?? {}),
        };
        response.headers = headers;
        const content = response.content as Record<string, Json> | undefined;
        if (content?.['text/event-stream']) {
          content['text/event-stream'] = { itemSchema: ref('schemas', 'DecisionStreamEvent') };
        }
      }
    }
  }
  return doc;
}
