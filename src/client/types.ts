import type { components, paths } from './schema';

// The client's types, all taken from the types generated from the API's OpenAPI document
// (schema.ts): what the API's routes answer is what the client says it returns.

type Schemas = components['schemas'];
type Json<Response> = Response extends { content: { 'application/json': infer Body } }
  ? Body
  : never;

/** A decision as the API shows it: its status, its phases and, once completed, its result. */
export type Decision = Schemas['Decision'];
/** An RFC 9457 problem document, the body of every error the API answers. */
export type Problem = Schemas['Problem'];
/** The body of a create: the question and its options. */
export type CreateDecisionRequest = Schemas['CreateDecision'];
/** A review of a draft: approve it, or ask for changes. */
export type ReviewRequest = Schemas['Review'];
/** Where a fork starts, and what it changes. */
export type ForkRequest = Schemas['Fork'];
/** Where a retry starts, and on which build. */
export type RetryRequest = Schemas['Retry'];

/** One decision in a listing: its status and times, without its phases. */
export type DecisionSummary = Json<paths['/decisions']['get']['responses'][200]>['items'][number];
/** The filters of a listing; `limit` is the size of each page the listing fetches. */
export type ListFilter = Omit<
  NonNullable<paths['/decisions']['get']['parameters']['query']>,
  'cursor'
>;
/** A completed decision's result. */
export type DecisionResult = Json<paths['/decisions/{process_id}/result']['get']['responses'][200]>;
/** A decision's review after a review was accepted. */
export type ReviewState = Json<paths['/decisions/{process_id}/review']['post']['responses'][200]>;
/** What a retry started: the phase it runs from and the workflow run it made. */
export type RetryStarted = Json<paths['/decisions/{process_id}/retry']['post']['responses'][202]>;

/**
 * The type of every event a decision's event stream sends: the document describes the data of
 * each as the schema `EventData.<type>`.
 */
export type DecisionEventType = {
  [Name in keyof Schemas]: Name extends `EventData.${infer Type}` ? Type : never;
}[keyof Schemas];

/** The data of an event of this type. */
export type DecisionEventData<Type extends DecisionEventType> = Schemas[`EventData.${Type}`];

/** One event of a decision's stream; `type` tells the shape of its `data`. */
export type DecisionEvent<Type extends DecisionEventType = DecisionEventType> = {
  [T in Type]: {
    type: T;
    /** The event's id in the stream: given back as `lastEventId`, the stream goes on after it. */
    id: string;
    data: DecisionEventData<T>;
  };
}[Type];

/** The events that end a decision's stream: the decision has finished. */
export type DecisionEndEvent = DecisionEvent<
  'decision.completed' | 'decision.failed' | 'decision.cancelled'
>;

/**
 * The live events: the running phase's model output as it is written. A side channel: the API
 * keeps a capped number per decision and drops the oldest, so a client may miss some.
 */
export type LiveEvent = DecisionEvent<'phase.attempt' | 'phase.delta'>;
