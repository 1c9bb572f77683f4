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
}

export interface ModelResponse {
  text: string;
  /** The model that answered, as the provider names it. */
  model: string;
  /** Null when the provider reports none. */
  usage: TokenUsage | null;
  /** True when the answer came from the response store, not from a new call. */
  reused?: boolean;
}

/** The one interface agents use to talk to a model. Implementations never retry: Temporal does. */
export interface LanguageModel {
  readonly name: string;
  generate(request: ModelRequest): Promise<ModelResponse>;
}
