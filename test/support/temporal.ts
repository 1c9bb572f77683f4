import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { Activities } from '../../src/activities';
import type { DecisionInput, DecisionRecord } from '../../src/domain/decision';
import { DECISION_WORKFLOW_TYPE } from '../../src/domain/workflow-api';
import type { decisionWorkflow } from '../../src/workflows';
import { services, uniqueName } from './context';

export interface TemporalTestClients {
  native: NativeConnection;
  client: Client;
  close(): Promise<void>;
}

export async function connectTemporal(): Promise<TemporalTestClients> {
  const native = await NativeConnection.connect({ address: services.temporalAddress });
  const connection = await Connection.connect({ address: services.temporalAddress });
  return {
    native,
    client: new Client({ connection }),
    async close() {
      await connection.close();
      await native.close();
    },
  };
}

export interface DecisionOutcome {
  workflowId: string;
  record: DecisionRecord | null;
  error: unknown;
}

/** Runs one decision to its end on a worker of its own task queue with the given activities. */
export async function runDecision(
  t: TemporalTestClients,
  activities: Activities,
  query: string,
  input: Partial<DecisionInput> = {},
): Promise<DecisionOutcome> {
  const taskQueue = uniqueName('decision');
  const worker = await Worker.create({
    connection: t.native,
    taskQueue,
    workflowBundle: { codePath: services.workflowBundlePath },
    activities,
  });
  const workflowId = uniqueName('decision');
  return worker.runUntil(async () => {
    const handle = await t.client.workflow.start<typeof decisionWorkflow>(DECISION_WORKFLOW_TYPE, {
      taskQueue,
      workflowId,
      args: [{ ...input, query }],
    });
    return handle.result().then(
      (record) => ({ workflowId, record, error: null }),
      (error: unknown) => ({ workflowId, record: null, error }),
    );
  });
}
