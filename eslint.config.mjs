// @ts-check
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.data/', 'coverage/', 'bin/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      globals: globals.node,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },
  {
    // The layers: entry points (main, cli) on top, the domain at the bottom; no module imports
    // one that imports it back, even through others. The scaffolding in tools/ sits above it all.
    files: ['src/**/*.ts', 'tools/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/resolver-next': [createTypeScriptImportResolver()],
    },
    rules: {
      'import-x/no-cycle': 'error',
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: [
            {
              target: './src',
              from: ['./tools', './test'],
              message:
                'Production code never depends on the scaffolding (tools/) or the tests: they import src/, not the other way.',
            },
            {
              target: ['./src/domain', './src/phases'],
              from: './src',
              except: ['./domain', './phases'],
              message:
                'The domain and the phase declarations are the bottom layer: they import nothing else of the project.',
            },
            {
              target: ['./src/llm', './src/knowledge'],
              from: './src',
              except: ['./domain', './phases', './llm', './knowledge'],
              message:
                'Models and the knowledge base know only the domain and the phases: whoever calls them passes what they need.',
            },
            {
              target: './src/!(main|cli)/**',
              from: ['./src/main', './src/cli'],
              message: 'Entry points (src/main, src/cli) compose the layers; nothing imports them.',
            },
            {
              target: './src/!(main|cli|api)/**',
              from: './src/api',
              message: 'The HTTP API is one entry layer: shared code lives below it.',
            },
          ],
        },
      ],
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: no Node built-ins, no I/O modules.
    files: ['src/workflows/**/*.ts', 'src/domain/**/*.ts', 'src/phases/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({
            name,
            message: 'Workflow, domain and phase code must be deterministic: no Node built-ins.',
          })),
          patterns: [
            {
              group: ['**/activities', '**/activities/*', 'ioredis', 'hono', '@hono/*', 'pino'],
              allowTypeImports: true,
              message: 'Workflow and domain code may only import types from I/O modules.',
            },
          ],
        },
      ],
    },
  },
  {
    // vitest's asymmetric matchers (expect.any, expect.stringMatching) are typed `any`.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-unsafe-assignment': 'off' },
  },
  { files: ['**/*.mjs', '**/*.cjs'], ...tseslint.configs.disableTypeChecked },
  // The decision page's script, served to browsers as it is: plain JavaScript, no types.
  { files: ['src/api/ui/**/*.js'], ...tseslint.configs.disableTypeChecked },
  {
    files: ['src/api/ui/**/*.js'],
    languageOptions: { globals: globals.browser, sourceType: 'module' },
  },
  // The bench's worker entry (tools/bench/worker.cjs) loads the built dist/ with require().
  { files: ['**/*.cjs'], rules: { '@typescript-eslint/no-require-imports': 'off' } },
  prettier,
);
