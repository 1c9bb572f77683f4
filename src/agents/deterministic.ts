import type { PhaseInput, PhaseOutputs } from '../domain/decision';
import type { PhaseName } from '../domain/phases';

/** What an agent gives back for one phase. */
export interface AgentAnswer {
  output: PhaseOutput;
  model: string;
}

export type PhaseAgent = (input: PhaseInput) => Promise<AgentAnswer>;

/** The structured output every phase produces at this stage. */
export interface PhaseOutput {
  summary: string;
  points: string[];
}

export const DETERMINISTIC_MODEL = 'deterministic-v1';

const STOPWORDS = new Set(
  'a an and are as at be by can could do does for from has have how i in is it its may might of on or our should so that the their them they this to us was we what when where which who why will with would you your'.split(
    ' ',
  ),
);

/** "Should we move billing to a managed Postgres?" → "move billing to a managed Postgres". */
export function subjectOf(query: string): string {
  const trimmed = query.trim().replace(/[?.!\s]+$/u, '');
  const stripped = trimmed.replace(
    /^(should|shall|can|could|would|must|do|does|is|are|will)\s+(we|i|our team|the team|they|it)\s+/iu,
    '',
  );
  return stripped.length > 0 ? stripped : trimmed;
}

export function keywordsOf(query: string, limit = 5): string[] {
  const seen = new Set<string>();
  for (const word of query.toLowerCase().match(/[\p{L}\p{N}][\p{L}\p{N}'-]*/gu) ?? []) {
    if (word.length > 2 && !STOPWORDS.has(word)) seen.add(word);
    if (seen.size === limit) break;
  }
  return [...seen];
}

function summaryOf(outputs: PhaseOutputs, phase: PhaseName): string {
  const output = outputs[phase] as Partial<PhaseOutput> | undefined;
  if (typeof output?.summary !== 'string') {
    throw new Error(`the ${phase} output is missing from the decision state`);
  }
  return output.summary;
}

type Compose = (ctx: {
  query: string;
  subject: string;
  keywords: string[];
  outputs: PhaseOutputs;
}) => PhaseOutput;

const composers: Record<PhaseName, Compose> = {
  identifyTrigger: ({ query, subject, keywords }) => ({
    summary: `A decision is needed on whether to ${subject}.`,
    points: [`Question as asked: ${query}`, `Key terms: ${keywords.join(', ') || 'none found'}`],
  }),
  analyzeRootCause: ({ outputs, keywords }) => ({
    summary: `The way the team handles ${keywords[0] ?? 'this area'} today no longer fits its needs.`,
    points: [`Trigger: ${summaryOf(outputs, 'identifyTrigger')}`],
  }),
  defineScope: ({ subject, outputs }) => ({
    summary: `In scope: whether and how to ${subject}. Out of scope: unrelated systems.`,
    points: [`Root cause addressed: ${summaryOf(outputs, 'analyzeRootCause')}`],
  }),
  establishGoals: ({ keywords }) => ({
    summary: 'Choose the option that best balances risk, cost and time to value.',
    points: [
      'Risk (weight 0.4)',
      'Cost (weight 0.3)',
      'Time to value (weight 0.3)',
      ...keywords.slice(0, 2).map((k) => `Impact on ${k}`),
    ],
  }),
  identifyInformationNeeds: ({ subject }) => ({
    summary: `Three questions must be answered before deciding whether to ${subject}.`,
    points: [
      `What does it cost to ${subject}?`,
      `What could go wrong if we ${subject}?`,
      'What happens if we do nothing?',
    ],
  }),
  retrieveInformation: ({ outputs }) => {
    const needs = (outputs.identifyInformationNeeds as PhaseOutput | undefined)?.points ?? [];
    return {
      summary: `No knowledge base is searched at this stage; ${needs.length} needs remain open.`,
      points: needs.map((need) => `${need} Unanswered: no source consulted.`),
    };
  },
  generateAlternatives: ({ subject }) => ({
    summary: 'Three alternatives, scored against the goals.',
    points: [
      `Proceed: ${subject} now (risk 3/5, cost 3/5, time to value 4/5)`,
      `Pilot: ${subject} for a limited part first (risk 2/5, cost 2/5, time to value 3/5)`,
      'Defer: keep the current approach and revisit next quarter (risk 2/5, cost 1/5, time to value 1/5)',
    ],
  }),
  draftDecision: ({ subject }) => ({
    summary: `Recommend a pilot: ${subject} for a limited part first.`,
    points: [
      'Rationale: it tests the change at the lowest risk.',
      'Risk: the pilot may not represent the full load.',
    ],
  }),
  updateDraft: ({ outputs }) => ({
    summary: `${summaryOf(outputs, 'draftDecision')} Revised: set a success measure before the pilot starts.`,
    points: ['Critique: the draft named no success measure; one is now required.'],
  }),
  compileResult: ({ query, outputs }) => ({
    summary: summaryOf(outputs, 'updateDraft'),
    points: [
      `Question: ${query}`,
      `Trigger: ${summaryOf(outputs, 'identifyTrigger')}`,
      `Root cause: ${summaryOf(outputs, 'analyzeRootCause')}`,
      `Goals: ${summaryOf(outputs, 'establishGoals')}`,
    ],
  }),
};

/**
 * Agents that answer from the question's own words with fixed rules. They need no model, no
 * network and no key; they stand in until real model-backed agents are configured.
 */
export function createDeterministicAgents(): Record<PhaseName, PhaseAgent> {
  const agents = {} as Record<PhaseName, PhaseAgent>;
  for (const [phase, compose] of Object.entries(composers) as [PhaseName, Compose][]) {
    // Built inside the executor so that a missing input becomes a rejection, as a model call's would.
    agents[phase] = (input) =>
      new Promise((resolve) =>
        resolve({
          output: compose({
            query: input.query,
            subject: subjectOf(input.query),
            keywords: keywordsOf(input.query),
            outputs: input.outputs,
          }),
          model: DETERMINISTIC_MODEL,
        }),
      );
  }
  return agents;
}
