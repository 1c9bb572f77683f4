import { defineConfig } from 'vitest/config';

// The workflow bundle: built once, starts nothing.
const BUNDLE = 'test/support/setup/workflow-bundle.ts';
// Redis and a Temporal dev server, shared by the tiers that need them (test/support/setup/).
const SERVICES = 'test/support/setup/services.ts';

/**
 * Three tiers, each a vitest project (`vitest run --project <name>`); `npm test` runs them all.
 * - unit: no server of any kind (no Temporal, Redis, PostgreSQL or browser).
 * - integration: the workflow, the projection and the API on a Temporal dev server and Redis.
 * - system: the real processes (api, worker, npm start, npm run cluster), chaos, the Web UI.
 */
export default defineConfig({
  test: {
    // Workflow bundling and real servers make the first test of a file slow on two cores.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          globalSetup: [BUNDLE],
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: [
            'test/workflow/**/*.test.ts',
            'test/projection/**/*.test.ts',
            'test/redis/**/*.test.ts',
            'test/api/**/*.test.ts',
          ],
          globalSetup: [BUNDLE, SERVICES],
        },
      },
      {
        extends: true,
        test: {
          name: 'system',
          include: [
            'test/e2e/**/*.test.ts',
            'test/chaos/**/*.test.ts',
            'test/cluster/**/*.test.ts',
            'test/browser/**/*.test.ts',
          ],
          globalSetup: [BUNDLE, SERVICES],
        },
      },
    ],
  },
});
