import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { workflowBundleOptions } from '../../src/temporal/workflow-bundle';

const src = resolve(__dirname, '../../src');

describe('the workflow bundle', () => {
  it('preloads every module of src/domain, so that workflows share them and what they import', () => {
    const { workflowsPath, preloadModules } = workflowBundleOptions(
      join(src, 'workflows/index.ts'),
    );
    expect(workflowsPath).toBe(join(src, 'workflows/index.ts'));
    const domain = readdirSync(join(src, 'domain')).filter((f) => f.endsWith('.ts'));
    expect(domain.length).toBeGreaterThan(5);
    expect(preloadModules).toEqual(domain.sort().map((f) => join(src, 'domain', f)));
  });

  // A module imported from elsewhere would be loaded again by every workflow, and kept while it
  // is cached (workflowBundleOptions).
  it('holds workflows that import at run time only the SDK, each other and src/domain', () => {
    const dir = join(src, 'workflows');
    const imports = readdirSync(dir).flatMap((file) =>
      [
        ...readFileSync(join(dir, file), 'utf8').matchAll(
          /^import (?!type )[^;]*? from '([^']+)';/gm,
        ),
      ].map((m) => `${file}: ${m[1]}`),
    );
    expect(imports.length).toBeGreaterThan(5);
    for (const line of imports) {
      expect(line).toMatch(
        /: (@temporalio\/(workflow|common)(\/.*)?|\.\/[\w-]+|\.\.\/domain\/[\w-]+)$/,
      );
    }
  });
});
