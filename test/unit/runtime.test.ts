import { describe, expect, it } from 'vitest';

describe('runtime', () => {
  it('runs on Node.js 24 or later (the node@24 dependency, first on the npm scripts PATH)', () => {
    expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(24);
  });
});
