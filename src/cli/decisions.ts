import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { Client, Connection, type HistoryAndWorkflowId } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadDecisionsCliConfig, type DecisionsCliConfig } from '../config';
import { DECISION_STATUSES, type DecisionRecord } from '../domain/decision';
import { parseDuration } from '../domain/duration';
import { isPhaseName, PHASE_NAMES, type PhaseName } from '../domain/phases';
import { DecisionPhaseAttribute, DecisionStatusAttribute } from '../domain/workflow-api';
import { lastPhaseFailure, type PhaseFailure } from '../operations/history';
import { decisionsQuery, reconcile, type ReconcileReport } from '../operations/reconcile';
import { readHistoryFile, replayHistories, type ReplayOutcome } from '../operations/replay';
import { retryDecision, type RetryResult } from '../operations/retry';
import { DecisionReads } from '../projection/decision-reads';
import { createProjection } from '../projection/redis-client';
import { readDecisionFromTemporal } from '../temporal/read-decision';
import { workflowBundleOptions } from '../temporal/workflow-bundle';
import {
  deploymentNameFor,
  deploymentReport,
  promoteBuild,
  type DeploymentReport,
  type PromoteResult,
} from '../temporal/versioning';
import { terminalSafe, terminalText } from './terminal-text';

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

async function withClient<T>(
  fn: (client: Client, config: DecisionsCliConfig) => Promise<T>,
): Promise<T> {
  const config = loadDecisionsCliConfig();
  const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  try {
    return await fn(new Client({ connection, namespace: config.TEMPORAL_NAMESPACE }), config);
  } finally {
    await connection.close();
  }
}

/**
 * Each decision's latest run id (a retry's reset starts a new one), asked of Temporal once per
 * decision. An open run needs no asking: a workflow id has at most one.
 */
function latestRuns(client: Client): (id: string) => Promise<string> {
  const known = new Map<string, Promise<string>>();
  return (id) => {
    let runId = known.get(id);
    if (!runId) {
      runId = client.workflow
        .getHandle(id)
        .describe()
        .then((d) => d.runId);
      known.set(id, runId);
    }
    return runId;
  };
}

const print = (text: string) => process.stdout.write(`${text}\n`);
const pad = (text: string, width: number) => text.padEnd(width);
const seconds = (ms: number | null) => (ms === null ? '' : `${(ms / 1000).toFixed(1)} s`);

/**
 * What a command prints about its data. Queries, context, model output and error messages come
 * from Temporal as they were written, so terminal controls are stripped here, where the data
 * enters the output: text and --json alike print only what is left.
 */
export function render<T>(data: T, json: boolean | undefined, format: (data: T) => string): string {
  const safe = terminalSafe(data);
  return json ? JSON.stringify(safe, null, 2) : format(safe);
}

const emit = <T>(data: T, json: boolean | undefined, format: (data: T) => string) =>
  print(render(data, json, format));

export interface ListRow {
  process_id: string;
  status: string;
  phase: string | null;
  started_at: string;
  query: string;
}

/** `list` as text: one row per decision, newest first as Temporal returned them. */
export function formatList(rows: ListRow[]): string {
  if (rows.length === 0) return 'No decisions match.';
  // One line per decision: a query's own line breaks must not start what looks like a row.
  return rows
    .map(
      (r) =>
        `${r.process_id}  ${pad(r.status, 16)}${pad(r.phase ?? '', 26)}${r.started_at}  ${r.query.replace(/\s+/g, ' ')}`,
    )
    .join('\n');
}

/** What `show` prints: the record, and the failure its history explains when it failed. */
export type Shown = DecisionRecord & { failure: PhaseFailure | null };

