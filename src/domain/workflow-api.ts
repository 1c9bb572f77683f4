import { defineQuery } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { DecisionRecord } from './decision';

/** Names shared by the workflow, the worker and the API. */
export const DECISION_WORKFLOW_TYPE = 'decisionWorkflow';

export const progressQuery = defineQuery<DecisionRecord>('progress');

export const DecisionStatusAttribute = defineSearchAttributeKey(
  'DecisionStatus',
  SearchAttributeType.KEYWORD,
);
export const DecisionPhaseAttribute = defineSearchAttributeKey(
  'DecisionPhase',
  SearchAttributeType.KEYWORD,
);

/** Custom search attributes the workflow sets; the dev server and the worker register them. */
export const SEARCH_ATTRIBUTES = [DecisionStatusAttribute, DecisionPhaseAttribute];
