import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { z } from 'zod';

/** The one error body of the API: RFC 9457 problem details. */
export const ProblemDetailsSchema = z.object({
  type: z
    .string()
    .describe(
      'An absolute URI naming the kind of problem, one per status (`…/problems/not-found`); it serves a short page on what it means and what to do',
    ),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  instance: z.string().optional(),
  /**
   * For validation problems: each invalid field and what is wrong with it (a field the request
   * should not have, too: "is not a field of this request").
   */
  errors: z
    .array(z.object({ path: z.string(), message: z.string() }))
    .optional()
    .describe(
      'For a 400: each field at fault (a dotted path; `(body)` for the body as a whole) and what is wrong with it, including each field the request body must not have',
    ),
});
export type Problem = z.infer<typeof ProblemDetailsSchema>;

/** A kind of problem: its `type` is `<API URL>/problems/<slug>`, which serves this as a page. */
export interface ProblemType {
  slug: string;
  status: number;
  title: string;
  /** What it means, in a sentence or two. */
  meaning: string;
  /** What a client should do about it. */
  remedy: string;
}

/** The type of a problem whose status has none of its own (status 0: any). */
const OTHER_PROBLEM: ProblemType = {
  slug: 'error',
  status: 0,
  title: 'Error',
  meaning: 'A problem of a status this API has no page of its own for.',
  remedy: 'The `status` and `detail` of the problem say what happened.',
};

export const PROBLEM_TYPES: readonly ProblemType[] = [
  {
    slug: 'invalid-request',
    status: 400,
    title: 'Invalid request',
    meaning:
      'A field, parameter or header of the request is missing, malformed, out of range, or not one the request may have. `detail` says what, and `errors` lists each field at fault with its path.',
    remedy:
      'Fix the fields `errors` names and send the request again. Nothing was started or changed.',
  },
  {
    slug: 'unauthorized',
    status: 401,
    title: 'Unauthorized',
    meaning: 'The request carried no API key, or one this server does not know.',
    remedy:
      'Send `Authorization: Bearer <key>` with a key from the server’s `API_KEYS`. Too many wrong keys from one address are answered 429 for a minute.',
  },
  {
    slug: 'forbidden',
    status: 403,
    title: 'Forbidden',
    meaning:
      'The API key is valid but lacks the scope the route needs (`decisions:read`, `decisions:write` or `decisions:admin`).',
    remedy: 'Use a key with that scope; `GET /me` shows the scopes of the key you send.',
  },
  {
    slug: 'not-found',
    status: 404,
    title: 'Not found',
    meaning:
      'No decision has this id, or none that your key may see (the answer is the same, so that ids do not leak), or no route matches the method and path.',
    remedy: 'Check the id and the key. Decisions are kept for the server’s retention period.',
  },
  {
    slug: 'method-not-allowed',
    status: 405,
    title: 'Method not allowed',
    meaning: 'The route exists but not with this method.',
    remedy: 'See the API document at `/openapi.json` for the methods of each route.',
  },
  {
    slug: 'conflict',
    status: 409,
    title: 'Conflict',
    meaning:
      'The decision’s state does not allow the request: it has finished (no cancel or review), it is not awaiting review, it has no result yet, or it has nothing to retry from.',
    remedy: 'Read the decision (`GET /decisions/{id}`) and act on its current `status`.',
  },
  {
    slug: 'payload-too-large',
    status: 413,
    title: 'Payload too large',
    meaning: 'The request body is larger than the server accepts.',
    remedy: 'Send a shorter question or context.',
  },
  {
    slug: 'unsupported-media-type',
    status: 415,
    title: 'Unsupported media type',
    meaning: 'The request body is not JSON.',
    remedy: 'Send the body as JSON with `Content-Type: application/json`.',
  },
  {
    slug: 'unprocessable',
    status: 422,
    title: 'Unprocessable request',
    meaning:
      'This `Idempotency-Key` was used before with a different request body: the server will not guess which one you meant.',
    remedy:
      'Send the first body again with that key to get its decision, or use a new key for the new request.',
  },
  {
    slug: 'too-many-requests',
    status: 429,
    title: 'Too many requests',
    meaning:
      'The key (or, without a key, the address) sent more requests a minute than the server allows, holds as many event streams as it may, or sent too many wrong keys.',
    remedy:
      'Wait the seconds `Retry-After` says, or close an event stream, then send the request again.',
  },
  {
    slug: 'internal-error',
    status: 500,
    title: 'Internal server error',
    meaning: 'The server failed in a way it did not expect. Nothing accepted was lost.',
    remedy:
      'Send the request again; if it fails again, report it with the `X-Request-Id` of the answer.',
  },
  {
    slug: 'service-unavailable',
    status: 503,
    title: 'Service unavailable',
    meaning:
      'Something the request needs does not answer just now: Temporal, Redis, a DNS server, or a worker of the build new decisions start on. `detail` says which. Nothing accepted was lost.',
    remedy:
      'Send the request again after `Retry-After` seconds; a create sent with an `Idempotency-Key` is never started twice.',
  },
  OTHER_PROBLEM,
];

const BY_STATUS = new Map(PROBLEM_TYPES.map((t) => [t.status, t]));
export const PROBLEM_TYPE_BY_SLUG = new Map(PROBLEM_TYPES.map((t) => [t.slug, t]));

/** A problem document; its `type` is relative (`/problems/<slug>`) until it is sent. */
export function problem(
  status: number,
  detail: string,
  extra: Partial<Pick<Problem, 'instance' | 'errors'>> = {},
): Problem {
  const { slug, title } = BY_STATUS.get(status) ?? OTHER_PROBLEM;
  return { type: `/problems/${slug}`, title, status, detail, ...extra };
}

/**
 * The URL this API's clients reach it at, with no trailing slash: API_PUBLIC_URL (kept in the
 * context as `publicUrl`), else the origin the request reached.
 */
export function publicUrlOf(c: Context): string {
  const configured = (c.get as (key: string) => unknown)('publicUrl');
  return typeof configured === 'string' ? configured : new URL(c.req.url).origin;
}

/** Sends a problem document, its `type` made absolute on the API's URL (path prefix kept). */
export function problemResponse(c: Context, body: Problem): Response {
  const type = body.type.startsWith('/') ? `${publicUrlOf(c)}${body.type}` : body.type;
  return c.body(JSON.stringify({ ...body, type }), body.status as ContentfulStatusCode, {
    'Content-Type': 'application/problem+json',
  });
}
