import { PHASE_NAMES } from '../../src/domain/phases';
import { findOrBuildTemporalCli } from '../temporal/cli';
import { writeReport, table } from './report';
import {
  apiFuzzed,
  modelFaults,
  permanentFaults,
  redisTroubles,
  temporalRestarted,
  workerKilledAfterAnswer,
  workerKilledInPhases,
  type Figures,
} from './scenarios';
import { startStack } from './stack';

// `npm run chaos` (every scenario at full size; writes docs/RELIABILITY.md) or
// `npm run chaos -- --quick` (smaller; prints only).
async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const stack = await startStack({ temporalCli: await findOrBuildTemporalCli(), workers: 2 });
  // Interrupted, it still stops what it started: the processes would outlive it otherwise.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void stack.stop().finally(() => process.exit(130)));
  }
  const results: Figures[] = [];
  const step = async (run: () => Promise<Figures>) => {
    const figures = await run();
    results.push(figures);
    process.stdout.write(
      `${figures.ok ? 'pass' : 'FAIL'}  ${figures.scenario} (${figures.seconds} s)\n`,
    );
  };
  try {
    await step(() => apiFuzzed(stack, quick ? 1000 : 10_000));
    await step(() => permanentFaults(stack));
    await step(() => modelFaults(stack, quick ? 4 : 20));
    await step(() => temporalRestarted(stack, quick ? 2 : 5));
    await step(() => redisTroubles(stack, quick ? 2 : 5));
    await step(() => workerKilledInPhases(stack, quick ? ['defineScope'] : PHASE_NAMES));
    await step(() => workerKilledAfterAnswer(stack, quick ? ['establishGoals'] : PHASE_NAMES));
  } finally {
    await stack.stop();
  }
  process.stdout.write(`\n${table(results)}\n`);
  if (!quick) process.stdout.write(`\nWrote ${writeReport(results, quick)}\n`);
  if (results.some((r) => !r.ok)) process.exitCode = 1;
}

main().catch((err: unknown) => {
  process.stderr.write(
    `chaos: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exitCode = 1;
});
