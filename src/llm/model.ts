import type { TokenUsage } from '../domain/decision';
import type { JsonSchema } from './json-schema';

export interface ChatMessage {
  role: 'user' | 'assistant';
  content: string;
}

/** One request to a language model for a structured (JSON) answer. */
export interface ModelRequest {
  /** The phase that asks (the offline model answers by it). */
  task: string;
  system: string;
  messages: ChatMessage[];
  /** Name and JSON Schema of this call's answer, with its length limits. */
  schemaName: string;
  jsonSchema: JsonSchema;
  /** The most tokens the answer may take (`max_completion_tokens`). */
  maxOutputTokens: number;
  /** An answer longer than this many characters is not stored or parsed: `OutputTooLarge`. */
  maxAnswerChars: number;
  /**
   * What the caller wrote the prompt from, in its own structured form, for a local stand-in that
   * cannot read prose (the agents' offline model). Opaque here, and never sent to a remote model.
   */
  hints?: unknown;
  signal?: AbortSignal;
  /**
   * Called with each piece of the answer as the model writes it, and the output tokens received
   * so far (the provider's count where it gives one, else an estimate). A model that does not
   * stream calls it once with the whole answer. It must not throw; to stop the call, abort.
   */
  onOutput?: (piece: string, outputTokens: number) => void;
}

export interface ModelResponse {
  text: string;
  /** The model that answered, as the provider names it. */
  model: string;
  /** Null when the provider reports none. */
  usage: TokenUsage | null;
  /** True when the answer came from the response store, not from a new call. */
  reused?: boolean;
  /** True when `usage` is an estimate: the provider streamed the answer but sent no usage. */
  usageEstimated?: boolean;
}

/** The one interface agents use to talk to a model. Implementations never retry: Temporal does. */
export interface LanguageModel {
  readonly name: string;
  /** True when the answer arrives in pieces as it is written (`onOutput` is called as it comes). */
  readonly streams?: boolean;
  generate(request: ModelRequest): Promise<ModelResponse>;
}

const RECEIVED = Symbol('received usage');

/**
 * Marks the error a call ended with (aborted, cut at the budget, a stream that broke off) with what
 * it had received by then: those tokens are paid for, and no more.
 */
export function withReceived<E>(err: E, usage: TokenUsage): E {
  if (err && typeof err === 'object') (err as Record<symbol, unknown>)[RECEIVED] = usage;
  return err;
}

/** What a failed call had received before it ended, when its model said (see withReceived). */
export function receivedUsage(err: unknown): TokenUsage | null {
  if (!err || typeof err !== 'object') return null;
  return ((err as Record<symbol, unknown>)[RECEIVED] as TokenUsage | undefined) ?? null;
}
