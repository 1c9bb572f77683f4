import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config';

describe('loadConfig', () => {
  it('gives the documented defaults for an empty environment', () => {
    expect(loadConfig({})).toMatchObject({
      PORT: 8001,
      TEMPORAL_ADDRESS: '127.0.0.1:7233',
      TEMPORAL_TASK_QUEUE: 'decisions',
      REDIS_URL: 'redis://127.0.0.1:6379',
      MAX_QUERY_CHARS: 4000,
    });
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ PORT: '' }).PORT).toBe(8001);
  });

  it('names every bad setting at once', () => {
    const load = () =>
      loadConfig({ PORT: 'eighty', REDIS_URL: 'http://x', TEMPORAL_ADDRESS: 'nohostport' });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/PORT[\s\S]*TEMPORAL_ADDRESS[\s\S]*REDIS_URL/);
  });
});

describe('loadConfig for model providers', () => {
  it('defaults to the offline model', () => {
    expect(loadConfig({}).LLM_PROVIDER).toBe('offline');
  });

  it('asks for a model and a key (or a base URL) with LLM_PROVIDER=openai', () => {
    expect(() => loadConfig({ LLM_PROVIDER: 'openai' })).toThrow(
      /LLM_API_KEY: is required[\s\S]*LLM_MODEL: is required/,
    );
    expect(
      loadConfig({
        LLM_PROVIDER: 'openai',
        LLM_MODEL: 'm',
        LLM_BASE_URL: 'http://127.0.0.1:11434/v1',
      }),
    ).toMatchObject({
      LLM_MODEL: 'm',
    });
  });

  it('rejects an unknown provider', () => {
    expect(() => loadConfig({ LLM_PROVIDER: 'magic' })).toThrow(/LLM_PROVIDER/);
  });
});

describe('loadConfig for deployment', () => {
  it('reads a secret from NAME_FILE', () => {
    const dir = mkdtempSync(join(tmpdir(), 'config-'));
    const file = join(dir, 'api-keys');
    writeFileSync(file, 'file-key-0123=decisions:admin\n');
    expect(loadConfig({ API_KEYS_FILE: file }).API_KEYS).toBe('file-key-0123=decisions:admin');
    expect(() => loadConfig({ LLM_API_KEY_FILE: join(dir, 'missing') })).toThrow(
      /LLM_API_KEY_FILE: cannot read/,
    );
  });

  it('exposes the worker concurrency knobs with defaults', () => {
    expect(loadConfig({})).toMatchObject({
      WORKER_MAX_ACTIVITIES: 100,
      WORKER_MAX_WORKFLOW_TASKS: 40,
      WORKER_MAX_CACHED_WORKFLOWS: 1000,
      WORKER_HTTP_PORT: 8002,
    });
    expect(loadConfig({ WORKER_HTTP_PORT: 'off' }).WORKER_HTTP_PORT).toBeNull();
    expect(() => loadConfig({ WORKER_MAX_WORKFLOW_TASKS: '1' })).toThrow(
      /WORKER_MAX_WORKFLOW_TASKS/,
    );
  });
});
