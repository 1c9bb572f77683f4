import createClient from 'openapi-fetch';
import { DecisionProtocolError, apiError } from './errors';
import { followEvents, type EventsOptions } from './events';
import type { paths } from './schema';
import type {
  CreateDecisionRequest,
  Decision,
  DecisionEvent,
  DecisionResult,
  DecisionSummary,
  ForkRequest,
  ListFilter,
  RetryRequest,
  RetryStarted,
  ReviewRequest,
  ReviewState,
} from './types';

export { DecisionApiError, DecisionProtocolError, DecisionStreamLostError } from './errors';
export type { EventsOptions, Reconnect } from './events';
export type * from './types';
export type { components, paths } from './schema';

export interface DecisionClientOptions {
  /** Where the API is, e.g. `http://127.0.0.1:8001`. */
  baseUrl: string;
  /** A key of the API's API_KEYS, sent as a bearer token; none when the API runs without auth. */
  apiKey?: string | undefined;
  /** Sends the requests (default: the global fetch). */
  fetch?: (request: Request) => Promise<Response>;
}

export interface CallOptions {
  /** Aborting gives up the request. */
  signal?: AbortSignal | undefined;
}

export interface CreateOptions extends CallOptions {
  /** Wait this long for the decision to finish (`30s`, `2m`; at most the API's MAX_WAIT_SECONDS). */
  wait?: string | undefined;
  /** A retried create with the same key returns the same decision instead of a second one. */
  idempotencyKey?: string | undefined;
}

export interface WaitOptions extends CallOptions {
  /** How long to wait (`30s`, `2m`); by default the API's own. */
  timeout?: string | undefined;
}

/** A typed client of the decision API. Errors the API answers are thrown as DecisionApiError. */
export interface DecisionClient {
  /** Starts a decision; with `wait`, waits for it to finish as long as that (see its status). */
  create(request: CreateDecisionRequest, options?: CreateOptions): Promise<Decision>;
  get(id: string, options?: CallOptions): Promise<Decision>;
  /** The decision once it has finished, or as it is when the timeout passes first. */
  wait(id: string, options?: WaitOptions): Promise<Decision>;
  /** Every decision the filter matches, newest first, fetched page by page as they are read. */
  list(
    filter?: ListFilter,
    options?: CallOptions,
  ): AsyncGenerator<DecisionSummary, void, undefined>;
  cancel(id: string, options?: CallOptions): Promise<Decision>;
  /** Answers a decision awaiting review: approve its draft, or give feedback. */
  review(id: string, review: ReviewRequest, options?: CallOptions): Promise<ReviewState>;
  /** A new decision that reuses the outputs of the phases before `from_phase`. */
  fork(id: string, fork: ForkRequest, options?: CallOptions): Promise<Decision>;
  /** Runs a failed or cancelled decision again from a phase (admin). */
  retry(id: string, retry?: RetryRequest, options?: CallOptions): Promise<RetryStarted>;
  /** A completed decision's result. */
  result(id: string, options?: CallOptions): Promise<DecisionResult>;
  /**
   * The decision's events as they happen, from the first (or after `lastEventId`) to its end:
   * the iterator finishes after decision.completed, decision.failed or decision.cancelled.
   */
  events(id: string, options?: EventsOptions): AsyncGenerator<DecisionEvent, void, undefined>;
}

/** What openapi-fetch answers: the data of a success, or the body of an error. */
interface Answer<Data> {
  data?: Data;
  error?: unknown;
  response: Response;
}

/** The data of a success; an error answer is thrown as DecisionApiError. */
async function dataOf<Data>(call: Promise<Answer<Data>>): Promise<Data> {
  let answer: Answer<Data>;
  try {
    answer = await call;
  } catch (err) {
    // openapi-fetch parses a success's body as JSON; anything else is a fault of the answer.
    if (err instanceof SyntaxError) {
      const message = `The API answered with a body that is not JSON: ${err.message}`;
      throw new DecisionProtocolError(message, { cause: err });
    }
    throw err;
  }
  const { data, error, response } = answer;
  if (!response.ok) throw apiError(response, error);
  if (data === undefined) {
    throw new DecisionProtocolError(`The API answered ${response.status} without a body`);
  }
  return data;
}

/** A client of the decision API at `baseUrl`. */
export function createDecisionClient(options: DecisionClientOptions): DecisionClient {
  const http = createClient<paths>({
    baseUrl: options.baseUrl,
    headers: options.apiKey ? { Authorization: `Bearer ${options.apiKey}` } : {},
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  const path = (id: string) => ({ path: { process_id: id } });
  return {
    create: (request, { wait, idempotencyKey, signal } = {}) =>
      dataOf(
        http.POST('/decisions', {
          params: {
            query: wait === undefined ? {} : { wait },
            header: idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey },
          },
          body: request,
          signal,
        }),
      ),
    get: (id, { signal } = {}) =>
      dataOf(http.GET('/decisions/{process_id}', { params: path(id), signal })),
    wait: (id, { timeout, signal } = {}) =>
      dataOf(
        http.GET('/decisions/{process_id}/wait', {
          params: { ...path(id), query: timeout === undefined ? {} : { timeout } },
          signal,
        }),
      ),
    async *list(filter = {}, { signal } = {}) {
      let cursor: string | undefined;
      do {
        const page = await dataOf(
          http.GET('/decisions', {
            params: { query: { ...filter, ...(cursor === undefined ? {} : { cursor }) } },
            signal,
          }),
        );
        yield* page.items;
        cursor = page.next_cursor ?? undefined;
      } while (cursor !== undefined);
    },
    cancel: (id, { signal } = {}) =>
      dataOf(http.POST('/decisions/{process_id}/cancel', { params: path(id), signal })),
    review: (id, review, { signal } = {}) =>
      dataOf(
        http.POST('/decisions/{process_id}/review', { params: path(id), body: review, signal }),
      ),
    fork: (id, fork, { signal } = {}) =>
      dataOf(http.POST('/decisions/{process_id}/fork', { params: path(id), body: fork, signal })),
    retry: (id, retry = {}, { signal } = {}) =>
      dataOf(http.POST('/decisions/{process_id}/retry', { params: path(id), body: retry, signal })),
    result: (id, { signal } = {}) =>
      dataOf(http.GET('/decisions/{process_id}/result', { params: path(id), signal })),
    events: (id, options = {}) =>
      followEvents(
        (lastEventId) =>
          http.GET('/decisions/{process_id}/events', {
            params: { ...path(id), query: options.deltas === false ? { deltas: 'false' } : {} },
            headers: {
              Accept: 'text/event-stream',
              ...(lastEventId === undefined ? {} : { 'Last-Event-ID': lastEventId }),
            },
            parseAs: 'stream',
            signal: options.signal,
          }),
        options,
      ),
  };
}
