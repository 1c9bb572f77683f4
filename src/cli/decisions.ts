import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { Client, Connection, type HistoryAndWorkflowId } from '@temporalio/client';
import { historyFromJSON, historyToJSON } from '@temporalio/common/lib/proto-utils';
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig, type Config } from '../config';
import { DECISION_STATUSES, type DecisionRecord } from '../domain/decision';
import { parseDuration } from '../domain/duration';
import { isPhaseName, PHASE_NAMES, type PhaseName } from '../domain/phases';
import { DecisionPhaseAttribute, DecisionStatusAttribute } from '../domain/workflow-api';
import { lastPhaseFailure } from '../operations/history';
import { decisionsQuery, reconcile } from '../operations/reconcile';
import { replayHistories } from '../operations/replay';
import { retryDecision } from '../operations/retry';
import { createRedis } from '../projection/redis-client';
import { readDecisionFromTemporal } from '../temporal/read-decision';
import { DecisionProjection } from '../projection/redis-projection';

/** A failure the operator can act on: printed as one line, exit code 1. */
class CliError extends Error {}

const since = (value: string): Date => {
  const ms = parseDuration(value);
  if (ms === null) throw new InvalidArgumentError('use a duration such as 30m, 6h or 7d');
  return new Date(Date.now() - ms);
};
const phase = (value: string): PhaseName => {
  if (!isPhaseName(value)) throw new InvalidArgumentError(`one of ${PHASE_NAMES.join(', ')}`);
  return value;
};

async function withClient<T>(fn: (client: Client, config: Config) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  try {
    return await fn(new Client({ connection, namespace: config.TEMPORAL_NAMESPACE }), config);
  } finally {
    await connection.close();
  }
}

const print = (text: string) => process.stdout.write(`${text}\n`);
const json = (value: unknown) => print(JSON.stringify(value, null, 2));
const pad = (text: string, width: number) => text.padEnd(width);
const seconds = (ms: number | null) => (ms === null ? '' : `${(ms / 1000).toFixed(1)} s`);

function describe(record: DecisionRecord, failure: ReturnType<typeof lastPhaseFailure>): string {
  const lines = [
    `${record.process_id}  ${record.status.toUpperCase()}`,
    `  ${record.query}`,
    `  created ${record.created_at}${record.completed_at ? `, finished ${record.completed_at}` : ''}`,
    '',
    `  ${pad('phase', 26)}${pad('status', 11)}${pad('time', 9)}${pad('attempts', 10)}model`,
  ];
  for (const p of record.phases) {
    lines.push(
      `  ${pad(p.name, 26)}${pad(p.status, 11)}${pad(seconds(p.duration_ms), 9)}${pad(String(p.attempts ?? ''), 10)}${p.reused_from ? `reused from ${p.reused_from}` : (p.model ?? '')}`,
    );
  }
  if (record.status === 'failed') {
    const phaseName = failure?.phase ?? record.error?.phase ?? 'the workflow';
    const type = failure?.type ?? record.error?.type ?? 'Error';
    const message = failure?.message ?? record.error?.message ?? '';
    const attempts = failure
      ? ` after ${failure.attempts} attempt${failure.attempts === 1 ? '' : 's'}`
      : '';
    lines.push('', `  Failed in ${phaseName}${attempts}: ${type}`, `  ${message}`);
    lines.push('', `  Retry from there: decisions retry ${record.process_id}`);
  }
  return lines.join('\n');
}

