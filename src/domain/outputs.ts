import { PHASE_OUTPUT_SCHEMAS, type PhaseOutputMap } from '../phases';
import { compileResult } from '../phases/compile-result';
import { draftDecision } from '../phases/draft-decision';

// The contract between phases: each phase's stored output, as its declaration in src/phases says.

export { MAX_CHARS, MAX_ITEMS } from '../phases/bounds';
export { InformationNeed } from '../phases/identify-information-needs';
export { RetrievalAnswer } from '../phases/retrieve-information';
export { PHASE_OUTPUT_SCHEMAS, type PhaseOutputMap };

export const DraftDecisionOutput = draftDecision.output;
export const CompileResultOutput = compileResult.output;
