import type { PhaseOutputs } from './decision';
import type { PhaseOutputMap } from './outputs';
import type { PhaseName } from './phases';

type Reads = { [P in PhaseName]?: readonly (keyof PhaseOutputMap[P])[] };

/**
 * The earlier fields each phase's prompt reads, and so the only ones its activity is sent: the
 * activity inputs in a decision's history stay small whatever the earlier phases wrote.
 * retrieveInformation's fan-out sends one need instead; `needs` is for its single-activity form
 * (decisions started before the fan-out).
 */
export const PHASE_READS: { readonly [P in PhaseName]: Reads } = {
  identifyTrigger: {},
  analyzeRootCause: { identifyTrigger: ['trigger', 'urgency', 'stakeholders'] },
  defineScope: {
    identifyTrigger: ['trigger'],
    analyzeRootCause: ['root_cause', 'contributing_factors'],
  },
  establishGoals: { analyzeRootCause: ['root_cause'], defineScope: ['in_scope', 'constraints'] },
  identifyInformationNeeds: { defineScope: ['in_scope'], establishGoals: ['goals', 'criteria'] },
  retrieveInformation: { identifyInformationNeeds: ['needs'] },
  generateAlternatives: {
    defineScope: ['constraints'],
    establishGoals: ['criteria'],
    retrieveInformation: ['answers'],
  },
  draftDecision: {
    establishGoals: ['goals'],
    generateAlternatives: ['alternatives'],
    retrieveInformation: ['answers'],
  },
  updateDraft: {
    draftDecision: ['recommended', 'confidence', 'rationale', 'risks'],
    establishGoals: ['goals'],
    retrieveInformation: ['answers'],
    generateAlternatives: ['alternatives'],
  },
  compileResult: {
    identifyTrigger: ['trigger'],
    analyzeRootCause: ['root_cause'],
    generateAlternatives: ['alternatives'],
    draftDecision: ['risks'],
    updateDraft: ['summary', 'critique', 'revised_recommendation', 'revised_rationale'],
    retrieveInformation: ['answers'],
  },
};

/** The part of the earlier outputs that `phase` reads. */
export function selectInputs(phase: PhaseName, outputs: PhaseOutputs): PhaseOutputs {
  const selected: Record<string, Record<string, unknown>> = {};
  for (const [earlier, fields] of Object.entries(PHASE_READS[phase])) {
    const output = outputs[earlier as PhaseName] as Record<string, unknown> | undefined;
    if (!output) continue;
    selected[earlier] = Object.fromEntries(
      fields.filter((f) => f in output).map((f) => [f, output[f]]),
    );
  }
  return selected;
}
