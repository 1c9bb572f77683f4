import type { z } from 'zod';
import { analyzeRootCause } from './analyze-root-cause';
import { compileResult } from './compile-result';
import { defineScope } from './define-scope';
import { draftDecision } from './draft-decision';
import { establishGoals } from './establish-goals';
import { generateAlternatives } from './generate-alternatives';
import { identifyInformationNeeds } from './identify-information-needs';
import { identifyTrigger } from './identify-trigger';
import { PHASE_DEFAULTS, type Phase } from './phase';
import { retrieveInformation } from './retrieve-information';
import { updateDraft } from './update-draft';

/**
 * The ten phases of a decision, in the order the workflow runs them: the only list. A new phase
 * is a module declaring it and a line here.
 */
export const PHASES = [
  identifyTrigger,
  analyzeRootCause,
  defineScope,
  establishGoals,
  identifyInformationNeeds,
  retrieveInformation,
  generateAlternatives,
  draftDecision,
  updateDraft,
  compileResult,
] as const;

type Declared = (typeof PHASES)[number];
export type PhaseName = Declared['name'];

/** Each phase's stored output, by name. */
export type PhaseOutputMap = { [P in Declared as P['name']]: z.infer<P['output']> };

export const PHASE_NAMES: readonly PhaseName[] = PHASES.map((p) => p.name);

export function isPhaseName(value: string): value is PhaseName {
  return (PHASE_NAMES as readonly string[]).includes(value);
}

/** The declaration of a phase, by name. */
export function phaseNamed(name: PhaseName): Phase {
  return PHASES.find((p) => p.name === name)!;
}

/** Each phase's stored output schema, by name. */
export const PHASE_OUTPUT_SCHEMAS = Object.fromEntries(PHASES.map((p) => [p.name, p.output])) as {
  [P in Declared as P['name']]: P['output'];
};

/** How a phase runs as an activity: its declaration's timeouts and retries, else the defaults. */
export function activityOptions(phase: Phase) {
  return {
    heartbeatTimeout: phase.heartbeatTimeout ?? PHASE_DEFAULTS.heartbeatTimeout,
    retry: phase.retry ?? PHASE_DEFAULTS.retry,
  };
}

/**
 * The part of the earlier outputs that `phase` reads: the activity inputs in a decision's history
 * stay small whatever the earlier phases wrote.
 */
export function selectInputs(
  phase: PhaseName,
  outputs: Partial<PhaseOutputMap>,
): Partial<PhaseOutputMap> {
  const selected: Record<string, Record<string, unknown>> = {};
  for (const { phase: earlier, fields } of phaseNamed(phase).reads) {
    const output = outputs[earlier as PhaseName] as Record<string, unknown> | undefined;
    if (!output) continue;
    selected[earlier] = Object.fromEntries(
      fields.filter((f) => f in output).map((f) => [f, output[f]]),
    );
  }
  return selected;
}
