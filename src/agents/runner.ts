import { z } from 'zod';
import type { TokenUsage } from '../domain/decision';
import { ModelErrorType, retryable } from '../llm/errors';
import type { ChatMessage, LanguageModel } from '../llm/model';
import type { Agent, AgentContext } from './context';

export interface AgentRun<O> {
  output: O;
  model: string;
  /** Calls that reached the model (answers reused from the response store are not counted). */
  model_calls: number;
  usage: TokenUsage;
  latency_ms: number;
}

const JSON_RULES =
  'Reply with one JSON object that matches the JSON Schema below, and nothing else: no prose, ' +
  'no Markdown fences.';

/** Parses the model's text as JSON (tolerating a Markdown fence) and validates it. */
export function validateAnswer<S extends z.ZodType>(
  agent: Agent<S>,
  text: string,
  ctx: AgentContext,
): { ok: true; output: z.infer<S> } | { ok: false; problems: string[] } {
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
  const parsed = agent.schema.safeParse(json);
  if (!parsed.success) {
    return {
      ok: false,
      problems: parsed.error.issues.map(
        (i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`,
      ),
    };
  }
  const problems = agent.check?.(parsed.data, ctx) ?? [];
  return problems.length ? { ok: false, problems } : { ok: true, output: parsed.data };
}

/**
 * Runs one agent: asks the model for structured output, validates it, and on invalid output asks
 * once more with the problems listed (a repair round). Still invalid → a retryable failure that
 * names the phase and what was wrong; the activity's retry policy takes over.
 */
export async function runAgent<S extends z.ZodType>(
  agent: Agent<S>,
  ctx: AgentContext,
  model: LanguageModel & { forget?: () => Promise<void> },
  signal?: AbortSignal,
): Promise<AgentRun<z.infer<S>>> {
  const jsonSchema = z.toJSONSchema(agent.schema, { io: 'input' }) as Record<string, unknown>;
  const system = `${agent.system}\n\n${JSON_RULES}\n\n${JSON.stringify(jsonSchema)}`;
  const messages: ChatMessage[] = [{ role: 'user', content: agent.prompt(ctx) }];
  const usage: TokenUsage = { input_tokens: 0, output_tokens: 0 };
  let calls = 0;
  let latency = 0;
  let problems: string[] = [];

  for (let round = 0; round < 2; round++) {
    const started = performance.now();
    const response = await model.generate({
      task: agent.phase,
      system,
      messages,
      schemaName: agent.phase,
      jsonSchema,
      context: ctx,
      signal,
    });
    if (!response.reused) {
      calls += 1;
      latency += performance.now() - started;
      usage.input_tokens += response.usage?.input_tokens ?? 0;
      usage.output_tokens += response.usage?.output_tokens ?? 0;
    }
    const result = validateAnswer(agent, response.text, ctx);
    if (result.ok) {
      const output = agent.finish ? agent.finish(result.output, ctx) : result.output;
      return {
        output,
        model: response.model,
        model_calls: calls,
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
    `${agent.phase}: the model's answer was still invalid after a repair round: ${problems.join('; ')}`,
  );
}
