import type { Client } from '@temporalio/client';
import { isTerminal, terminalEvent, type DecisionRecord } from '../domain/decision';
import { readDecisionFromTemporal, withEndOf } from '../temporal/read-decision';
import type { DecisionProjection } from './redis-projection';

export interface DecisionReadsOptions {
  projection: Pick<DecisionProjection, 'entry' | 'write' | 'expectRun'>;
  client: Client;
  /** How long an open decision's record may stay unchanged before Temporal is asked about it. */
  staleAfterMs?: number;
  onProjectionError?: (err: unknown) => void;
}

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

  /** The decision's current state, or null when neither Redis nor Temporal knows the id. */
  async read(id: string): Promise<DecisionRecord | null> {
    let projected: DecisionRecord | null = null;
    try {
      const entry = await this.options.projection.entry(id);
      projected = entry?.record ?? null;
      if (entry && !entry.awaitingRun && !(await this.outlivedByTemporal(entry.record))) {
        return entry.record;
      }
    } catch (err) {
      this.options.onProjectionError?.(err);
    }
    const truth = await this.fromTemporal(id);
    return projected && truth ? this.repair(projected, truth) : truth;
  }

  /** The decision as Temporal alone knows it: its history, folded (no worker needed). */
  fromTemporal(id: string): Promise<DecisionRecord | null> {
    return readDecisionFromTemporal(this.options.client, id);
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
   * last write was lost, or it was terminated from outside. Checked once a record is quiet.
   */
  private async outlivedByTemporal(record: DecisionRecord): Promise<boolean> {
    if (isTerminal(record.status)) return false;
    if (Date.now() - Date.parse(record.updated_at) < (this.options.staleAfterMs ?? 30_000)) {
      return false;
    }
    try {
      const description = await this.options.client.workflow
        .getHandle(record.process_id)
        .describe();
      return description.status.name !== 'RUNNING';
    } catch {
      return false;
    }
  }
}
