import { defineQuery, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { DecisionRecord, PhaseOutputs, ReviewInput, ReviewState } from './decision';

/** Names shared by the workflow, the worker and the API. */
export const DECISION_WORKFLOW_TYPE = 'decisionWorkflow';

/** The longest id a decision can have: Temporal's limit on workflow ids (`limit.maxIDLength`). */
export const MAX_DECISION_ID_BYTES = 1000;

export const progressQuery = defineQuery<DecisionRecord>('progress');

/** Every phase output so far (the record carries them only once the decision has completed). */
export const outputsQuery = defineQuery<PhaseOutputs>('outputs');

/** A human review of the draft; rejected unless the decision is awaiting one. */
export const reviewUpdate = defineUpdate<ReviewState, [ReviewInput]>('review');

export const DecisionStatusAttribute = defineSearchAttributeKey(
  'DecisionStatus',
  SearchAttributeType.KEYWORD,
);
export const DecisionPhaseAttribute = defineSearchAttributeKey(
  'DecisionPhase',
  SearchAttributeType.KEYWORD,
);

/** Who created the decision, set when it starts: `DecisionOwner="billing"` in the Web UI. */
export const DecisionOwnerAttribute = defineSearchAttributeKey(
  'DecisionOwner',
  SearchAttributeType.KEYWORD,
);

/** Custom search attributes the workflow sets; the dev server and the worker register them. */
export const SEARCH_ATTRIBUTES = [
  DecisionStatusAttribute,
  DecisionPhaseAttribute,
  DecisionOwnerAttribute,
];
