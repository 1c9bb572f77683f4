import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import type { Logger } from 'pino';
import { isPhaseName } from '../domain/phases';

const LEVELS: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/**
 * Installs the Temporal runtime once per process: the SDK's own logs (workflow and activity logs
 * carry workflowId, runId and activity type) go to the process's pino logger, and the SDK's
 * metrics to a Prometheus endpoint on `sdkMetricsAddress` when given. Shutdown is ours.
 */
export function installTemporalRuntime(logger: Logger, sdkMetricsAddress: string | null): void {
  const level = (
    logger.level.toUpperCase() in LEVELS ? logger.level.toUpperCase() : 'INFO'
  ) as LogLevel;
  Runtime.install({
    shutdownSignals: [],
    logger: new DefaultLogger(level, (entry) => {
      const { sdkComponent, ...meta } = entry.meta ?? {};
      logger[LEVELS[entry.level]](
        { sdk: sdkComponent ?? true, ...decisionFields(meta), ...meta },
        entry.message,
      );
    }),
    telemetryOptions: sdkMetricsAddress
      ? { metrics: { prometheus: { bindAddress: sdkMetricsAddress } } }
      : undefined,
  });
}

/** The fields every log line about a decision carries, under the names the API's lines use too. */
function decisionFields(meta: Record<string, unknown>): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  if (typeof meta.workflowId === 'string') fields.process_id = meta.workflowId;
  const runId = meta.workflowRunId ?? meta.runId;
  if (typeof runId === 'string') fields.run_id = runId;
  if (typeof meta.activityType === 'string' && isPhaseName(meta.activityType)) {
    fields.phase = meta.activityType;
  }
  return fields;
}
