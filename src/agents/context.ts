import { ApplicationFailure } from '@temporalio/common';
import type { z } from 'zod';
import type { PhaseOutputs, ReviewOutcome } from '../domain/decision';
import { MAX_CHARS, type InformationNeed, type PhaseOutputMap } from '../domain/outputs';
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

/**
 * One phase's agent. The model answers `answer(ctx)`, a schema built for this very call from the
 * earlier outputs (names, ids and refs as enums, constants and required keys), so a model that
 * follows it cannot contradict them; `finish` turns the answer into the stored phase output,
 * computing what code can (weights, ids, sources, copied scores).
 */
export interface Agent<A extends z.ZodType = z.ZodType, O = unknown> {
  phase: PhaseName;
  /** The agent's role and rules. */
  system: string;
  /** The user message, built from the question and earlier phases' structured fields. */
  prompt(ctx: AgentContext): string;
  /** The schema of this call's answer: bounded, every property required, no extra keys. */
  answer(ctx: AgentContext): A;
  /** The stored output: the answer plus the fields code computes. */
  finish(answer: z.infer<A>, ctx: AgentContext): O;
}

/**
 * Names made unique, case-insensitively, by numbering repeats ("Cost", "Cost (2)"): later phases
 * use them as keys, and which one the model meant twice is not for code to guess.
 */
export function uniqueNames(names: readonly string[]): string[] {
  const seen = new Set<string>();
  return names.map((name) => {
    let candidate = name;
    for (let n = 2; seen.has(candidate.toLowerCase()); n++) {
      const suffix = ` (${n})`;
      candidate = `${name.slice(0, MAX_CHARS.name - suffix.length)}${suffix}`;
    }
    seen.add(candidate.toLowerCase());
    return candidate;
  });
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
