import { z } from 'zod';

// The contract between phases: each agent's output schema. Later prompts use these fields.

const text = z.string().trim().min(1);

export const IdentifyTriggerOutput = z.object({
  summary: text,
  trigger: text.describe('What prompted the decision now'),
  urgency: z.enum(['low', 'medium', 'high', 'critical']),
  stakeholders: z.array(text).min(1),
});

export const AnalyzeRootCauseOutput = z.object({
  summary: text,
  root_cause: text.describe('The underlying problem behind the trigger'),
  contributing_factors: z.array(text).min(1),
});

export const DefineScopeOutput = z.object({
  summary: text,
  in_scope: z.array(text).min(1),
  out_of_scope: z.array(text),
  constraints: z.array(text),
});

export const EstablishGoalsOutput = z.object({
  summary: text,
  goals: z.array(z.object({ goal: text, metric: text })).min(1),
  criteria: z
    .array(
      z.object({
        name: text,
        weight: z.number().gt(0).lte(1),
        description: text,
      }),
    )
    .min(2)
    .max(8),
});

export const InformationNeed = z.object({
  id: text.describe('A short id such as N1'),
  question: text,
  why: text,
});

export const IdentifyInformationNeedsOutput = z.object({
  summary: text,
  needs: z.array(InformationNeed).min(1).max(6),
});

export const Citation = z.object({
  passage_id: text.describe('The id of a passage given in the prompt, such as P1'),
  source: text,
});

export const RetrievalAnswer = z.object({
  need_id: text,
  question: text,
  answered: z.boolean(),
  answer: text,
  confidence: z.enum(['none', 'low', 'medium', 'high']),
  citations: z.array(Citation),
});

export const RetrieveInformationOutput = z.object({
  summary: text,
  answers: z.array(RetrievalAnswer),
});

export const Alternative = z.object({
  name: text,
  description: text,
  scores: z.record(z.string(), z.number().int().min(1).max(5)),
  pros: z.array(text),
  cons: z.array(text),
  /** Computed from the scores and the criteria weights, not by the model. */
  weighted_score: z.number().min(0).max(1).optional(),
});

export const GenerateAlternativesOutput = z.object({
  summary: text,
  alternatives: z.array(Alternative).min(3).max(6),
});

const Risk = z.object({ risk: text, mitigation: text });

export const DraftDecisionOutput = z.object({
  summary: text,
  recommended: text.describe('The name of one of the alternatives'),
  rationale: text,
  risks: z.array(Risk).min(1),
  confidence: z.enum(['low', 'medium', 'high']),
});

export const UpdateDraftOutput = z.object({
  summary: text,
  critique: z.array(text).min(1),
  revised_recommendation: text.describe('The name of one of the alternatives'),
  revised_rationale: text,
  changes: z.array(text),
});

export const CompileResultOutput = z.object({
  title: text,
  decision: text,
  summary: text,
  rationale: text,
  alternatives_considered: z.array(z.object({ name: text, weighted_score: z.number() })).min(1),
  risks: z.array(Risk),
  next_steps: z.array(text).min(1),
  open_questions: z.array(text),
});

export const PHASE_OUTPUT_SCHEMAS = {
  identifyTrigger: IdentifyTriggerOutput,
  analyzeRootCause: AnalyzeRootCauseOutput,
  defineScope: DefineScopeOutput,
  establishGoals: EstablishGoalsOutput,
  identifyInformationNeeds: IdentifyInformationNeedsOutput,
  retrieveInformation: RetrieveInformationOutput,
  generateAlternatives: GenerateAlternativesOutput,
  draftDecision: DraftDecisionOutput,
  updateDraft: UpdateDraftOutput,
  compileResult: CompileResultOutput,
} as const;

export type PhaseOutputMap = {
  -readonly [K in keyof typeof PHASE_OUTPUT_SCHEMAS]: z.infer<(typeof PHASE_OUTPUT_SCHEMAS)[K]>;
};
export type InformationNeed = z.infer<typeof InformationNeed>;
export type RetrievalAnswer = z.infer<typeof RetrievalAnswer>;
export type AlternativeOutput = z.infer<typeof Alternative>;
