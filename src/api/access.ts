import type { Context } from 'hono';
import type { DecisionRecord } from '../domain/decision';
import { DecisionNotFound } from './errors';
import type { AuthVariables } from './middleware/auth';

/** Who asks: a principal, and whether it may see every decision. */
export interface Caller {
  principal: string;
  admin: boolean;
}

export function callerOf(c: Context<{ Variables: AuthVariables }>): Caller {
  return { principal: c.get('principal'), admin: c.get('scopes').has('decisions:admin') };
}

/** Admins see every decision; others only their own. Decisions without an owner are admins'. */
export function canSee(caller: Caller, record: Pick<DecisionRecord, 'owner'>): boolean {
  return caller.admin || (record.owner !== null && record.owner === caller.principal);
}

/**
 * The decision when the caller may see it. Anyone else's is 404 with the very words of an unknown
 * id, so that its existence does not leak either.
 */
export async function visibleDecision(
  decisions: { getOrThrow(id: string): Promise<DecisionRecord> },
  caller: Caller,
  id: string,
): Promise<DecisionRecord> {
  const record = await decisions.getOrThrow(id);
  if (!canSee(caller, record)) throw new DecisionNotFound(id);
  return record;
}
