import { runMain } from '../../src/main/process';

// An entry point whose shutdown takes STOP_MS and says when it is done, for test/unit/run-main.
runMain(() => {
  // A server would keep the process alive; this timer stands in for it.
  const alive = setInterval(() => undefined, 60_000);
  process.stdout.write('ready\n');
  return Promise.resolve(async () => {
    clearInterval(alive);
    await new Promise((resolve) => setTimeout(resolve, Number(process.env.STOP_MS ?? 500)));
    process.stdout.write('stopped cleanly\n');
  });
});
