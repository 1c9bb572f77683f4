import { localOpenAIModel, realActivities } from '../support/activities';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordFromHistory } from '../../src/temporal/history-record';
import { DecisionService } from '../../src/api/decision-service';
import {
  DEFAULT_LIMITS,
  type DecisionLimits,
  type DecisionRecord,
} from '../../src/domain/decision';
import { PHASE_NAMES } from '../../src/domain/phases';
import { DECISION_WORKFLOW_TYPE } from '../../src/domain/workflow-api';
import { KnowledgeBase } from '../../src/knowledge/knowledge-base';
import { retryDecision } from '../../src/operations/retry';
import type { decisionWorkflow } from '../../src/workflows';
import { services, testProjection, uniqueName, waitFor } from '../support/context';
import { startSchemaInstanceServer } from '../support/schema-instance-server';
import { strictSchemaProblems } from '../support/strict-schema-rules';
import { connectTemporal, type TemporalTestClients } from '../support/temporal';

Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });

// A model that reads no prompt and answers each call with the dumbest instance of the schema it
// was sent: every enum its first value, every number the middle of its range, every string a
// label of its path. Whatever such a model cannot get wrong, the schemas must enforce.
describe('a model that only follows the schemas it is sent', () => {
  let t: TemporalTestClients;
  let store: ReturnType<typeof testProjection>;
  let server: Awaited<ReturnType<typeof startSchemaInstanceServer>>;
  let worker: Worker;
  let running: Promise<void>;
  let decisions: DecisionService;
  const taskQueue = uniqueName('schema-instance');

  beforeAll(async () => {
    t = await connectTemporal();
    store = testProjection();
    server = await startSchemaInstanceServer();
    // The model's information needs read "value of needs 1 question"; a passage that shares the
    // words makes retrieval call the model too.
    const dir = mkdtempSync(join(tmpdir(), 'knowledge-'));
    writeFileSync(
      join(dir, 'needs.md'),
      '# Value of needs\n\nThe value of each need depends on the question it asks and who needs the answer.\n',
    );
    worker = await Worker.create({
      connection: t.native,
      taskQueue,
      workflowBundle: { codePath: services.workflowBundlePath },
      activities: await realActivities(
        store,
        localOpenAIModel(server.baseURL, { model: 'schema-instance', timeoutMs: 5000 }),
        { knowledge: await KnowledgeBase.load(dir) },
      ),
    });
    running = worker.run();
    decisions = new DecisionService({
      client: t.client,
      projection: store.projection,
      taskQueue,
      limits: DEFAULT_LIMITS,
    });
  });
  afterAll(async () => {
    if (worker?.getState() === 'RUNNING') worker.shutdown();
    await running;
    await server?.close();
    await store?.cleanup();
    await t?.close();
  });

  async function decide(limits: Partial<DecisionLimits> = {}) {
    const workflowId = uniqueName('decision');
    const handle = await t.client.workflow.start<typeof decisionWorkflow>(DECISION_WORKFLOW_TYPE, {
      taskQueue,
      workflowId,
      args: [
        {
          query: 'Should we move billing to a managed Postgres?',
          limits: { ...DEFAULT_LIMITS, ...limits },
        },
      ],
    });
    return handle.result().then(
      (record) => ({ handle, record, error: null }),
      (error: unknown) => ({ handle, record: null as DecisionRecord | null, error }),
    );
  }

  it('completes all ten phases with zero repair rounds, one call per model-made output', async () => {
    server.reset();
    const { record, error } = await decide();
    expect(error).toBeNull();
    expect(record!.status).toBe('completed');
    expect(record!.phases.map((p) => [p.name, p.status, p.repair_rounds])).toEqual(
      PHASE_NAMES.map((name) => [name, 'completed', 0]),
    );
    // The server's own count: nine phases and one retrieval per need, no repair, no retry.
    const needs = record!.result!.phases.identifyInformationNeeds.needs.length;
    expect(server.requests).toHaveLength(9 + needs);
    expect(record!.result!.usage).toMatchObject({ model_calls: 9 + needs, repair_rounds: 0 });
    // What code computed from the answers: weights that add up to 1, scores, a cited source.
    const weights = record!.result!.phases.establishGoals.criteria.map((c) => c.weight);
    expect(weights.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 10);
    expect(record!.result!.phases.retrieveInformation.answers[0]).toMatchObject({
      need_id: 'N1',
      answered: true,
      citations: [{ passage_id: 'P1', source: 'needs.md' }],
    });
    expect(record!.result!.decision.alternatives_considered).toHaveLength(3);
  });

  it('counts every call the decision paid for, those of a failed attempt and its repair round too', async () => {
    // defineScope's first two answers break its schema: the first attempt fails after its repair
    // round (two calls), the second succeeds (one call).
    server.reset({
      fault: (request, sameTask) =>
        request.task === 'defineScope' && sameTask <= 2
          ? { kind: 'answer', content: '{"summary": 1}' }
          : undefined,
    });
    const { record, error } = await decide();
    expect(error).toBeNull();
    const scope = record!.phases.find((p) => p.name === 'defineScope')!;
    expect(scope).toMatchObject({ attempts: 2, model_calls: 3, repair_rounds: 1 });
    // The server's own count, phase by phase and in all.
    const sent = (task: string) => server.requests.filter((r) => r.task === task).length;
    for (const phase of record!.phases)
      expect(phase.model_calls, phase.name).toBe(sent(phase.name));
    expect(record!.result!.usage.model_calls).toBe(server.requests.length);
    expect(record!.result!.usage.repair_rounds).toBe(1);
  });

  it('counts the calls of a phase that fails for good, each attempt and repair round', async () => {
    // Every answer to defineScope breaks its schema: five attempts of two calls each.
    server.reset({
      fault: (request) =>
        request.task === 'defineScope' ? { kind: 'answer', content: '{"summary": 1}' } : undefined,
    });
    const { handle, error } = await decide();
    expect(error).not.toBeNull();
    const sent = server.requests.filter((r) => r.task === 'defineScope').length;
    expect(sent).toBe(10);
    const failed = (await store.projection.get(handle.workflowId))!;
    expect(failed.status).toBe('failed');
    expect(failed.phases.find((p) => p.name === 'defineScope')).toMatchObject({
      status: 'failed',
      attempts: 5,
      model_calls: sent,
      repair_rounds: 5,
    });
    // The same, rebuilt from the history alone.
    const rebuilt = recordFromHistory(handle.workflowId, await handle.fetchHistory());
    expect(rebuilt!.phases.find((p) => p.name === 'defineScope')).toMatchObject({
      attempts: 5,
      model_calls: sent,
    });
  });

  it('sends every phase a token cap and a schema that passes the strict-mode rules', async () => {
    server.reset();
    await decide();
    expect(new Set(server.requests.map((r) => r.task))).toEqual(new Set(PHASE_NAMES));
    for (const { task, body } of server.requests) {
      expect(body.max_completion_tokens, task).toEqual(expect.any(Number));
      expect(body.max_completion_tokens, task).toBeGreaterThan(0);
      expect(body.response_format?.json_schema?.strict, task).toBe(true);
      expect(strictSchemaProblems(body.response_format?.json_schema?.schema), task).toEqual([]);
    }
  });

  it('fails fast on answers far past their bounds: failed, not terminated, history small', async () => {
    server.reset({ padStrings: 300 * 1024 });
    const { handle, error } = await decide();
    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect((error as WorkflowFailedError).cause).toMatchObject({
      type: 'OutputTooLarge',
      message: expect.stringMatching(
        /^Phase identifyTrigger failed: identifyTrigger: the answer of schema-instance is \d+ characters, over the phase's limit of \d+$/,
      ),
    });
    // One call, no retry: the bounds are far above what a model that follows them writes.
    expect(server.requests).toHaveLength(1);
    expect((await handle.describe()).status.name).toBe('FAILED');
    expect(await store.projection.get(handle.workflowId)).toMatchObject({
      status: 'failed',
      error: { phase: 'identifyTrigger', type: 'OutputTooLarge' },
    });
    const history = await handle.fetchHistory();
    const bytes = temporal.api.history.v1.History.encode(history).finish().length;
    expect(bytes).toBeLessThan(64 * 1024);

    // Retried from the failed phase once the model behaves, the decision completes.
    server.reset();
    await retryDecision(t.client, handle.workflowId);
    const record = await t.client.workflow
      .getHandle<typeof decisionWorkflow>(handle.workflowId)
      .result();
    expect(record.status).toBe('completed');
    expect(server.requests.map((r) => r.task)[0]).toBe('identifyTrigger');
  });

  it('forks from a phase with a budget of its own, calling the model for the later phases only', async () => {
    server.reset();
    const { record: source } = await decide();
    server.reset();
    const fork = await decisions.fork({
      id: source!.process_id,
      // The source was started without an owner: an admin's to fork.
      caller: { principal: 'operator', admin: true },
      request: { from_phase: 'generateAlternatives', budget: { max_model_calls: 10 } },
    });
    const record = await t.client.workflow
      .getHandle<typeof decisionWorkflow>(fork.process_id)
      .result();
    expect(record.status).toBe('completed');
    expect(server.requests.map((r) => r.task)).toEqual([
      'generateAlternatives',
      'draftDecision',
      'updateDraft',
      'compileResult',
    ]);
    expect(record.phases.slice(0, 6).every((p) => p.reused_from === source!.process_id)).toBe(true);
  });

  it('stops at the budget of model calls: the call that would pass it is never made', async () => {
    server.reset();
    const { error, handle } = await decide({
      budget: { max_model_calls: 3, max_tokens: 400_000 },
    });
    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect((error as WorkflowFailedError).cause).toMatchObject({
      type: 'BudgetExceeded',
      message: expect.stringMatching(
        /^Phase establishGoals failed: establishGoals: the next model call would pass the decision's budget \(spent 3 of 3 model calls and \d+ of 400000 tokens/,
      ),
    });
    expect(server.requests.map((r) => r.task)).toEqual([
      'identifyTrigger',
      'analyzeRootCause',
      'defineScope',
    ]);
    const projected = await waitFor('the failed decision in the projection', async () => {
      const r = await store.projection.get(handle.workflowId);
      return r?.status === 'failed' ? r : undefined;
    });
    expect(projected.error).toMatchObject({ phase: 'establishGoals', type: 'BudgetExceeded' });
  });

  // The model streams: a call may begin with what is left of the budget, less than its worst
  // case, and is cut where it reaches it (a model that does not stream is refused such a call
  // before it is made: test/unit/budget.test.ts).
  it('cuts a streamed answer where it reaches the token budget, and makes no further call', async () => {
    server.reset();
    const { error } = await decide({ budget: { max_model_calls: 60, max_tokens: 1000 } });
    const last = server.requests.at(-1)!.task;
    expect((error as WorkflowFailedError).cause).toMatchObject({
      type: 'BudgetExceeded',
      message: expect.stringMatching(
        new RegExp(
          `^Phase ${last} failed: ${last}: the answer was cut after \\d+ output tokens, where it reached the decision's budget of 1000 tokens$`,
        ),
      ),
    });
    expect(server.requests.filter((r) => r.task === last)).toHaveLength(1);
  });
});
