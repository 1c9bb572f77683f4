// The bench's worker: the built worker (dist/, as the images run it) with an offline model that
// answers each call after the delay given as the argument, in milliseconds, standing in for a
// slow model. The delay is the bench's own: the worker has no such setting.
// Plain JavaScript, so that it runs on node as the production entry does.
const { main } = require('../../dist/main/worker.js');
const { createOfflineModel } = require('../../dist/llm/offline-model.js');

const delayMs = Number(process.argv[2] ?? 0);
if (!Number.isInteger(delayMs) || delayMs < 0) {
  process.stderr.write(
    `usage: node tools/bench/worker.cjs <delay in ms>, got ${process.argv[2]}\n`,
  );
  process.exit(2);
}
main({ model: createOfflineModel({ delayMs }) });
