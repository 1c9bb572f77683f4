import { ApplicationFailure } from '@temporalio/common';
import type { z } from 'zod';
import type { PhaseOutputs, ReviewOutcome } from '../domain/decision';
import type { InformationNeed, PhaseOutputMap } from '../domain/outputs';
import type { PhaseName } from '../domain/phases';

/** A knowledge-base passage as an agent sees it: `ref` (P1, P2, …) is what it cites. */
export interface PromptPassage {
  ref: string;
  id: string;
  source: string;
  heading: string;
  text: string;
}

/** What an agent works from: the question, earlier outputs, and for retrieval a need and passages. */
export interface AgentContext {
  query: string;
  outputs: PhaseOutputs;
  /** Extra context the asker gave with the question. */
  context?: string | null;
  /** For updateDraft: what the human reviewer said, if the decision asked for review. */
  review?: ReviewOutcome | null;
  need?: InformationNeed;
  passages?: PromptPassage[];
}

export interface Agent<S extends z.ZodType = z.ZodType> {
  phase: PhaseName;
  schema: S;
  /** The agent's role and rules. */
  system: string;
  /** The user message, built from the question and earlier phases' structured fields. */
  prompt(ctx: AgentContext): string;
  /** Checks that need the context (names that must match, sources that must exist). */
  check?(output: z.infer<S>, ctx: AgentContext): string[];
  /** Fields computed by code, not by the model. */
  finish?(output: z.infer<S>, ctx: AgentContext): z.infer<S>;
}

/** An earlier phase's output, or a permanent failure: the workflow passes them all forward. */
export function earlier<P extends PhaseName>(ctx: AgentContext, phase: P): PhaseOutputMap[P] {
  const output = ctx.outputs[phase];
  if (output === undefined) {
    throw ApplicationFailure.create({
      type: 'InvalidPhaseInput',
      message: `the ${phase} output is missing from the decision state`,
      nonRetryable: true,
    });
  }
  return output;
}

export const bullets = (items: readonly string[]) =>
  items.length ? items.map((i) => `- ${i}`).join('\n') : '- (none)';

export const question = (ctx: AgentContext) =>
  ctx.context
    ? `Decision question: ${ctx.query}\n\nContext from the asker: ${ctx.context}`
    : `Decision question: ${ctx.query}`;
