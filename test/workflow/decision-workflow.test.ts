import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import { Context } from '@temporalio/activity';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Activities, PhaseActivity } from '../../src/activities';
import {
  DEFAULT_LIMITS,
  type DecisionEvent,
  type DecisionInput,
  type DecisionRecord,
  type PhaseInput,
} from '../../src/domain/decision';
import { phaseNamed } from '../../src/phases';
import { PHASE_NAMES, type PhaseName } from '../../src/domain/phases';
import {
  DECISION_WORKFLOW_TYPE,
  DecisionPhaseAttribute,
  DecisionStatusAttribute,
  progressQuery,
  reviewUpdate,
} from '../../src/domain/workflow-api';
import type { decisionWorkflow } from '../../src/workflows';
import { CANNED, CANNED_QUERY } from '../support/canned-outputs';
import { services, testProjection, uniqueName, waitFor } from '../support/context';

Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });

type Behaviour = (input: PhaseInput, call: number) => Promise<unknown>;

/** The canned output of a phase; for a retrieval, the canned answer to the need it was given. */
function cannedOutput(phase: PhaseName, input: PhaseInput): unknown {
  if (phase !== 'retrieveInformation') return CANNED[phase];
  const canned = CANNED.retrieveInformation.answers.find((a) => a.need_id === input.need?.id);
  return (
    canned ?? {
      ...CANNED.retrieveInformation.answers[0]!,
      need_id: input.need!.id,
      question: input.need!.question,
    }
  );
}

/** Phase activities that record every call and answer with canned outputs or the given behaviours. */
function mockPhases(behaviours: Partial<Record<PhaseName, Behaviour>> = {}) {
  const calls: { phase: PhaseName; input: PhaseInput }[] = [];
  const phases = {} as Record<PhaseName, PhaseActivity>;
  for (const phase of PHASE_NAMES) {
    phases[phase] = async (input) => {
      calls.push({ phase, input: structuredClone(input) });
      const call = calls.filter((c) => c.phase === phase).length;
      const behaviour = behaviours[phase];
      const output = behaviour ? await behaviour(input, call) : cannedOutput(phase, input);
      return {
        output,
        model: 'mock',
        model_calls: 1,
        usage: { input_tokens: 3, output_tokens: 2 },
        latency_ms: 1,
        attempt: Context.current().info.attempt,
      };
    };
  }
  return {
    phases,
    calls,
    count: (phase: PhaseName) => calls.filter((c) => c.phase === phase).length,
  };
}

