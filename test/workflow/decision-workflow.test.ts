import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { Context } from '@temporalio/activity';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Activities, PhaseActivity } from '../../src/activities';
import type { DecisionRecord, PhaseInput } from '../../src/domain/decision';
import { PHASE_NAMES, type PhaseName } from '../../src/domain/phases';
import { DECISION_WORKFLOW_TYPE, progressQuery } from '../../src/domain/workflow-api';
import type { decisionWorkflow } from '../../src/workflows';
import { services, testProjection, uniqueName, waitFor } from '../support/context';

Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });

type Behaviour = (input: PhaseInput, call: number) => Promise<unknown>;

/** Phase activities that record every call and answer by the given behaviours. */
function mockPhases(behaviours: Partial<Record<PhaseName, Behaviour>> = {}) {
  const calls: { phase: PhaseName; input: PhaseInput }[] = [];
  const phases = {} as Record<PhaseName, PhaseActivity>;
  for (const phase of PHASE_NAMES) {
    phases[phase] = async (input) => {
      calls.push({ phase, input: structuredClone(input) });
      const call = calls.filter((c) => c.phase === phase).length;
      const output = behaviours[phase]
        ? await behaviours[phase](input, call)
        : { phase, seen: Object.keys(input.outputs) };
      return { output, model: 'mock', latency_ms: 1, attempt: Context.current().info.attempt };
    };
  }
  return {
    phases,
    calls,
    count: (phase: PhaseName) => calls.filter((c) => c.phase === phase).length,
  };
}

