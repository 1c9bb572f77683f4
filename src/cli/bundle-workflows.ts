import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

/** Temporal's OpenTelemetry workflow interceptors; the worker feeds them a sink, or a no-op one. */
export const TRACING_WORKFLOW_MODULE =
  require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors');

/**
 * Bundles the workflow code once, for workers started with WORKFLOW_BUNDLE_PATH. The tracing
 * interceptors are always in: whether a worker traces is its configuration, not its image's.
 */
export async function bundleWorkflows(out: string): Promise<number> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: require.resolve('../workflows'),
    workflowInterceptorModules: [TRACING_WORKFLOW_MODULE],
  });
  mkdirSync(dirname(resolve(out)), { recursive: true });
  writeFileSync(out, code);
  return code.length;
}

if (require.main === module) {
  const out = process.argv[2];
  if (!out) {
    process.stderr.write('Usage: npm run bundle:workflows -- <output.js>\n');
    process.exit(2);
  }
  bundleWorkflows(out).then(
    (size) => process.stdout.write(`Wrote the workflow bundle to ${out} (${size} bytes)\n`),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
