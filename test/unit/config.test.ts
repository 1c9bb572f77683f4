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
