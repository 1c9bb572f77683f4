// The floor's worker: the bare workflow of tools/bench/bare-workflow.ts (ten no-op activities)
// on a worker made with the decisions' own options (workerOptions of the built worker, from the
// same settings), so that the floor and the decisions differ only in what their workflows do.
//   FLOOR_BUNDLE_PATH=<bundle.js> node tools/bench/floor-worker.cjs
// Plain JavaScript, so that it runs on node as the production worker does.
const { readFileSync } = require('node:fs');
const { Client, Connection } = require('@temporalio/client');
const { NativeConnection, Worker } = require('@temporalio/worker');
const { workerOptions } = require('../../dist/main/start-worker.js');
const { loadWorkerConfig } = require('../../dist/config/index.js');
const { createLogger } = require('../../dist/logger.js');
const { installTemporalRuntime } = require('../../dist/observability/temporal-runtime.js');
const { applyPromotionPolicy } = require('../../dist/temporal/versioning.js');

async function main() {
  const config = loadWorkerConfig();
  installTemporalRuntime(createLogger('warn', 'floor-worker', 'json'), null);
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const version = { deploymentName: 'bench-floor', buildId: 'floor' };
  const worker = await Worker.create({
    ...workerOptions(config, {
      connection,
      workflowCode: readFileSync(process.env.FLOOR_BUNDLE_PATH, 'utf8'),
      version,
      plugins: [],
    }),
    activities: { noop: async () => undefined },
  });
  const stop = () => worker.shutdown();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const running = worker.run();
  // Versioned as the decisions' worker is: its version made current, as that worker's is.
  if (config.WORKER_VERSIONING === 'on') {
    const client = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
    await applyPromotionPolicy(new Client({ connection: client }).workflowService, {
      namespace: config.TEMPORAL_NAMESPACE,
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      version,
      policy: 'always',
    });
    await client.close();
  }
  process.stdout.write('Floor worker polling\n');
  await running;
  await connection.close();
}

main().catch((err) => {
  process.stderr.write(`floor worker: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