/** `show` as text: status, phases with timings, and a failure in plain words. */
export function formatShow(shown: Shown): string {
  const { failure, ...record } = shown;
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

const formatRetry = (r: RetryResult) =>
  `Retrying ${r.process_id} from ${r.from_phase} (reset to event ${r.reset_event_id}); new run ${r.new_run_id}` +
  (r.build_id ? ` on build ${r.build_id}` : '');

const formatReplay = (outcomes: ReplayOutcome[]) =>
  outcomes.length === 0
    ? 'Nothing to replay.'
    : outcomes
        .map(
          (o) =>
            `${o.ok ? 'ok    ' : 'FAILED'}  ${o.workflowId}${o.error ? `\n        ${o.error}` : ''}`,
        )
        .join('\n');

function formatReconcile(report: ReconcileReport): string {
  return [
    `Checked ${report.checked}: restored ${report.restored.length}, updated ${report.updated.length}, unchanged ${report.unchanged}, failed ${report.failed.length}`,
    ...report.restored.map((id) => `  restored ${id}`),
    ...report.updated.map((id) => `  updated  ${id}`),
    ...report.failed.map((f) => `  FAILED   ${f.process_id}: ${f.error}`),
  ].join('\n');
}

/** `deploy status` as text: the routing, then one row per version, oldest first. */
function formatDeployStatus(report: DeploymentReport): string {
  const ramping = report.ramping
    ? `${report.ramping.build_id} at ${report.ramping.percentage}%`
    : 'none';
  const lines = [
    `Deployment ${report.deployment} (task queue ${report.task_queue})`,
    `  current: ${report.current ?? 'none (new decisions wait for a current version)'}`,
    `  ramping: ${ramping}`,
    '',
    `  ${pad('build id', 28)}${pad('status', 10)}${pad('created', 26)}${pad('running', 9)}workers`,
  ];
  for (const v of report.versions) {
    const workers =
      v.pollers.length === 0 ? 'none' : `${v.pollers.length} (${v.pollers.join(', ')})`;
    lines.push(
      `  ${pad(v.build_id, 28)}${pad(v.status, 10)}${pad(v.created_at ?? '', 26)}${pad(String(v.running ?? '?'), 9)}${workers}`,
    );
  }
  return lines.join('\n');
}

function formatPromote(r: PromoteResult): string {
  if (!r.changed) return `${r.current} is already the current build of ${r.deployment}`;
  const promoted = `Promoted ${r.current} in ${r.deployment}: new decisions start on it.`;
  if (!r.previous) return promoted;
  const running =
    r.previous_running === null ? 'its running decisions' : `${r.previous_running} running`;
  return `${promoted}\n${r.previous} drains (${running} stay on it): stop its workers once \`decisions deploy status\` shows it drained.`;
}

/** The `decisions` command: operators' jobs the Temporal Web UI does not do well. */
export function program(): Command {
  const cli = new Command('decisions')
    .description('Inspect, retry, replay and reconcile decisions (reads Temporal, not Redis).')
    .showHelpAfterError();

  cli
    .command('list')
    .description(
      'List decisions from Temporal visibility, newest first: one row each, its latest run',
    )
    .addOption(new Option('--status <status>', 'only this status').choices(DECISION_STATUSES))
    .option(
      '--phase <phase>',
      'only decisions that stopped in this phase (failed, cancelled, awaiting review, completed)',
      phase,
    )
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
          const rows: ListRow[] = [];
          const latest = latestRuns(client);
          for await (const w of client.workflow.list({ query })) {
            // Visibility lists every run: a retried decision's old run, failed, beside its new
            // one. A decision is its latest run, which alone decides whether it matches.
            if (w.status.name !== 'RUNNING' && (await latest(w.workflowId)) !== w.runId) continue;
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
          emit(rows, opts.json, formatList);
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
        emit({ ...record, failure }, opts.json, formatShow);
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
    .option(
      '--on-current-build',
      "run it on the deployment's current build, not the one its history was written by " +
        '(needed when that build has no workers left; check with `decisions replay <id>` first)',
    )
    .option('--json', 'print JSON')
    .action(
      async (
        id: string,
        opts: { fromPhase?: PhaseName; onCurrentBuild?: boolean; json?: boolean },
      ) => {
        await withClient(async (client, config) => {
          const { redis, projection } = createProjection(config);
          try {
            const reads = new DecisionReads({
              client,
              projection,
              onProjectionError: (err) =>
                process.stderr.write(
                  `Could not tell the projection about the new run (${String(err)}); reads show it once the run first writes.\n`,
                ),
            });
            const result = await retryDecision(client, id, {
              fromPhase: opts.fromPhase,
              onCurrentBuild: opts.onCurrentBuild,
              reads,
              liveWindowMs: config.WORKER_GONE_AFTER_SECONDS * 1000,
            });
            emit(result, opts.json, formatRetry);
          } finally {
            redis.disconnect();
          }
        });
      },
    );

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
          histories.push(...(opts.file ?? []).map(readHistoryFile));
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
          const { workflowsPath, preloadModules } = workflowBundleOptions();
          return replayHistories(histories, { workflowsPath, bundlerOptions: { preloadModules } });
        });
        emit(outcomes, opts.json, formatReplay);
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
        const { redis, projection } = createProjection(config);
        try {
          const report = await reconcile({
            client,
            reads: new DecisionReads({ client, projection }),
            since: opts.since ?? null,
          });
          emit(report, opts.json, formatReconcile);
          if (report.failed.length > 0) process.exitCode = 1;
        } finally {
          redis.disconnect();
        }
      });
    });

  const deploy = cli
    .command('deploy')
    .description(
      'Worker Deployment Versioning: which build takes new decisions, and which drain ' +
        '(the deployment is WORKER_DEPLOYMENT_NAME, else named after TEMPORAL_TASK_QUEUE)',
    );

  deploy
    .command('status')
    .description(
      'The current and ramping build, and per version its status, running decisions and workers',
    )
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      await withClient(async (client, config) => {
        const name = deploymentNameFor(config);
        const report = await deploymentReport(
          client,
          config.TEMPORAL_TASK_QUEUE,
          name,
          config.WORKER_GONE_AFTER_SECONDS * 1000,
        );
        emit(report, opts.json, formatDeployStatus);
      });
    });

  deploy
    .command('promote')
    .description(
      'Make a build current: new decisions start on it, running ones stay on the build they ' +
        'started on. Also the rollback: promote the previous build again.',
    )
    .option('--build-id <id>', 'the build to promote; by default the newest registered one')
    .option('--json', 'print JSON')
    .action(async (opts: { buildId?: string; json?: boolean }) => {
      await withClient(async (client, config) => {
        const result = await promoteBuild(client, {
          taskQueue: config.TEMPORAL_TASK_QUEUE,
          deploymentName: deploymentNameFor(config),
          buildId: opts.buildId,
          identity: `decisions deploy promote@${hostname()}`,
          liveWindowMs: config.WORKER_GONE_AFTER_SECONDS * 1000,
        });
        emit(result, opts.json, formatPromote);
      });
    });

  return cli;
}

/** Runs the command; the package's `decisions` bin calls this too. */
export function main(argv: string[]): Promise<void> {
  return program()
    .parseAsync(argv)
    .then(
      () => undefined,
      (err: unknown) => {
        // Errors can quote a decision's id or what the server said about it.
        const message = err instanceof Error ? err.message : String(err);
        process.stderr.write(`decisions: ${terminalText(message, { multiline: true })}\n`);
        process.exitCode = 1;
      },
    );
}

if (require.main === module) void main(process.argv);
