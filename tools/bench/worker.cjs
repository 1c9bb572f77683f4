// The bench's worker: the built worker (dist/, as the images run it) with a model of the bench's.
//   node tools/bench/worker.cjs <delay in ms>: an offline model that answers each call after the
//     delay, standing in for a slow model.
//   node tools/bench/worker.cjs --unpublished: the model the settings name, whose output reaches
//     no one while it is written (onOutput is not passed on): a streaming provider still reads
//     its stream, and the live channel publishes nothing; what streaming costs without the channel.
// Plain JavaScript, so that it runs on node as the production entry does.
const { main } = require('../../dist/main/worker.js');
const { createOfflineModel } = require('../../dist/llm/offline-model.js');
const { createModel } = require('../../dist/main/model.js');
const { loadWorkerConfig } = require('../../dist/config/index.js');

if (process.argv[2] === '--unpublished') {
  const model = createModel(loadWorkerConfig());
  main({
    model: {
      name: model.name,
      streams: model.streams,
      generate: ({ onOutput: _, ...request }) => model.generate(request),
    },
  });
} else {
  const delayMs = Number(process.argv[2] ?? 0);
  if (!Number.isInteger(delayMs) || delayMs < 0) {
    process.stderr.write(
      `usage: node tools/bench/worker.cjs <delay in ms> | --unpublished, got ${process.argv[2]}\n`,
    );
    process.exit(2);
  }
  main({ model: createOfflineModel({ delayMs }) });
}
