import { globSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(__dirname, '../..');

describe('the test tiers (vitest.config.mts)', () => {
  it('run every test file, each in one tier', async () => {
    const { default: config } = await import('../../vitest.config.mjs');
    const tiers = (config.test?.projects ?? []).map((project) => {
      const { name, include = [] } = (project as { test: { name: string; include?: string[] } })
        .test;
      return { name, files: new Set(include.flatMap((glob) => globSync(glob, { cwd: root }))) };
    });
    expect(tiers.map((t) => t.name)).toEqual(['unit', 'integration', 'system']);
    const files = globSync('test/**/*.test.ts', { cwd: root });
    expect(files).toContain('test/unit/tiers.test.ts');
    for (const file of files) {
      const tiersOf = tiers.filter((t) => t.files.has(file)).map((t) => t.name);
      expect(tiersOf, file).toHaveLength(1);
    }
  });
});