describe('decisionWorkflow on a real Temporal server', () => {
  let nativeConnection: NativeConnection;
  let connection: Connection;
  let client: Client;
  let store: ReturnType<typeof testProjection>;

  beforeAll(async () => {
    nativeConnection = await NativeConnection.connect({ address: services.temporalAddress });
    connection = await Connection.connect({ address: services.temporalAddress });
    client = new Client({ connection });
    store = testProjection();
  });
  afterAll(async () => {
    await store?.cleanup();
    await connection?.close();
    await nativeConnection?.close();
  });

  /** Runs one decision on a worker of its own task queue with the given phase activities. */
  async function run<T>(
    phases: Record<PhaseName, PhaseActivity>,
    body: (workflowId: string) => Promise<T>,
  ): Promise<T> {
    const taskQueue = uniqueName('wf');
    const activities: Activities = {
      ...phases,
      projectDecision: async (record: DecisionRecord) => {
        await store.projection.write(record);
      },
    };
    const worker = await Worker.create({
      connection: nativeConnection,
      taskQueue,
      workflowBundle: { codePath: services.workflowBundlePath },
      activities,
    });
    const workflowId = uniqueName('decision');
    return worker.runUntil(async () => {
      await client.workflow.start<typeof decisionWorkflow>(DECISION_WORKFLOW_TYPE, {
        taskQueue,
        workflowId,
        args: [{ query: 'Should we move billing to a managed Postgres?' }],
      });
      return body(workflowId);
    });
  }

  it('runs the ten phases in order, passing every earlier output forward', async () => {
    const mock = mockPhases();
    const record = await run(mock.phases, (id) =>
      client.workflow.getHandle<typeof decisionWorkflow>(id).result(),
    );

    expect(mock.calls.map((c) => c.phase)).toEqual(PHASE_NAMES);
    mock.calls.forEach((call, i) => {
      expect(call.input.query).toBe('Should we move billing to a managed Postgres?');
      expect(Object.keys(call.input.outputs)).toEqual(PHASE_NAMES.slice(0, i));
    });
    expect(record.status).toBe('completed');
    expect(record.phases.map((p) => [p.name, p.status, p.attempts])).toEqual(
      PHASE_NAMES.map((name) => [name, 'completed', 1]),
    );
    expect(Object.keys(record.result!.phases)).toEqual(PHASE_NAMES);
    expect(record.result!.decision).toEqual({
      phase: 'compileResult',
      seen: PHASE_NAMES.slice(0, 9),
    });
    expect(record.result!.usage.model_calls).toBe(10);

    const projected = await store.projection.get(record.process_id);
    expect(projected).toEqual(record);
  });

  it('retries a phase that fails once, then completes (two calls, attempts = 2)', async () => {
    const mock = mockPhases({
      defineScope: (_input, call) => {
        if (call === 1) throw new Error('model timed out');
        return Promise.resolve({ scope: 'recovered' });
      },
    });
    const record = await run(mock.phases, (id) =>
      client.workflow.getHandle<typeof decisionWorkflow>(id).result(),
    );

    expect(mock.count('defineScope')).toBe(2);
    expect(record.status).toBe('completed');
    expect(record.phases.find((p) => p.name === 'defineScope')).toMatchObject({
      status: 'completed',
      attempts: 2,
    });
    expect(record.result!.phases.defineScope).toEqual({ scope: 'recovered' });
  });

  it('fails the decision on a permanent error, with the error in the projection', async () => {
    const mock = mockPhases({
      generateAlternatives: () => {
        throw ApplicationFailure.create({
          type: 'ModelAuthenticationError',
          message: 'the model provider rejected the API key',
          nonRetryable: true,
        });
      },
    });
    const { workflowId, err } = await run(mock.phases, async (id) => ({
      workflowId: id,
      err: await client.workflow
        .getHandle(id)
        .result()
        .then(
          () => null,
          (e: unknown) => e,
        ),
    }));

    expect(err).toBeInstanceOf(WorkflowFailedError);
    const failure = (err as WorkflowFailedError).cause;
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({
      type: 'ModelAuthenticationError',
      message: 'Phase generateAlternatives failed: the model provider rejected the API key',
    });
    expect(failure?.cause).toBeInstanceOf(ActivityFailure);
    expect((failure?.cause as ActivityFailure).cause).toMatchObject({
      type: 'ModelAuthenticationError',
    });
    expect(mock.count('generateAlternatives')).toBe(1);
    expect(mock.calls.map((c) => c.phase)).not.toContain('draftDecision');

    const projected = await store.projection.get(workflowId);
    const error = {
      phase: 'generateAlternatives',
      type: 'ModelAuthenticationError',
      message: 'the model provider rejected the API key',
    };
    expect(projected).toMatchObject({
      status: 'failed',
      current_phase: 'generateAlternatives',
      error,
    });
    expect(projected!.completed_at).not.toBeNull();
    expect(projected!.phases.map((p) => p.status)).toEqual([
      ...Array<string>(6).fill('completed'),
      'failed',
      ...Array<string>(3).fill('pending'),
    ]);
    expect(projected!.phases[6]!.error).toEqual(error);
  });

  it('answers the progress query mid-run and records a cancellation', async () => {
    let release: () => void = () => {};
    const entered = new Promise<void>((resolve) => {
      release = resolve;
    });
    const mock = mockPhases({
      establishGoals: async () => {
        release();
        const ctx = Context.current();
        for (;;) {
          ctx.heartbeat();
          await ctx.sleep(100); // rejects once the workflow cancels the activity
        }
      },
    });
    const { progress, workflowId } = await run(mock.phases, async (id) => {
      const handle = client.workflow.getHandle(id);
      await entered;
      const progress = await handle.query(progressQuery);
      await handle.cancel();
      await handle.result().catch(() => undefined);
      return { progress, workflowId: id };
    });

    expect(progress).toMatchObject({ status: 'running', current_phase: 'establishGoals' });
    expect(progress.phases.slice(0, 4).map((p) => p.status)).toEqual([
      'completed',
      'completed',
      'completed',
      'running',
    ]);
    const projected = await waitFor('the cancelled record', async () => {
      const r = await store.projection.get(workflowId);
      return r?.status === 'cancelled' ? r : undefined;
    });
    expect(projected.phases[3]!.status).toBe('cancelled');
    expect(projected.error).toMatchObject({ phase: 'establishGoals', type: 'Cancelled' });
  });
});
