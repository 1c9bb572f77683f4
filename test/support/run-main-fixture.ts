import { runMain } from '../../src/main/process';
import { startChildService } from '../../tools/process/child-service';

// A server that prints twenty lines (the last one long), then runs on without answering, or
// exits with code 3 when its first argument says "exit".
const FAKE_SERVER = `
for (let i = 1; i < 20; i++) console.log('fake server line ' + i);
console.log('fake server line 20 ' + 'x'.repeat(1000));
if (process.argv[1] === 'exit') process.exit(3);
setInterval(() => undefined, 60_000);
`;

/**
 * An entry point for test/unit/run-main. By default its shutdown takes STOP_MS and says when it
 * is done; FAIL makes its start-up fail: "never-answers" and "exits-early" start the fake server
 * above, "bug" throws a TypeError as a mistake in the code would.
 */
runMain(async () => {
  const fail = process.env.FAIL;
  if (fail === 'never-answers' || fail === 'exits-early') {
    await startChildService({
      name: 'the fake server',
      command: process.execPath,
      args: ['-e', FAKE_SERVER, fail === 'exits-early' ? 'exit' : 'stay'],
      answers: () => Promise.resolve(false),
      timeoutMs: 2000,
      hint: 'Stop the other fake server.',
    });
  }
  if (fail === 'bug') throw new TypeError("Cannot read properties of undefined (reading 'port')");
  // A server would keep the process alive; this timer stands in for it.
  const alive = setInterval(() => undefined, 60_000);
  process.stdout.write('ready\n');
  return async () => {
    clearInterval(alive);
    await new Promise((resolve) => setTimeout(resolve, Number(process.env.STOP_MS ?? 500)));
    process.stdout.write('stopped cleanly\n');
  };
});
