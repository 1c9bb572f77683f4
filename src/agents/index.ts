import type { PhaseName } from '../domain/phases';
import { analyzeRootCause } from './analyze-root-cause';
import { compileResult } from './compile-result';
import type { Agent } from './context';
import { defineScope } from './define-scope';
import { draftDecision } from './draft-decision';
import { establishGoals } from './establish-goals';
import { generateAlternatives } from './generate-alternatives';
import { identifyInformationNeeds } from './identify-information-needs';
import { identifyTrigger } from './identify-trigger';
import { retrieveInformation } from './retrieve-information';
import { updateDraft } from './update-draft';

/** The ten agents, one per phase. */
export const AGENTS: Record<PhaseName, Agent> = {
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
};
