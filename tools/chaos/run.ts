import { PHASE_NAMES } from '../../src/domain/phases';
import { findOrBuildTemporalCli } from '../temporal/cli';
import { writeReport, table } from './report';
import {
  apiFuzzed,
  keyRotation,
  dnsStalls,
  webhookReceivers,
  modelFaults,
  permanentFaults,
  redisTroubles,
  streamFlood,
  temporalPaused,
  temporalRestarted,
  workerKilledAfterAnswer,
  workerKilledInPhases,
  type Figures,
} from './scenarios';
import { startStack } from './stack';

// `npm run chaos` (every scenario at full size; writes docs/RELIABILITY.md) or
// `npm run chaos -- --quick` (smaller; prints only); `--only <name>[,<name>]` runs the named
// scenarios (the names below) and prints only.
async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const onlyAt = process.argv.indexOf('--only');
  const only = onlyAt === -1 ? null : new Set((process.argv[onlyAt + 1] ?? '').split(','));
  const stack = await startStack({ temporalCli: await findOrBuildTemporalCli(), workers: 2 });
  // Interrupted, it still stops what it started: the processes would outlive it otherwise.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void stack.stop().finally(() => process.exit(130)));
  }
  const results: Figures[] = [];
  const step = async (name: string, run: () => Promise<Figures>) => {
    if (only && !only.has(name)) return;
    const figures = await run();
    results.push(figures);
    process.stdout.write(
      `${figures.ok ? 'pass' : 'FAIL'}  ${figures.scenario} (${figures.seconds} s)\n`,
    );
  };
  try {
    await step('api-fuzz', () => apiFuzzed(stack, quick ? 1000 : 10_000));
    await step('permanent-faults', () => permanentFaults(stack));
    await step('model-faults', () => modelFaults(stack, quick ? 4 : 20));
    await step('temporal-restarted', () => temporalRestarted(stack, quick ? 2 : 5));
    await step('temporal-paused', () =>
      temporalPaused(
        stack,
        quick
          ? { reads: 200, creates: 10, streams: 5, pauseMs: 10_000 }
          : { reads: 2000, creates: 50, streams: 20, pauseMs: 30_000 },
      ),
    );
    await step('redis-troubles', () => redisTroubles(stack, quick ? 2 : 5));
    await step('worker-killed-in-phases', () =>
      workerKilledInPhases(stack, quick ? ['defineScope'] : PHASE_NAMES),
    );
    await step('worker-killed-after-answer', () =>
      workerKilledAfterAnswer(stack, quick ? ['establishGoals'] : PHASE_NAMES),
    );
    await step('stream-flood', () => streamFlood(stack, quick ? 200 : 1000));
    await step('key-rotation', () => keyRotation(stack, quick ? 2 : 5));
    await step('dns-stall', () => dnsStalls(stack, quick ? 10 : 50));
    await step('webhook-receivers', () => webhookReceivers(stack, quick ? 90 : 1000));
  } finally {
    await stack.stop();
  }
  process.stdout.write(`\n${table(results)}\n`);
  if (!quick && !only) process.stdout.write(`\nWrote ${writeReport(results, quick)}\n`);
  if (results.some((r) => !r.ok)) process.exitCode = 1;
}

main().catch((err: unknown) => {
  process.stderr.write(
    `chaos: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exitCode = 1;
});