/** A phase that fails for good, as a provider that rejects a request makes it. */
const failsForGood =
  (type: string, message: string): Behaviour =>
  () => {
    throw ApplicationFailure.create({ type, message, nonRetryable: true });
  };

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
    input: Partial<DecisionInput> = {},
  ): Promise<T> {
    const taskQueue = uniqueName('wf');
    const activities: Pick<Activities, PhaseName | 'projectDecision'> = {
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
        args: [{ query: CANNED_QUERY, ...input }],
      });
      return body(workflowId);
    });
  }

  /** How the decision's workflow failed, or null when it completed. */
  const failureOf = (id: string) =>
    client.workflow
      .getHandle(id)
      .result()
      .then(
        () => null,
        (e: unknown) => e,
      );

  it('holds a review that reaches the workflow before its pause, and applies it at the pause', async () => {
    // What a worker that takes a decision over meets: the review arrives with the task that
    // replays the decision up to its pause. Here the draft is held until the review is sent.
    let releaseDraft!: () => void;
    const draftHeld = new Promise<void>((resolve) => (releaseDraft = resolve));
    let draftStarted!: () => void;
    const draftRunning = new Promise<void>((resolve) => (draftStarted = resolve));
    const mock = mockPhases({
      draftDecision: async () => {
        draftStarted();
        await draftHeld;
        return CANNED.draftDecision;
      },
    });
    const record = await run(
      mock.phases,
      async (id) => {
        const handle = client.workflow.getHandle<typeof decisionWorkflow>(id);
        await draftRunning;
        expect((await handle.query(progressQuery)).status).toBe('running');
        const review = handle.executeUpdate(reviewUpdate, { args: [{ approve: true }] });
        // The update is accepted by the workflow (not refused as before its pause) ...
        await waitFor('the review to be accepted', async () =>
          (await handle.fetchHistory()).events?.some(
            (e) => e.workflowExecutionUpdateAcceptedEventAttributes,
          )
            ? true
            : undefined,
        );
        releaseDraft();
        // ... and applied once the decision pauses for it.
        expect(await review).toMatchObject({ status: 'approved' });
        return handle.result();
      },
      { review: { timeout_ms: 600_000 } },
    );
    expect(record.status).toBe('completed');
    expect(record.review).toMatchObject({ requested: true, status: 'approved' });
  });

  it('runs the ten phases in order, sending each exactly the earlier fields its declaration reads', async () => {
    const mock = mockPhases();
    const record = await run(mock.phases, (id) =>
      client.workflow.getHandle<typeof decisionWorkflow>(id).result(),
    );

    // Retrieval runs once per information need (two in the canned needs).
    const expectedCalls = PHASE_NAMES.flatMap((p) => (p === 'retrieveInformation' ? [p, p] : [p]));
    expect(mock.calls.map((c) => c.phase)).toEqual(expectedCalls);
    for (const call of mock.calls) {
      expect(call.input.query).toBe(CANNED_QUERY);
      if (call.phase === 'retrieveInformation') {
        // Each retrieval gets its need, not the earlier outputs.
        expect(call.input.outputs).toEqual({});
        continue;
      }
      const reads = phaseNamed(call.phase).reads;
      expect(Object.keys(call.input.outputs).sort()).toEqual(reads.map((r) => r.phase).sort());
      for (const { phase: p, fields } of reads) {
        const full = CANNED[p as PhaseName] as Record<string, unknown>;
        expect(call.input.outputs[p as PhaseName]).toEqual(
          Object.fromEntries(fields.map((f) => [f, full[f]])),
        );
      }
    }
    // That these are all a prompt reads is proven per agent in test/unit/agents.test.ts. No later
    // phase reads the trigger's summary, so it never travels again.
    expect(JSON.stringify(mock.calls.map((c) => c.input))).not.toContain(
      CANNED.identifyTrigger.summary,
    );
    expect(
      mock.calls
        .filter((c) => c.phase === 'retrieveInformation')
        .map((c) => c.input.need!)
        .sort((a, b) => a.id.localeCompare(b.id)),
    ).toEqual(CANNED.identifyInformationNeeds.needs);
    expect(record.status).toBe('completed');
    expect(record.phases.map((p) => [p.name, p.status, p.attempts, p.model])).toEqual(
      PHASE_NAMES.map((name) => [name, 'completed', 1, 'mock']),
    );
    expect(record.result!.phases).toEqual(CANNED);
    expect(record.result!.decision).toEqual(CANNED.compileResult);
    expect(record.result!.usage).toMatchObject({
      model_calls: 11,
      input_tokens: 33,
      output_tokens: 22,
    });
    expect(record.phases.find((p) => p.name === 'retrieveInformation')).toMatchObject({
      model_calls: 2,
      usage: { input_tokens: 6, output_tokens: 4 },
    });

    const projected = await store.projection.get(record.process_id);
    expect(projected).toEqual(record);
  });

  it('gives each phase attempt the model timeout once per call it may make', async () => {
    const mock = mockPhases();
    const history = await run(
      mock.phases,
      async (id) => {
        await client.workflow.getHandle(id).result();
        return client.workflow.getHandle(id).fetchHistory();
      },
      { limits: { ...DEFAULT_LIMITS, model_timeout_ms: 7000 } },
    );
    const scheduled = history.events!.filter((e) => e.activityTaskScheduledEventAttributes);
    expect(scheduled.length).toBeGreaterThanOrEqual(PHASE_NAMES.length);
    for (const e of scheduled) {
      // An answer and a repair round, 7 s each, and 10 s around them.
      expect(Number(e.activityTaskScheduledEventAttributes!.startToCloseTimeout!.seconds)).toBe(24);
    }
  });

  it('fails a phase whose input is over the payload limit before scheduling it', async () => {
    const mock = mockPhases();
    const { err, history } = await run(
      mock.phases,
      async (id) => ({
        err: await failureOf(id),
        history: await client.workflow.getHandle(id).fetchHistory(),
      }),
      {
        context: 'x'.repeat(20_000),
        limits: { ...DEFAULT_LIMITS, payload_max_bytes: 16 * 1024 },
      },
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause).toMatchObject({
      type: 'PayloadTooLarge',
      message: expect.stringMatching(
        /^Phase identifyTrigger failed: identifyTrigger: its input is 20\d{3} bytes, over the 16384-byte limit/,
      ),
    });
    // Temporal's history: the decision failed, and no phase was ever scheduled.
    expect(history.events!.some((e) => e.activityTaskScheduledEventAttributes)).toBe(false);
    expect(history.events!.some((e) => e.workflowExecutionFailedEventAttributes)).toBe(true);
    expect(mock.calls).toHaveLength(0);
  });

  it('lands the final projection write when a cancellation arrives during it', async () => {
    // The final write's first attempt fails (Redis away) only once the workflow has taken the
    // cancellation, so its retry comes after it: a cancellable write would be given up there,
    // and Redis would never see the decision's end.
    const mock = mockPhases();
    const taskQueue = uniqueName('wf');
    const workflowId = uniqueName('decision');
    const finalAttempts: number[] = [];
    let finalWriteStarted!: () => void;
    const finalWrite = new Promise<void>((done) => (finalWriteStarted = done));
    /** The workflow has run a task with the cancellation request in it. */
    const cancellationTaken = () =>
      waitFor('the workflow to take the cancellation', async () => {
        const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
        const requested = events.findIndex(
          (e) => e.workflowExecutionCancelRequestedEventAttributes,
        );
        return requested >= 0 &&
          events.slice(requested).some((e) => e.workflowTaskCompletedEventAttributes)
          ? true
          : undefined;
      });
    const worker = await Worker.create({
      connection: nativeConnection,
      taskQueue,
      workflowBundle: { codePath: services.workflowBundlePath },
      activities: {
        ...mock.phases,
        projectDecision: async (record: DecisionRecord, events: DecisionEvent[] = []) => {
          if (record.status === 'completed') {
            const { attempt } = Context.current().info;
            finalAttempts.push(attempt);
            if (attempt === 1) {
              finalWriteStarted();
              await cancellationTaken();
              throw new Error('Redis is not answering');
            }
          }
          await store.projection.write(record, events);
        },
      },
    });
    const record = await worker.runUntil(async () => {
      const handle = await client.workflow.start<typeof decisionWorkflow>(DECISION_WORKFLOW_TYPE, {
        taskQueue,
        workflowId,
        args: [{ query: CANNED_QUERY }],
        // A local activity holds its workflow task open, and the worker completes the task at 80 %
        // of this timeout to take in what arrived meanwhile, such as the cancellation.
        workflowTaskTimeout: '2 seconds',
      });
      await finalWrite;
      await handle.cancel();
      return handle.result();
    });
    // The decision had ended: it completes, and the write retried after the cancellation lands.
    expect(record.status).toBe('completed');
    expect(finalAttempts).toEqual([1, 2]);
    const history = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
    expect(history.some((e) => e.workflowExecutionCancelRequestedEventAttributes)).toBe(true);
    expect(history.at(-1)?.workflowExecutionCompletedEventAttributes).toBeTruthy();
    const projected = await waitFor(
      'the final record in Redis',
      async () => {
        const stored = await store.projection.get(workflowId);
        return stored?.status === 'completed' ? stored : undefined;
      },
      10_000,
    );
    expect(projected).toEqual(record);
    const events = await store.projection.readEvents(workflowId, null);
    expect(events.at(-1)?.type).toBe('decision.completed');
  });

  it('retries a phase that fails once, then completes (two calls, attempts = 2)', async () => {
    const mock = mockPhases({
      defineScope: (_input, call) => {
        if (call === 1) throw new Error('model timed out');
        return Promise.resolve({ ...CANNED.defineScope, summary: 'recovered' });
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
    expect(record.result!.phases.defineScope.summary).toBe('recovered');
  });

  it("shows readers no other library's error text: the type, and where to look", async () => {
    const mock = mockPhases({
      defineScope: failsForGood('ReplyError', 'NOAUTH redis://:hunter2@10.1.2.3:6379 refused'),
    });
    const workflowId = await run(mock.phases, async (id) => {
      await failureOf(id);
      return id;
    });
    const projected = await store.projection.get(workflowId);
    expect(projected!.error).toEqual({
      phase: 'defineScope',
      type: 'ReplyError',
      message: "defineScope failed unexpectedly (ReplyError); the worker's log has the details",
    });
    expect(JSON.stringify(projected)).not.toContain('hunter2');
  });

  it('fails the decision on a permanent error, with the error in the projection', async () => {
    const mock = mockPhases({
      generateAlternatives: failsForGood(
        'ModelAuthenticationError',
        'the model provider rejected the API key',
      ),
    });
    const { workflowId, err } = await run(mock.phases, async (id) => ({
      workflowId: id,
      err: await failureOf(id),
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
  it('indexes its search attributes when its status changes, not at every phase', async () => {
    const { history, description } = await run(mockPhases().phases, async (id) => {
      const handle = client.workflow.getHandle<typeof decisionWorkflow>(id);
      await handle.result();
      return { history: await handle.fetchHistory(), description: await handle.describe() };
    });
    const upserts = (history.events ?? [])
      .map((e) => e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields)
      // Patches upsert TemporalChangeVersion on their own.
      .filter((fields) => fields?.DecisionStatus != null)
      .map((fields) => fields!)
      .map((fields) => ({
        status: defaultPayloadConverter.fromPayload<string>(fields.DecisionStatus!),
        // An empty keyword goes to Temporal as no value.
        phase: fields.DecisionPhase
          ? defaultPayloadConverter.fromPayload<string>(fields.DecisionPhase)
          : '',
      }));
    expect(upserts).toEqual([
      { status: 'running', phase: '' },
      { status: 'completed', phase: 'compileResult' },
    ]);
    // What visibility (the Web UI's filters) holds once the decision has ended.
    expect(description.typedSearchAttributes.get(DecisionStatusAttribute)).toBe('completed');
    expect(description.typedSearchAttributes.get(DecisionPhaseAttribute)).toBe('compileResult');
  });

  it('fans retrieval out: one activity per information need, all in flight at once, each told how many', async () => {
    const needs = [1, 2, 3].map((n) => ({
      id: `N${n}`,
      question: `Question ${n}?`,
      why: 'Because',
    }));
    let inFlight = 0;
    let maxInFlight = 0;
    let allArrived = false;
    const mock = mockPhases({
      identifyInformationNeeds: () => Promise.resolve({ summary: 'Three needs', needs }),
      retrieveInformation: async (input) => {
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        if (inFlight === 3) allArrived = true;
        // Run sequentially, this waits alone until its deadline and maxInFlight stays 1.
        await waitFor(
          'all three retrievals in flight',
          () => (allArrived ? true : undefined),
          5000,
        ).catch(() => undefined);
        inFlight -= 1;
        return cannedOutput('retrieveInformation', input);
      },
    });
    const { record, history } = await run(mock.phases, async (id) => {
      const handle = client.workflow.getHandle<typeof decisionWorkflow>(id);
      return { record: await handle.result(), history: await handle.fetchHistory() };
    });

    expect(maxInFlight).toBe(3);
    const scheduled = (history.events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes)
      .filter((a) => a?.activityType?.name === 'retrieveInformation');
    expect(scheduled).toHaveLength(3);
    // Each says how many run at once: without the budget ledger, each spends a third of what is
    // left.
    const inputs = scheduled.map(
      (a) =>
        JSON.parse(Buffer.from(a!.input!.payloads![0]!.data!).toString()) as {
          parallel?: number;
        },
    );
    expect(inputs.map((i) => i.parallel)).toEqual([3, 3, 3]);
    // Each activity carries a summary the Web UI shows next to it.
    const summaries = (history.events ?? [])
      .filter((e) => e.activityTaskScheduledEventAttributes)
      .map((e) => Buffer.from(e.userMetadata?.summary?.data ?? []).toString());
    expect(summaries[0]).toBe('"Phase 1/10: Identify trigger"');
    expect(summaries.filter((t) => t === '"Phase 6/10: Retrieve information"')).toHaveLength(3);
    expect(record.result!.phases.retrieveInformation.answers.map((a) => a.need_id)).toEqual([
      'N1',
      'N2',
      'N3',
    ]);
    expect(record.result!.phases.retrieveInformation.summary).toBe(
      '3 of 3 information needs answered from the knowledge base.',
    );
  });
});
