import type { z } from 'zod';
import { compileResult, draftDecision, PHASE_OUTPUT_SCHEMAS, type PhaseOutputMap } from '../phases';
import { Criterion } from '../phases/establish-goals';
import type { Alternative } from '../phases/generate-alternatives';
import { InformationNeed } from '../phases/identify-information-needs';
import { RetrievalAnswer } from '../phases/retrieve-information';

// The contract between phases: each phase's stored output, as its declaration in src/phases says.

export { MAX_CHARS, MAX_ITEMS } from '../phases/bounds';
export { PHASE_OUTPUT_SCHEMAS, type PhaseOutputMap };
export { Criterion, InformationNeed, RetrievalAnswer };

export const DraftDecisionOutput = draftDecision.output;
export const CompileResultOutput = compileResult.output;

export type InformationNeedOutput = z.infer<typeof InformationNeed>;
export type AlternativeOutput = z.infer<typeof Alternative>;
export type CriterionOutput = z.infer<typeof Criterion>;
