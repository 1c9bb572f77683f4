import { loadSettings } from '../../src/config';
import { findOrBuildTemporalCli } from './cli';
import { ensureLocalTemporal } from './local';
import { runMain } from '../../src/main/process';
import { TemporalDevSettingsSchema } from '../settings';

const log = (line: string) => process.stderr.write(`${line}\n`);

// `npm run temporal` starts just the dev server; `--install-only` finds or builds the CLI and exits.
runMain(async () => {
  if (process.argv.includes('--install-only')) {
    const path = await findOrBuildTemporalCli({ log });
    process.stdout.write(`${path}\n`);
    process.exit(0);
  }
  const config = loadSettings(TemporalDevSettingsSchema, process.env);
  // Stopped by this process on Ctrl-C (and killed should it exit abruptly), like npm start's.
  const temporal = await ensureLocalTemporal(config, log, { detached: true });
  if (!temporal.server) process.exit(0);
  log(`Temporal dev server: ${temporal.address}`);
  log(`Temporal Web UI:     ${temporal.uiUrl}`);
  log('Press Ctrl-C to stop.');
  return () => temporal.stop();
});
