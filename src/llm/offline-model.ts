import { setTimeout } from 'node:timers/promises';
import { PHASES } from '../phases';
import type { AgentContext } from '../phases/phase';
import type { JsonSchema } from './json-schema';
import type { LanguageModel, ModelRequest, ModelResponse } from './model';

export const OFFLINE_MODEL = 'offline-heuristic-v1';

/** Word pieces of a text: the offline model's stand-in for a tokenizer's count. */
export function countTokens(text: string): number {
  return text.match(/[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu)?.length ?? 0;
}

/**
 * The answer cut to the limits of the schema it was asked for (strings to their maxLength, lists
 * to their maxItems), as a model that follows its schema writes it: long questions are quoted in
 * many fields.
 */
export function fitToSchema(value: unknown, schema: JsonSchema): unknown {
  if (typeof value === 'string' && typeof schema.maxLength === 'number') {
    return value.length <= schema.maxLength
      ? value
      : `${value.slice(0, schema.maxLength - 1).trimEnd()}…`;
  }
  if (Array.isArray(value)) {
    const items = schema.items as JsonSchema | undefined;
    const kept = typeof schema.maxItems === 'number' ? value.slice(0, schema.maxItems) : value;
    return items ? kept.map((v) => fitToSchema(v, items)) : kept;
  }
  if (value && typeof value === 'object') {
    const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, properties[k] ? fitToSchema(v, properties[k]) : v]),
    );
  }
  return value;
}

/** The agent context a call carries as its hints: the offline model reads it, not the prompt. */
function agentContextOf(request: ModelRequest): AgentContext {
  const hints = request.hints as Partial<AgentContext> | undefined;
  if (typeof hints?.query !== 'string' || typeof hints.outputs !== 'object' || !hints.outputs) {
    throw new Error(
      `The offline model answers agents' calls only: the "${request.task}" request carries no agent context in its hints`,
    );
  }
  return hints as AgentContext;
}

/**
 * A deterministic stand-in for a language model: no network, no key. It answers each phase with
 * fixed rules over the question's own words, earlier outputs and retrieved passages. It does not
 * reason; it exists so the system runs out of the box and in tests. Token counts are word pieces.
 *
 * `delayMs` holds each answer back that long, as a remote model's latency would (benchmarks use
 * it); a call's abort signal ends the wait.
 */
export function createOfflineModel(options: { delayMs?: number } = {}): LanguageModel {
  const delayMs = options.delayMs ?? 0;
  return {
    name: OFFLINE_MODEL,
    async generate(request: ModelRequest): Promise<ModelResponse> {
      const phase = PHASES.find((p) => p.name === request.task);
      if (!phase) throw new Error(`The offline model has no rules for "${request.task}"`);
      if (delayMs > 0) await setTimeout(delayMs, undefined, { signal: request.signal });
      const text = JSON.stringify(
        fitToSchema(phase.offline(agentContextOf(request)), request.jsonSchema),
      );
      const prompt = [request.system, ...request.messages.map((m) => m.content)].join('\n');
      return {
        text,
        model: OFFLINE_MODEL,
        usage: { input_tokens: countTokens(prompt), output_tokens: countTokens(text) },
      };
    },
  };
}
