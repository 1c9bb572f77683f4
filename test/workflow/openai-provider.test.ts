import { localOpenAIModel, realActivities } from '../support/activities';
import { resolve } from 'node:path';
import { Context } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KnowledgeBase } from '../../src/knowledge/knowledge-base';
import { phaseNamed } from '../../src/phases';
import { runAgent } from '../../src/activities/run-agent';
import { CANNED, CANNED_QUERY } from '../support/canned-outputs';
import { startFakeOpenAI, type Fault } from '../support/fake-openai-server';
import { DECISION_WORKFLOW_TYPE } from '../../src/domain/workflow-api';
import type { decisionWorkflow } from '../../src/workflows';
import { services, testProjection, uniqueName, waitFor } from '../support/context';
import { connectTemporal, runDecision, type TemporalTestClients } from '../support/temporal';

Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });

describe('the openai provider against a local Chat Completions server', () => {
  let t: TemporalTestClients;
  let store: ReturnType<typeof testProjection>;
  let server: Awaited<ReturnType<typeof startFakeOpenAI>>;
  let knowledge: KnowledgeBase;

  beforeAll(async () => {
    t = await connectTemporal();
    store = testProjection();
    server = await startFakeOpenAI();
    knowledge = await KnowledgeBase.load(resolve(__dirname, '../../knowledge'));
  });
  afterAll(async () => {
    await server?.close();
    await store?.cleanup();
    await t?.close();
  });

  /**
   * A whole decision through the real activities, with `fault` on defineScope's first call and
   * each answer `delayMs` after its request.
   */
  async function decideWith(fault: Fault | undefined, delayMs = 0) {
    server.reset(
      (request, sameTask) => (request.task === 'defineScope' && sameTask === 1 ? fault : undefined),
      { delayMs },
    );
    const activities = await realActivities(store, localOpenAIModel(server.baseURL), {
      knowledge,
    });
    return runDecision(t, activities, CANNED_QUERY);
  }

  it('completes a decision, recording model, tokens and latency per phase', async () => {
    // Each answer takes the server at least DELAY_MS: the latency measured cannot be less.
    const DELAY_MS = 100;
    const { record, error } = await decideWith(undefined, DELAY_MS);
    expect(error).toBeNull();
    expect(record!.status).toBe('completed');
    const trigger = record!.phases[0]!;
    expect(trigger).toMatchObject({
      model: 'test-model',
      model_calls: 1,
      usage: { input_tokens: 100, output_tokens: 20 },
    });
    expect(trigger.latency_ms).toBeGreaterThanOrEqual(DELAY_MS);
    // Nine phases with one call each, and one retrieval call per information need.
    const calls = 9 + record!.result!.phases.identifyInformationNeeds.needs.length;
    expect(record!.result!.usage).toMatchObject({
      model_calls: calls,
      input_tokens: 100 * calls,
      output_tokens: 20 * calls,
    });
    expect(record!.result!.usage.latency_ms).toBeGreaterThanOrEqual(DELAY_MS * calls);
    expect(server.requests.every((r) => r.body.model === 'test-model')).toBe(true);
  });

  it.each<[string, Fault]>([
    ['a 500', { kind: 'status', status: 500, message: 'The server had an error' }],
    ['a hang past the client timeout', { kind: 'hang' }],
    ['a malformed body', { kind: 'malformed' }],
  ])('retries after %s and completes', async (_name, fault) => {
    const { record, error } = await decideWith(fault);
    expect(error).toBeNull();
    expect(record!.status).toBe('completed');
    expect(server.requests.filter((r) => r.task === 'defineScope')).toHaveLength(2);
    expect(record!.phases.find((p) => p.name === 'defineScope')!.attempts).toBe(2);
  });

  it.each([
    ['json_schema', 'max_completion_tokens', true],
    ['json_object', 'max_tokens', false],
  ] as const)(
    'in %s mode sends the cap as %s, and the schema in the prompt only when not strict',
    async (responseFormat, tokenLimitField, strict) => {
      server.reset(() => undefined);
      const model = localOpenAIModel(server.baseURL, { responseFormat, tokenLimitField });
      const run = await runAgent(
        phaseNamed('identifyTrigger'),
        { query: CANNED_QUERY, outputs: {} },
        model,
      );
      expect(run.output).toEqual(CANNED.identifyTrigger);
      expect(server.requests).toHaveLength(1);
      const body = server.requests[0]!.body as unknown as Record<string, unknown> & {
        messages: { role: string; content: string }[];
        response_format: { type: string; json_schema?: { strict: boolean; schema: object } };
      };
      const other = tokenLimitField === 'max_tokens' ? 'max_completion_tokens' : 'max_tokens';
      expect(body[tokenLimitField]).toBeGreaterThan(0);
      expect(body).not.toHaveProperty(other);
      expect(body.response_format.type).toBe(responseFormat);
      const system = body.messages[0]!.content;
      if (strict) {
        expect(body.response_format.json_schema!.strict).toBe(true);
        expect(JSON.stringify(body.response_format.json_schema!.schema)).not.toContain('maxLength');
        expect(system).not.toContain('"maxLength"');
      } else {
        expect(system).toContain('"maxLength":600');
      }
    },
  );

  it('cancelling a decision aborts its model call in flight, and records the attempt cancelled', async () => {
    server.reset((request) => (request.task === 'defineScope' ? { kind: 'hang' } : undefined));
    const outcomes: unknown[] = [];
    const taskQueue = uniqueName('cancel');
    const worker = await Worker.create({
      connection: t.native,
      taskQueue,
      workflowBundle: { codePath: services.workflowBundlePath },
      activities: await realActivities(
        store,
        localOpenAIModel(server.baseURL, { timeoutMs: 60_000 }),
        // Cancellation reaches an activity with its next heartbeat.
        { knowledge, heartbeatIntervalMs: 200 },
      ),
      maxHeartbeatThrottleInterval: '1 second',
      interceptors: {
        activity: [
          () => ({
            inbound: {
              async execute(input, next) {
                try {
                  return await next(input);
                } catch (err) {
                  if (Context.current().info.activityType === 'defineScope') outcomes.push(err);
                  throw err;
                }
              },
            },
          }),
        ],
      },
    });
    const workflowId = uniqueName('decision');
    await worker.runUntil(async () => {
      const handle = await t.client.workflow.start<typeof decisionWorkflow>(
        DECISION_WORKFLOW_TYPE,
        { taskQueue, workflowId, args: [{ query: CANNED_QUERY }] },
      );
      const inFlight = await waitFor('the defineScope call to reach the server', () =>
        server.requests.find((r) => r.task === 'defineScope'),
      );
      await handle.cancel();
      await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
      await waitFor('the call to be aborted', () => (inFlight.aborted ? true : undefined));
    });
    const history = await t.client.workflow.getHandle(workflowId).fetchHistory();
    const types = history.events!.map((e) => e.eventType);
    expect(types).not.toContain(temporal.api.enums.v1.EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED);
    // The attempt ended as cancelled, not as a failure for the retry policy to count.
    expect(outcomes).toEqual([expect.any(CancelledFailure)]);
    expect(server.requests.filter((r) => r.task === 'defineScope')).toHaveLength(1);
    expect(await store.projection.get(workflowId)).toMatchObject({
      status: 'cancelled',
      error: { phase: 'defineScope', type: 'Cancelled' },
    });
  });

  it('honours Retry-After on a 429 before retrying, then completes', async () => {
    const { record, error } = await decideWith({
      kind: 'status',
      status: 429,
      headers: { 'retry-after': '3' },
      message: 'Rate limit reached',
    });
    expect(error).toBeNull();
    expect(record!.status).toBe('completed');
    const [first, second] = server.requests.filter((r) => r.task === 'defineScope');
    // The retry policy alone would retry after 1 s; Retry-After asked for 3 s.
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(2900);
  });

  it('fails the decision at once on a 401, with a clear error and no further attempt', async () => {
    const { record, error, workflowId } = await decideWith({
      kind: 'status',
      status: 401,
      message: 'Incorrect API key provided',
    });
    expect(record).toBeNull();
    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect((error as WorkflowFailedError).cause).toMatchObject({
      type: 'ModelAuthenticationError',
      message:
        'Phase defineScope failed: test-model answered HTTP 401: the API key was refused (check LLM_API_KEY)',
    });
    expect(server.requests.filter((r) => r.task === 'defineScope')).toHaveLength(1);
    expect(server.requests.map((r) => r.task)).not.toContain('establishGoals');
    const projected = await store.projection.get(workflowId);
    expect(projected).toMatchObject({
      status: 'failed',
      error: { phase: 'defineScope', type: 'ModelAuthenticationError' },
    });
  });
});
