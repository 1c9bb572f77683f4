import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

/** Temporal's OpenTelemetry workflow interceptors; the worker feeds them a sink. */
export const TRACING_WORKFLOW_MODULE =
  require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors');

/**
 * What the workflow bundle is made from: the workflows, and the modules loaded once per worker
 * rather than once per workflow. A decision's workflow reads the phases' declarations (names,
 * order, the fields each reads, retries), whose modules also build each phase's zod schemas: in
 * a fresh module scope for every workflow, that was about a tenth of the workflow thread's time.
 * They hold no state of a workflow's, and the SDK freezes what they export.
 */
export function workflowBundleOptions() {
  // Folders, which the bundler resolves as it does imports: compiled (dist/) or not (src/).
  return {
    workflowsPath: resolve(__dirname, '../workflows'),
    preloadModules: ['zod', resolve(__dirname, '../phases')],
  };
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
