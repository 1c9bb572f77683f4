import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { temporal } from '@temporalio/proto';
import { describe, expect, it } from 'vitest';
import type { DecisionRecord } from '../../src/domain/decision';
import { DecisionRecordSchema } from '../../src/domain/schemas';
import { readHistoryFile } from '../../src/operations/replay';
import { recordFromHistory } from '../../src/temporal/history-record';

const dir = resolve(__dirname, '../histories');
const decisions = readdirSync(dir).filter((f) => f.startsWith('decision-'));

function load(file: string) {
  const { workflowId, history: read } = readHistoryFile(join(dir, file));
  const history = read as temporal.api.history.v1.IHistory;
  const events = history.events!;
  const end = events.findIndex((e) => e.workflowExecutionCompletedEventAttributes);
  // The rebuilt record as it comes: only the workflow's own record is read as the projection
  // reads older ones.
  const fold = (count: number) =>
    recordFromHistory(workflowId, { events: events.slice(0, count) })!;
  const final = recordFromHistory(workflowId, history)!;
  // Decisions of the first versions kept fewer fields; what they kept must match.
  const exact = DecisionRecordSchema.safeParse(final).success;
  return { workflowId, events, end, fold, final: older(final), exact };
}

/**
 * The workflow's own record as the projection reads it (fields that older decisions lack get their
 * defaults), with the usage's repair rounds as zero where decisions written before they were
 * counted have none.
 */
function older(record: DecisionRecord): DecisionRecord {
  const parsed = DecisionRecordSchema.safeParse(record);
  const read = parsed.success ? parsed.data : record;
  return {
    ...read,
    // Retrieval's result sums its needs' repair rounds, none reported counting 0; workflows from
    // before repair rounds were counted recorded none for it.
    phases: read.phases.map((p) =>
      p.name === 'retrieveInformation' && p.repair_rounds === null && p.model_calls !== null
        ? { ...p, repair_rounds: 0 }
        : p,
    ),
    result: read.result && {
      ...read.result,
      usage: { repair_rounds: 0, ...read.result.usage },
    },
  };
}

describe('a decision rebuilt from its history with the reducer', () => {
  it('has completed decisions to rebuild, with review, fork, webhooks and a restart among them', () => {
    expect(decisions).toEqual(
      expect.arrayContaining([
        'decision-reviewed-v3.json',
        'decision-forked-v3.json',
        'decision-webhooks-v6.json',
        'decision-reviewed-restarted-v7.json',
      ]),
    );
  });

  it.each(decisions)('%s: the record the workflow itself kept, to the last field', (file) => {
    const { end, fold, final, exact } = load(file);
    expect(end).toBeGreaterThan(0);
    // Everything but the completion event, whose result is the workflow's own record.
    if (exact) expect(fold(end)).toEqual(final);
    else expect(fold(end)).toMatchObject(final);
  });

  it('a decision paused for review: awaiting it, with the time the workflow asked', () => {
    const { events, fold, final } = load('decision-reviewed-v3.json');
    const accepted = events.findIndex((e) => e.workflowExecutionUpdateAcceptedEventAttributes);
    expect(accepted).toBeGreaterThan(0);
    const paused = fold(accepted);
    expect(paused.status).toBe('awaiting_review');
    expect(paused.review).toEqual({
      ...final.review,
      status: 'awaiting',
      feedback: null,
      answered_at: null,
    });
    expect(paused.phases.map((p) => p.status)).toEqual([
      ...Array<string>(8).fill('completed'),
      'pending',
      'pending',
    ]);
    expect(paused.phases.slice(0, 8)).toEqual(final.phases.slice(0, 8));
  });

  it('a running decision: the phases done so far as the workflow recorded them, the next running', () => {
    const { events, fold, final } = load('decision-completed-v5.json');
    const third = events.findIndex(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'defineScope',
    );
    const running = fold(third + 1);
    expect(running.status).toBe('running');
    expect(running.current_phase).toBe('defineScope');
    expect(running.phases.slice(0, 2)).toEqual(final.phases.slice(0, 2));
    expect(running.phases[2]).toMatchObject({
      status: 'running',
      started_at: final.phases[2]!.started_at,
    });
    expect(running.result).toBeNull();
  });

  it('is no decision for a history without a decision input', () => {
    expect(recordFromHistory('x', { events: [] })).toBeNull();
  });
});
