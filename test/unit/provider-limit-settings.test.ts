import { describe, expect, it } from 'vitest';
import { ConfigError, loadWorkerConfig } from '../../src/config';
import { createModel, providerLimitKey } from '../../src/main/model';
import { OWN_FAILURE_TYPES } from '../../src/domain/failures';
import { PROVIDER_LIMIT_WAIT } from '../../src/llm/provider-limit';

describe('the provider limit settings', () => {
  it('sets no limit by default', () => {
    const config = loadWorkerConfig({});
    expect(config.LLM_REQUESTS_PER_MINUTE).toBe(0);
    expect(config.LLM_TOKENS_PER_MINUTE).toBe(0);
  });

  it('reads whole numbers and refuses anything else, naming the setting', () => {
    const config = loadWorkerConfig({
      LLM_REQUESTS_PER_MINUTE: '600',
      LLM_TOKENS_PER_MINUTE: '150000',
    });
    expect(config.LLM_REQUESTS_PER_MINUTE).toBe(600);
    expect(config.LLM_TOKENS_PER_MINUTE).toBe(150_000);
    for (const bad of ['-1', '1.5', 'many']) {
      expect(() => loadWorkerConfig({ LLM_REQUESTS_PER_MINUTE: bad })).toThrow(ConfigError);
      expect(() => loadWorkerConfig({ LLM_TOKENS_PER_MINUTE: bad })).toThrow(
        /LLM_TOKENS_PER_MINUTE/,
      );
    }
  });

  it("keys the limit by the endpoint's host and the model, so that each has its own", () => {
    const at = (env: Record<string, string>) => {
      const config = loadWorkerConfig({ LLM_PROVIDER: 'openai', LLM_API_KEY: 'k', ...env });
      return providerLimitKey(config, createModel(config));
    };
    expect(at({ LLM_MODEL: 'gpt-a' })).toBe('openai:api.openai.com:gpt-a');
    expect(at({ LLM_MODEL: 'gpt-b' })).toBe('openai:api.openai.com:gpt-b');
    expect(at({ LLM_MODEL: 'llama', LLM_BASE_URL: 'http://127.0.0.1:11434/v1' })).toBe(
      'openai:127.0.0.1:11434:llama',
    );
  });
});

describe("a call that would wait past its deadline for the provider's limit", () => {
  it('fails with a type whose message the decision may show its readers', () => {
    expect(OWN_FAILURE_TYPES.has(PROVIDER_LIMIT_WAIT)).toBe(true);
  });
});
