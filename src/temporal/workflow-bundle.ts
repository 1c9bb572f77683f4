import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

/** Temporal's OpenTelemetry workflow interceptors; the worker feeds them a sink. */
export const TRACING_WORKFLOW_MODULE =
  require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors');

/**
 * What the workflow code is bundled from: `workflowsPath` (src/workflows, or its build in dist),
 * and the modules every workflow on a worker shares. Without them each workflow would load its own
 * copy of every module it imports when it starts, and keep it while it is cached: zod, the ten
 * phase declarations and their schemas came to about 1 MB of heap and a few milliseconds of CPU
 * per decision. Loaded once, before any workflow, they cost that once. The SDK freezes them, so
 * a workflow cannot leave state in them for another: the shared modules are src/domain's, pure by
 * design (docs/ARCHITECTURE.md), with what they import.
 */
export function workflowBundleOptions(workflowsPath = require.resolve('../workflows')): {
  workflowsPath: string;
  preloadModules: string[];
} {
  const domain = resolve(dirname(workflowsPath), '../domain');
  const preloadModules = readdirSync(domain)
    .filter((name) => /\.(ts|js)$/.test(name) && !name.endsWith('.d.ts'))
    .sort()
    .map((name) => join(domain, name));
  return { workflowsPath, preloadModules };
}

/** Where the traced bundle sits beside a bundle: `workflow-bundle.js` → `workflow-bundle.traced.js`. */
export function tracedBundlePath(bundlePath: string): string {
  return bundlePath.replace(/(\.js)?$/, '.traced.js');
}

/**
 * Bundles the workflow code once, for workers started with WORKFLOW_BUNDLE_PATH: `out` without
 * tracing, and its traced sibling with Temporal's OpenTelemetry interceptors, which a worker with
 * OTEL_EXPORTER_OTLP_ENDPOINT loads instead. Whether a worker traces stays its configuration, not
 * its image's, and a worker that does not trace pays nothing for it: the interceptors would load
 * into every workflow's context and wrap each of its calls.
 */
export async function bundleWorkflows(out: string): Promise<{ plain: number; traced: number }> {
  const options = workflowBundleOptions();
  const [plain, traced] = await Promise.all([
    bundleWorkflowCode(options),
    bundleWorkflowCode({ ...options, workflowInterceptorModules: [TRACING_WORKFLOW_MODULE] }),
  ]);
  mkdirSync(dirname(resolve(out)), { recursive: true });
  writeFileSync(out, plain.code);
  writeFileSync(tracedBundlePath(out), traced.code);
  return { plain: plain.code.length, traced: traced.code.length };
}
