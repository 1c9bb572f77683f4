import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import type { TokenUsage } from '../domain/decision';
import { ModelErrorType, outputTooLarge, retryable } from '../llm/errors';
import { maxInstanceChars, type JsonSchema } from '../llm/json-schema';
import type { ChatMessage, LanguageModel } from '../llm/model';
import type { AgentContext, Phase } from '../phases/phase';

export interface AgentRun<O> {
  output: O;
  model: string;
  /** Calls that reached the model (answers reused from the response store are not counted). */
  model_calls: number;
  /** Second calls made because the first answer did not validate. */
  repair_rounds: number;
  usage: TokenUsage;
  latency_ms: number;
}

/** How big one phase's answer may be: its JSON schema, its token cap and its character limit. */
export interface AnswerBounds {
  jsonSchema: JsonSchema;
  /** The longest compact JSON instance of the schema. */
  maxInstanceChars: number;
  maxOutputTokens: number;
  maxAnswerChars: number;
}

/** Output tokens a model may spend reasoning before it answers, on top of the answer itself. */
export const REASONING_ALLOWANCE_TOKENS = 4096;

/**
 * The bounds of an answer schema. The token cap allows a token per character of the longest
 * instance (text in non-Latin scripts runs close to that) plus room to reason; the character
 * limit doubles the longest instance for whitespace and escapes. Both are far above what a model
 * that follows its schema writes, and both are finite for every phase.
 */
export function answerBounds(schema: z.ZodType, maxOutputTokens?: number): AnswerBounds {
  const { $schema: _, ...jsonSchema } = z.toJSONSchema(schema, { io: 'input' }) as JsonSchema;
  const longest = maxInstanceChars(jsonSchema);
  if (!Number.isFinite(longest))
    throw new Error('An answer schema must bound every string and list');
  return {
    jsonSchema,
    maxInstanceChars: longest,
    maxOutputTokens: maxOutputTokens ?? longest + REASONING_ALLOWANCE_TOKENS,
    maxAnswerChars: 2 * longest + 2048,
  };
}

/** Parses the model's text as JSON (tolerating a Markdown fence) and validates it. */
export function validateAnswer<S extends z.ZodType>(
  schema: S,
  text: string,
): { ok: true; answer: z.infer<S> } | { ok: false; problems: string[] } {
  const body = text
    .trim()
    .replace(/^```(?:json)?\s*/i, '')
    .replace(/\s*```$/, '');
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { ok: false, problems: ['the answer is not valid JSON'] };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    return {
      ok: false,
      problems: parsed.error.issues.map(
        (i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`,
      ),
    };
  }
  return { ok: true, answer: parsed.data };
}

export interface RunOptions {
  signal?: AbortSignal;
  /** Overrides the token cap derived from the answer schema. */
  maxOutputTokens?: number;
}

/**
 * Runs one agent: asks the model for an answer to this call's schema, validates it, and on an
 * invalid answer asks once more with the problems listed (a repair round). Still invalid → a
 * retryable failure that names the phase and what was wrong; the activity's retry policy takes
 * over. An answer past its bounds fails at once (`OutputTooLarge`).
 */
export async function runAgent<A extends z.ZodType, R>(
  agent: Phase<string, z.ZodObject, A, R>,
  ctx: AgentContext,
  model: LanguageModel & { forget?: () => Promise<void> },
  options: RunOptions = {},
): Promise<AgentRun<R>> {
  const schema = agent.answer(ctx);
  const bounds = answerBounds(schema, options.maxOutputTokens);
  const messages: ChatMessage[] = [{ role: 'user', content: agent.prompt(ctx) }];
  const usage: TokenUsage = { input_tokens: 0, output_tokens: 0 };
  let calls = 0;
  let latency = 0;
  let problems: string[] = [];

  for (let round = 0; round < 2; round++) {
    const started = performance.now();
    const response = await model.generate({
      task: agent.name,
      system: agent.system,
      messages,
      schemaName: agent.name,
      jsonSchema: bounds.jsonSchema,
      maxOutputTokens: bounds.maxOutputTokens,
      maxAnswerChars: bounds.maxAnswerChars,
      hints: ctx,
      signal: options.signal,
    });
    if (!response.reused) {
      calls += 1;
      latency += performance.now() - started;
      usage.input_tokens += response.usage?.input_tokens ?? 0;
      usage.output_tokens += response.usage?.output_tokens ?? 0;
    }
    if (response.text.length > bounds.maxAnswerChars) {
      await model.forget?.();
      throw outputTooLarge(agent.name, response.model, {
        chars: response.text.length,
        maxChars: bounds.maxAnswerChars,
      });
    }
    const result = validateAnswer(schema, response.text);
    if (result.ok) {
      return {
        output: storedOutput(agent, agent.finish(result.answer, ctx)),
        model: response.model,
        model_calls: calls,
        repair_rounds: round,
        usage,
        latency_ms: Math.round(latency),
      };
    }
    problems = result.problems;
    messages.push(
      { role: 'assistant', content: response.text },
      {
        role: 'user',
        content: `That answer is invalid:\n${problems.map((p) => `- ${p}`).join('\n')}\nReply again with only the corrected JSON object.`,
      },
    );
  }
  // A retry must ask afresh rather than replay the stored invalid answers.
  await model.forget?.();
  throw retryable(
    ModelErrorType.InvalidOutput,
    `${agent.name}: the model's answer was still invalid after a repair round: ${problems.join('; ')}`,
  );
}

/** The finished output, checked against the phase's contract: a miss here is a bug in code. */
function storedOutput<R>(agent: Phase<string, z.ZodObject, z.ZodType, R>, output: R): R {
  const parsed = (agent.callOutput ?? agent.output).safeParse(output);
  if (parsed.success) return output;
  throw ApplicationFailure.create({
    type: 'InvalidPhaseOutput',
    message: `${agent.name}: the output computed from a valid answer breaks the phase's contract: ${parsed.error.message}`,
    nonRetryable: true,
  });
}
