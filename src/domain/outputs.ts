import { z } from 'zod';

// The contract between phases: each phase's stored output. Later prompts use these fields. Every
// string and list is bounded: the same limits go into the schemas the models are sent
// (src/agents/answers.ts), so an answer that fits its schema fits here, and a decision's history
// has a known maximum size (docs/ARCHITECTURE.md, payload budget).

/** Longest text, in characters, of each kind of field. */
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

export const boundedText = (max: number) => z.string().trim().min(1).max(max);
export const boundedList = <T extends z.ZodType>(item: T, min: number, max: number) =>
  z.array(item).min(min).max(max);

const name = boundedText(MAX_CHARS.name);
const item = boundedText(MAX_CHARS.item);
const paragraph = boundedText(MAX_CHARS.paragraph);
const long = boundedText(MAX_CHARS.long);

export const IdentifyTriggerOutput = z.object({
  summary: paragraph,
  trigger: paragraph.describe('What prompted the decision now'),
  urgency: z.enum(['low', 'medium', 'high', 'critical']),
  stakeholders: boundedList(name, 1, MAX_ITEMS.list),
});

export const AnalyzeRootCauseOutput = z.object({
  summary: paragraph,
  root_cause: paragraph.describe('The underlying problem behind the trigger'),
  contributing_factors: boundedList(item, 1, MAX_ITEMS.list),
});

export const DefineScopeOutput = z.object({
  summary: paragraph,
  in_scope: boundedList(item, 1, MAX_ITEMS.list),
  out_of_scope: boundedList(item, 0, MAX_ITEMS.list),
  constraints: boundedList(item, 0, MAX_ITEMS.list),
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
  goals: boundedList(z.object({ goal: item, metric: item }), 1, MAX_ITEMS.goals),
  criteria: boundedList(Criterion, 2, MAX_ITEMS.criteria),
});

export const InformationNeed = z.object({
  id: z.string().min(1).max(8).describe('Given by code: N1, N2, …'),
  question: item,
  why: item,
});

export const IdentifyInformationNeedsOutput = z.object({
  summary: paragraph,
  needs: boundedList(InformationNeed, 1, MAX_ITEMS.needs),
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
  citations: boundedList(Citation, 0, MAX_ITEMS.passages),
});

export const RetrieveInformationOutput = z.object({
  summary: paragraph,
  answers: boundedList(RetrievalAnswer, 0, MAX_ITEMS.needs),
});

export const Alternative = z.object({
  name,
  description: paragraph,
  scores: z.record(z.string(), z.number().int().min(1).max(5)),
  pros: boundedList(item, 0, MAX_ITEMS.prosCons),
  cons: boundedList(item, 0, MAX_ITEMS.prosCons),
  /** Computed from the scores and the criteria weights, not by the model. */
  weighted_score: z.number().min(0).max(1).optional(),
});

export const GenerateAlternativesOutput = z.object({
  summary: paragraph,
  alternatives: boundedList(Alternative, 3, MAX_ITEMS.alternatives),
});

export const Risk = z.object({ risk: item, mitigation: item });

export const DraftDecisionOutput = z.object({
  summary: paragraph,
  recommended: name.describe('The name of one of the alternatives'),
  rationale: long,
  risks: boundedList(Risk, 1, MAX_ITEMS.risks),
  confidence: z.enum(['low', 'medium', 'high']),
});

export const UpdateDraftOutput = z.object({
  summary: paragraph,
  critique: boundedList(item, 1, MAX_ITEMS.list),
  revised_recommendation: name.describe('The name of one of the alternatives'),
  revised_rationale: long,
  changes: boundedList(item, 0, MAX_ITEMS.list),
});

export const CompileResultOutput = z.object({
  title: boundedText(160),
  decision: paragraph,
  summary: paragraph,
  rationale: long,
  /** Copied by code from the alternatives and their weighted scores. */
  alternatives_considered: boundedList(
    z.object({ name, weighted_score: z.number() }),
    1,
    MAX_ITEMS.alternatives,
  ),
  risks: boundedList(Risk, 0, MAX_ITEMS.risks),
  next_steps: boundedList(item, 1, MAX_ITEMS.list),
  open_questions: boundedList(item, 0, MAX_ITEMS.list),
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
