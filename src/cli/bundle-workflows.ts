import { bundleWorkflows, tracedBundlePath } from '../temporal/workflow-bundle';

// `npm run bundle:workflows -- <output.js>`: the bundles a worker image ships (see
// src/temporal/workflow-bundle.ts).
if (require.main === module) {
  const out = process.argv[2];
  if (!out) {
    process.stderr.write('Usage: npm run bundle:workflows -- <output.js>\n');
    process.exit(2);
  }
  bundleWorkflows(out).then(
    (size) =>
      process.stdout.write(
        `Wrote the workflow bundles to ${out} (${size.plain} bytes) and ${tracedBundlePath(out)} (${size.traced} bytes, with tracing)\n`,
      ),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