/** The `decisions` command: operators' jobs the Temporal Web UI does not do well. */
export function program(): Command {
  const cli = new Command('decisions')
    .description('Inspect, retry, replay and reconcile decisions (reads Temporal, not Redis).')
    .showHelpAfterError();

  cli
    .command('list')
    .description('List decisions from Temporal visibility, newest first')
    .addOption(new Option('--status <status>', 'only this status').choices(DECISION_STATUSES))
    .option('--phase <phase>', 'only decisions whose current phase is this', phase)
    .option('--since <duration>', 'only decisions started within this long, e.g. 1h', since)
    .option('--limit <n>', 'at most this many', (v) => Number(v), 50)
    .option('--json', 'print JSON')
    .action(
      async (opts: {
        status?: string;
        phase?: PhaseName;
        since?: Date;
        limit: number;
        json?: boolean;
      }) => {
        await withClient(async (client) => {
          const filters = [
            opts.status && `DecisionStatus = "${opts.status}"`,
            opts.phase && `DecisionPhase = "${opts.phase}"`,
          ].filter(Boolean);
          const query = decisionsQuery(opts.since ?? null, filters.join(' AND ') || undefined);
          const rows = [];
          for await (const w of client.workflow.list({ query })) {
            rows.push({
              process_id: w.workflowId,
              status:
                w.typedSearchAttributes.get(DecisionStatusAttribute) ?? w.status.name.toLowerCase(),
              phase: w.typedSearchAttributes.get(DecisionPhaseAttribute) ?? null,
              started_at: w.startTime.toISOString(),
              query: typeof w.memo?.query === 'string' ? w.memo.query : '',
            });
            if (rows.length >= opts.limit) break;
          }
          if (opts.json) return json(rows);
          if (rows.length === 0) return print('No decisions match.');
          for (const r of rows) {
            print(
              `${r.process_id}  ${pad(r.status, 16)}${pad(r.phase ?? '', 26)}${r.started_at}  ${r.query}`,
            );
          }
        });
      },
    );

  cli
    .command('show')
    .description('Status, phases with timings, and a failure in plain words')
    .argument('<id>', 'the decision id (process_id)')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { json?: boolean }) => {
      await withClient(async (client) => {
        const record = await readDecisionFromTemporal(client, id);
        if (!record) throw new CliError(`No decision with id ${id}`);
        const failure =
          record.status === 'failed'
            ? lastPhaseFailure(await client.workflow.getHandle(id).fetchHistory())
            : null;
        if (opts.json) return json({ ...record, failure });
        print(describe(record, failure));
      });
    });

  cli
    .command('retry')
    .description(
      'Retry a failed (or completed) decision from the phase that failed, or from --from-phase: ' +
        'a reset to just before that phase, so earlier phases are not run again',
    )
    .argument('<id>', 'the decision id (process_id)')
    .option('--from-phase <phase>', 'the phase to run again from', phase)
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { fromPhase?: PhaseName; json?: boolean }) => {
      await withClient(async (client) => {
        const result = await retryDecision(client, id, opts.fromPhase);
        if (opts.json) return json(result);
        print(
          `Retrying ${id} from ${result.from_phase} (reset to event ${result.reset_event_id}); new run ${result.new_run_id}`,
        );
      });
    });

  cli
    .command('replay')
    .description(
      'Replay histories against the current workflow code; exits 1 if any hits a determinism error',
    )
    .argument('[ids...]', 'decision ids to replay')
    .option('--failed', 'replay every failed decision (with --since, those started since)')
    .option('--since <duration>', 'with --failed: started within this long', since)
    .option('--file <path...>', 'history JSON files (as export-history writes them)')
    .option('--json', 'print JSON')
    .action(
      async (
        ids: string[],
        opts: { failed?: boolean; since?: Date; file?: string[]; json?: boolean },
      ) => {
        if (ids.length === 0 && !opts.failed && !opts.file) {
          throw new CliError('Name decision ids, --failed, or --file');
        }
        const outcomes = await withClient(async (client) => {
          const histories: HistoryAndWorkflowId[] = [];
          for (const path of opts.file ?? []) {
            histories.push({
              workflowId: basename(path, '.json'),
              history: historyFromJSON(JSON.parse(readFileSync(path, 'utf8'))),
            });
          }
          for (const id of ids) {
            histories.push({
              workflowId: id,
              history: await client.workflow.getHandle(id).fetchHistory(),
            });
          }
          if (opts.failed) {
            const query = decisionsQuery(opts.since ?? null, 'ExecutionStatus = "Failed"');
            for await (const h of client.workflow.list({ query }).intoHistories())
              histories.push(h);
          }
          return replayHistories(histories, { workflowsPath: require.resolve('../workflows') });
        });
        if (opts.json) json(outcomes);
        else if (outcomes.length === 0) print('Nothing to replay.');
        for (const o of opts.json ? [] : outcomes) {
          print(
            `${o.ok ? 'ok    ' : 'FAILED'}  ${o.workflowId}${o.error ? `\n        ${o.error}` : ''}`,
          );
        }
        if (outcomes.some((o) => !o.ok)) process.exitCode = 1;
      },
    );

  cli
    .command('export-history')
    .description("Write a decision's history as JSON, e.g. for test/histories/")
    .argument('<id>', 'the decision id (process_id)')
    .option('-o, --out <file>', 'write to this file instead of standard output')
    .action(async (id: string, opts: { out?: string }) => {
      await withClient(async (client) => {
        const text = `${historyToJSON(await client.workflow.getHandle(id).fetchHistory())}\n`;
        if (opts.out) writeFileSync(opts.out, text);
        else process.stdout.write(text);
      });
    });

  cli
    .command('reconcile')
    .description('Rebuild the Redis projection from Temporal; idempotent; reports what it fixed')
    .option('--since <duration>', 'only decisions started within this long', since)
    .option('--json', 'print JSON')
    .action(async (opts: { since?: Date; json?: boolean }) => {
      await withClient(async (client, config) => {
        const redis = createRedis(config.REDIS_URL);
        try {
          const projection = new DecisionProjection(redis, {
            prefix: config.REDIS_KEY_PREFIX,
            ttlSeconds: config.DECISION_TTL_SECONDS,
          });
          const report = await reconcile({
            client,
            projection,
            readFromTemporal: (id) => readDecisionFromTemporal(client, id),
            since: opts.since ?? null,
          });
          if (opts.json) return json(report);
          print(
            `Checked ${report.checked}: restored ${report.restored.length}, updated ${report.updated.length}, unchanged ${report.unchanged}, failed ${report.failed.length}`,
          );
          for (const id of report.restored) print(`  restored ${id}`);
          for (const id of report.updated) print(`  updated  ${id}`);
          for (const f of report.failed) print(`  FAILED   ${f.process_id}: ${f.error}`);
          if (report.failed.length > 0) process.exitCode = 1;
        } finally {
          redis.disconnect();
        }
      });
    });

  return cli;
}

if (require.main === module) {
  program()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      process.stderr.write(`decisions: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    });
}
