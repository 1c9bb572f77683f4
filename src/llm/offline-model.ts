import { setTimeout } from 'node:timers/promises';
import { PHASES } from '../phases';
import type { AgentContext } from '../phases/phase';
import type { JsonSchema } from './json-schema';
import { withReceived, type LanguageModel, type ModelRequest, type ModelResponse } from './model';

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

/** The answer in pieces of about this many characters, as a streaming model sends it. */
const PIECE_CHARS = 16;

/**
 * A deterministic stand-in for a language model: no network, no key. It answers each phase with
 * fixed rules over the question's own words, earlier outputs and retrieved passages. It does not
 * reason; it exists so the system runs out of the box and in tests. Token counts are word pieces.
 *
 * It streams: the answer comes in pieces, spread evenly over `delayMs` (as a remote model's
 * latency would; `npm start` and the benchmarks use it), all at once without a delay. A call's
 * abort signal stops it, and the error says how much of the answer it had given.
 */
export function createOfflineModel(options: { delayMs?: number } = {}): LanguageModel {
  const delayMs = options.delayMs ?? 0;
  return {
    name: OFFLINE_MODEL,
    streams: true,
    async generate(request: ModelRequest): Promise<ModelResponse> {
      const phase = PHASES.find((p) => p.name === request.task);
      if (!phase) throw new Error(`The offline model has no rules for "${request.task}"`);
      const text = JSON.stringify(
        fitToSchema(phase.offline(agentContextOf(request)), request.jsonSchema),
      );
      const prompt = [request.system, ...request.messages.map((m) => m.content)].join('\n');
      const inputTokens = countTokens(prompt);
      const started = performance.now();
      const pieces = Math.max(1, Math.ceil(text.length / PIECE_CHARS));
      let given = 0;
      try {
        request.signal?.throwIfAborted();
        for (let i = 0; i < pieces; i++) {
          const due = started + (delayMs * (i + 1)) / pieces;
          const wait = due - performance.now();
          if (delayMs > 0 && wait > 0)
            await setTimeout(wait, undefined, { signal: request.signal });
          const piece = text.slice(i * PIECE_CHARS, (i + 1) * PIECE_CHARS);
          given += piece.length;
          request.onOutput?.(piece, countTokens(text.slice(0, given)));
        }
      } catch (err) {
        throw withReceived(err, {
          input_tokens: inputTokens,
          output_tokens: countTokens(text.slice(0, given)),
        });
      }
      return {
        text,
        model: OFFLINE_MODEL,
        usage: { input_tokens: inputTokens, output_tokens: countTokens(text) },
      };
    },
  };
}
