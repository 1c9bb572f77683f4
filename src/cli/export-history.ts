import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { loadConfig } from '../config';

const usage = 'Usage: npm run export-history -- <decision-id> [--out history.json]';

/** Writes a decision's workflow history as JSON, for the replay tests under test/histories/. */
async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { out: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return;
  }
  const [id] = positionals;
  if (!id || positionals.length > 1) throw new Error(usage);
  const config = loadConfig();
  const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  try {
    const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
    const history = await client.workflow.getHandle(id).fetchHistory();
    const json = `${historyToJSON(history)}\n`;
    if (values.out) writeFileSync(values.out, json);
    else process.stdout.write(json);
  } finally {
    await connection.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
