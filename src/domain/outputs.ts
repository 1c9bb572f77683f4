import { z } from 'zod';

// The contract between phases: each phase's stored output. Later prompts use these fields. The
// shapes are checked here; the sizes are bounded where the model writes them, in the answer
// schemas (src/agents/answers.ts, with the limits below), so decisions stored before the bounds
// existed still read.

/** Longest text, in characters, of each kind of field a model writes. */
export const MAX_CHARS = {
  /** Names that later phases repeat: criteria, alternatives, stakeholders. */
  name: 80,
  /** One list entry: a factor, a constraint, a pro, a risk. */
  item: 240,
  /** A short paragraph: a summary, a description, a trigger. */
  paragraph: 600,
  /** A long paragraph: a rationale, an answer from the knowledge base. */
  long: 1500,
} as const;

/** Most entries in a list of each kind. */
export const MAX_ITEMS = {
  list: 8,
  goals: 6,
  criteria: 8,
  needs: 6,
  alternatives: 6,
  prosCons: 5,
  risks: 6,
  /** Passages one information need is answered from (and so may cite). */
  passages: 6,
} as const;

const text = z.string().trim().min(1);
const list = <T extends z.ZodType>(item: T, min: number) => z.array(item).min(min);
const name = text;
const item = text;
const paragraph = text;
const long = text;

export const IdentifyTriggerOutput = z.object({
  summary: paragraph,
  trigger: paragraph.describe('What prompted the decision now'),
  urgency: z.enum(['low', 'medium', 'high', 'critical']),
  stakeholders: list(name, 1),
});

export const AnalyzeRootCauseOutput = z.object({
  summary: paragraph,
  root_cause: paragraph.describe('The underlying problem behind the trigger'),
  contributing_factors: list(item, 1),
});

export const DefineScopeOutput = z.object({
  summary: paragraph,
  in_scope: list(item, 1),
  out_of_scope: list(item, 0),
  constraints: list(item, 0),
});

export const Criterion = z.object({
  name,
  /** Relative importance from 1 to 5, as the model judged it (absent in older decisions). */
  importance: z.number().int().min(1).max(5).optional(),
  /** The importance normalised by code: the weights of a decision add up to 1. */
  weight: z.number().gt(0).lte(1),
  description: item,
});

export const EstablishGoalsOutput = z.object({
  summary: paragraph,
  goals: list(z.object({ goal: item, metric: item }), 1),
  criteria: list(Criterion, 2),
});

export const InformationNeed = z.object({
  id: text.describe('Given by code: N1, N2, …'),
  question: item,
  why: item,
});

export const IdentifyInformationNeedsOutput = z.object({
  summary: paragraph,
  needs: list(InformationNeed, 1),
});

export const Citation = z.object({
  passage_id: z
    .string()
    .min(1)
    .max(8)
    .describe('The ref of a passage given in the prompt: P1, P2, …'),
  /** Filled in by code from the passage, never asked of the model. */
  source: z.string().min(1).max(300),
});

export const RetrievalAnswer = z.object({
  need_id: InformationNeed.shape.id,
  question: item,
  answered: z.boolean(),
  answer: long,
  confidence: z.enum(['none', 'low', 'medium', 'high']),
  citations: list(Citation, 0),
});

export const RetrieveInformationOutput = z.object({
  summary: paragraph,
  answers: list(RetrievalAnswer, 0),
});

export const Alternative = z.object({
  name,
  description: paragraph,
  scores: z.record(z.string(), z.number().int().min(1).max(5)),
  pros: list(item, 0),
  cons: list(item, 0),
  /** Computed from the scores and the criteria weights, not by the model. */
  weighted_score: z.number().min(0).max(1).optional(),
});

export const GenerateAlternativesOutput = z.object({
  summary: paragraph,
  alternatives: list(Alternative, 3),
});

export const Risk = z.object({ risk: item, mitigation: item });

export const DraftDecisionOutput = z.object({
  summary: paragraph,
  recommended: name.describe('The name of one of the alternatives'),
  rationale: long,
  risks: list(Risk, 1),
  confidence: z.enum(['low', 'medium', 'high']),
});

export const UpdateDraftOutput = z.object({
  summary: paragraph,
  critique: list(item, 1),
  revised_recommendation: name.describe('The name of one of the alternatives'),
  revised_rationale: long,
  changes: list(item, 0),
});

export const CompileResultOutput = z.object({
  title: text,
  decision: paragraph,
  summary: paragraph,
  rationale: long,
  /** Copied by code from the alternatives and their weighted scores. */
  alternatives_considered: list(z.object({ name, weighted_score: z.number() }), 1),
  risks: list(Risk, 0),
  next_steps: list(item, 1),
  open_questions: list(item, 0),
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
export type CriterionOutput = z.infer<typeof Criterion>;
