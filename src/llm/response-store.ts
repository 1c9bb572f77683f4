import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import type { LanguageModel, ModelRequest, ModelResponse } from './model';

/** Where model answers are kept so that a retried activity does not pay for them again. */
export interface ResponseStore {
  get(key: string): Promise<ModelResponse | null>;
  put(key: string, response: ModelResponse): Promise<void>;
  delete(keys: string[]): Promise<void>;
}

export class RedisResponseStore implements ResponseStore {
  constructor(
    private readonly redis: Redis | Cluster,
    private readonly prefix: string,
    private readonly ttlSeconds: number,
  ) {}

  async get(key: string): Promise<ModelResponse | null> {
    const raw = await this.redis.get(this.prefix + key);
    return raw ? (JSON.parse(raw) as ModelResponse) : null;
  }

  async put(key: string, response: ModelResponse): Promise<void> {
    await this.redis.set(this.prefix + key, JSON.stringify(response), 'EX', this.ttlSeconds);
  }

  async delete(keys: string[]): Promise<void> {
    // One command a key: on a cluster the keys sit in different slots.
    await Promise.all(keys.map((k) => this.redis.del(this.prefix + k)));
  }
}

/** The request as the model sees it: what decides its answer, hashed. */
export function requestHash(model: string, request: ModelRequest): string {
  const { system, messages, schemaName, jsonSchema } = request;
  return createHash('sha256')
    .update(JSON.stringify({ model, system, messages, schemaName, jsonSchema }))
    .digest('hex');
}

export interface StoredModel extends LanguageModel {
  /** Drops the answers this model stored, so that a retry asks afresh (after invalid output). */
  forget(): Promise<void>;
}

/**
 * Wraps a model so that each answer is stored (keyed by `scope`, e.g. workflow, run and activity
 * id, and the request's hash) before it is returned, and a stored answer is reused. A store that
 * does not answer costs a duplicate call at worst, never a failed phase. `lookup: false` skips the
 * read where nothing can be stored yet (a scope's first attempt).
 */
export function withResponseStore(
  model: LanguageModel,
  store: ResponseStore,
  scope: string,
  onStoreError: (err: unknown) => void = () => {},
  options: { lookup?: boolean } = {},
): StoredModel {
  const written: string[] = [];
  const lookup = options.lookup ?? true;
  return {
    name: model.name,
    streams: model.streams,
    async generate(request) {
      const key = `${scope}:${requestHash(model.name, request)}`;
      const stored = lookup
        ? await store.get(key).catch((err: unknown) => {
            onStoreError(err);
            return null;
          })
        : null;
      if (stored) {
        // A reused answer belongs to this attempt too: forget() must be able to drop it.
        written.push(key);
        // Shown as one piece: a live view of the attempt sees the answer it goes on with.
        request.onOutput?.(stored.text, stored.usage?.output_tokens ?? 0);
        return { ...stored, reused: true };
      }
      const response = await model.generate(request);
      await store.put(key, response).then(
        () => written.push(key),
        (err: unknown) => onStoreError(err),
      );
      return response;
    },
    async forget() {
      await store.delete(written.splice(0)).catch(onStoreError);
    },
  };
}
