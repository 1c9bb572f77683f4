import type { Client } from '@temporalio/client';
import { isTerminal, terminalEvent, type DecisionRecord } from '../domain/decision';
import { isUnreachable, type TemporalCalls } from '../temporal/deadlines';
import { readDecisionFromTemporal, withEndOf } from '../temporal/read-decision';
import type { DecisionProjection } from './redis-projection';

export interface DecisionReadsOptions {
  projection: Pick<DecisionProjection, 'entry' | 'write' | 'expectRun'>;
  client: Client;
  /** How long an open decision's record may stay unchanged before Temporal is asked about it. */
  staleAfterMs?: number;
  onProjectionError?: (err: unknown) => void;
  /** Deadlines for the calls to Temporal (the API's); none without it (the command line's). */
  temporal?: TemporalCalls;
}

/**
 * A record as a read serves it: `stale` when it is the projection's copy of a decision that
 * Temporal could not confirm just now (it was not reachable within the read deadline).
 */
export type ReadRecord = DecisionRecord & { stale?: true };

const staleCopy = (record: DecisionRecord): ReadRecord => ({ ...record, stale: true });

/** What `refresh` did to one decision's projected record. */
export type Refreshed =
  | { outcome: 'restored' | 'updated' | 'unchanged'; record: DecisionRecord }
  | { outcome: 'unknown' };

/**
 * The one rule for what a read shows. Temporal's history is the truth; the Redis projection is
 * the reducer's output, cached. A cached record is served unless an operator's action started a
 * run that has not written yet (`expectRun`), or it says the decision is still going while
 * Temporal has closed it (a lost final write, a termination). Then the record comes from Temporal,
 * and an end the projection missed is written back, with its event, for every reader.
 */
export class DecisionReads {
  constructor(private readonly options: DecisionReadsOptions) {}

  /**
   * The decision's current state, or null when neither Redis nor Temporal knows the id. When
   * Temporal should confirm the projection's record but does not answer, that record is served
   * marked `stale`; without a record to serve, TemporalUnreachable.
   */
  async read(id: string): Promise<ReadRecord | null> {
    let projected: DecisionRecord | null = null;
    try {
      const entry = await this.options.projection.entry(id);
      projected = entry?.record ?? null;
      if (entry && !entry.awaitingRun) {
        const outlived = await this.outlivedByTemporal(entry.record);
        if (outlived === 'unknown') return staleCopy(entry.record);
        if (!outlived) return entry.record;
      }
    } catch (err) {
      this.options.onProjectionError?.(err);
    }
    let truth: DecisionRecord | null;
    try {
      truth = await this.fromTemporal(id);
    } catch (err) {
      if (projected && isUnreachable(err)) return staleCopy(projected);
      throw err;
    }
    return projected && truth ? this.repair(projected, truth) : truth;
  }

  /** The decision as Temporal alone knows it: its history, folded (no worker needed). */
  fromTemporal(id: string): Promise<DecisionRecord | null> {
    const read = () => readDecisionFromTemporal(this.options.client, id);
    return this.options.temporal ? this.options.temporal.read(read) : read();
  }

  /**
   * Writes an end the projection missed (a lost final write, a decision terminated or timed out
   * in Temporal), with its event, so that every reader and open event stream sees it too.
   */
  async repair(projected: DecisionRecord, truth: DecisionRecord): Promise<DecisionRecord> {
    if (isTerminal(projected.status) || !isTerminal(truth.status)) return truth;
    const end = withEndOf(projected, truth);
    await this.options.projection
      .write(end, [terminalEvent(end)], 'reconcile')
      .catch((err: unknown) => this.options.onProjectionError?.(err));
    return end;
  }

  /**
   * Copies Temporal's record of the decision into the projection, through the same seq guard as
   * the workflow's own writes: a running decision's newer write always wins, and a second copy
   * changes nothing. An end the projection missed goes with its event, so that open streams end.
   */
  async refresh(id: string): Promise<Refreshed> {
    const truth = await this.fromTemporal(id);
    if (!truth) return { outcome: 'unknown' };
    const before = (await this.options.projection.entry(id))?.record ?? null;
    const ended = before && !isTerminal(before.status) && isTerminal(truth.status);
    const record = ended ? withEndOf(before, truth) : truth;
    const applied = await this.options.projection.write(
      record,
      ended ? [terminalEvent(record)] : [],
      'reconcile',
    );
    return { outcome: !applied ? 'unchanged' : before ? 'updated' : 'restored', record };
  }

  /**
   * After an operator's action through Temporal started `runId` (a retry's reset): every read
   * goes to Temporal until that run's first write lands. A projection that cannot be told is
   * reported, not fatal: the new run's first write repairs it within moments.
   */
  async expectRun(id: string, runId: string): Promise<void> {
    await this.options.projection
      .expectRun(id, runId)
      .catch((err: unknown) => this.options.onProjectionError?.(err));
  }

  /**
   * True when the projection says the decision is still going but Temporal has closed it: its
   * last write was lost, or it was terminated from outside. Checked once a record is quiet;
   * 'unknown' when Temporal did not answer in time.
   */
  private async outlivedByTemporal(record: DecisionRecord): Promise<boolean | 'unknown'> {
    if (isTerminal(record.status)) return false;
    if (Date.now() - Date.parse(record.updated_at) < (this.options.staleAfterMs ?? 30_000)) {
      return false;
    }
    const describe = () => this.options.client.workflow.getHandle(record.process_id).describe();
    try {
      const description = await (this.options.temporal
        ? this.options.temporal.read(describe)
        : describe());
      return description.status.name !== 'RUNNING';
    } catch (err) {
      return isUnreachable(err) ? 'unknown' : false;
    }
  }
}
