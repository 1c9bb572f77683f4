import { z } from 'zod';
import { DECISION_EVENT_TYPES, DECISION_STATUSES, PHASE_STATUSES } from './decision';
import { CompileResultOutput, PHASE_OUTPUT_SCHEMAS } from './outputs';
import { PHASE_NAMES, type PhaseName } from './phases';
import { DELIVERY_STATES } from './webhook';

export const PhaseNameSchema = z.enum(PHASE_NAMES as [PhaseName, ...PhaseName[]]);

export const DecisionBudgetSchema = z.object({
  max_model_calls: z.number().int().positive(),
  max_tokens: z.number().int().positive(),
});

export const DecisionErrorSchema = z.object({
  phase: PhaseNameSchema.nullable(),
  type: z.string(),
  message: z.string(),
});

export const PhaseRecordSchema = z.object({
  name: PhaseNameSchema,
  title: z.string(),
  status: z.enum(PHASE_STATUSES),
  started_at: z.string().nullable(),
  completed_at: z.string().nullable(),
  duration_ms: z.number().nullable(),
  attempts: z.number().int().nullable(),
  model: z.string().nullable(),
  model_calls: z.number().int().nullable(),
  repair_rounds: z.number().int().nullable().default(null),
  usage: z.object({ input_tokens: z.number(), output_tokens: z.number() }).nullable(),
  latency_ms: z.number().nullable(),
  reused_from: z.string().nullable(),
  error: DecisionErrorSchema.nullable(),
});

export const DecisionResultSchema = z.object({
  query: z.string(),
  decision: CompileResultOutput,
  phases: z.object(PHASE_OUTPUT_SCHEMAS),
  usage: z.object({
    model_calls: z.number(),
    repair_rounds: z.number().optional(),
    input_tokens: z.number(),
    output_tokens: z.number(),
    latency_ms: z.number(),
  }),
});

export const ReviewStateSchema = z.object({
  requested: z.boolean(),
  status: z.enum(['not_requested', 'pending', 'awaiting', 'approved', 'feedback', 'timed_out']),
  feedback: z.string().nullable(),
  requested_at: z.string().nullable(),
  answered_at: z.string().nullable(),
});

export const WebhookDeliverySchema = z.object({
  id: z.string(),
  event: z.enum(DECISION_EVENT_TYPES),
  state: z.enum(DELIVERY_STATES),
  attempts: z.number().int(),
  last_status: z.number().int().nullable(),
  last_error: z.string().nullable(),
  delivered_at: z.string().nullable(),
});

export const WebhookStateSchema = z.object({
  url: z.string(),
  events: z.array(z.enum(DECISION_EVENT_TYPES)),
  deliveries: z.array(WebhookDeliverySchema),
});

export const DecisionRecordSchema = z.object({
  process_id: z.string(),
  owner: z.string().nullable().default(null),
  query: z.string(),
  context: z.string().nullable(),
  metadata: z.record(z.string(), z.string()),
  review: ReviewStateSchema,
  forked_from: z.object({ process_id: z.string(), from_phase: PhaseNameSchema }).nullable(),
  budget: DecisionBudgetSchema.nullable().default(null),
  /** Where events are delivered and how each delivery went (null without a webhook). */
  webhook: WebhookStateSchema.nullable().default(null),
  status: z.enum(DECISION_STATUSES),
  current_phase: PhaseNameSchema.nullable(),
  phases: z.array(PhaseRecordSchema),
  result: DecisionResultSchema.nullable(),
  error: DecisionErrorSchema.nullable(),
  created_at: z.string(),
  updated_at: z.string(),
  completed_at: z.string().nullable(),
  seq: z.number(),
});
