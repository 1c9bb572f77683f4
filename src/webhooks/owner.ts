import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { DecisionRecord } from '../domain/decision';
import { DecisionOwnerAttribute } from '../domain/workflow-api';
import { TemporalCalls } from '../temporal/deadlines';
import { UNOWNED_PRINCIPAL } from './secret';

/** The principal whose secret signs a decision's deliveries. */
export type OwnerOf = (decisionId: string) => Promise<string>;

/** Neither Temporal nor the projection knows the decision: nobody can say whose it is. */
export class DecisionOwnerUnknown extends Error {
  override name = 'DecisionOwnerUnknown';
}

const DESCRIBE_DEADLINE_MS = 5000;

/**
 * Finds a decision's owner where the API put it when the decision started: its workflow's memo
 * and `DecisionOwner` search attribute, read with a describe (Temporal is the truth, and reachable
 * whenever a delivery runs). A decision whose history is gone (past the namespace's retention,
 * while its deliveries still retry) is looked up in the projection. An owner never changes, so
 * the answer is kept for the process's life (the most recent `cacheSize` decisions).
 */
export function decisionOwners(
  client: Client,
  projection: { get(id: string): Promise<Pick<DecisionRecord, 'owner'> | null> },
  cacheSize = 10_000,
): OwnerOf {
  const temporal = new TemporalCalls(client, { readMs: DESCRIBE_DEADLINE_MS });
  const known = new Map<string, string>();
  const remember = (id: string, owner: string | null | undefined): string => {
    const principal = owner || UNOWNED_PRINCIPAL;
    if (known.size >= cacheSize) known.delete(known.keys().next().value!);
    known.set(id, principal);
    return principal;
  };
  return async (id) => {
    const cached = known.get(id);
    if (cached !== undefined) return cached;
    try {
      const description = await temporal.read(() => client.workflow.getHandle(id).describe());
      const memo = description.memo?.owner;
      const attribute = description.typedSearchAttributes.get(DecisionOwnerAttribute);
      return remember(id, typeof memo === 'string' ? memo : attribute);
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
    const record = await projection.get(id);
    if (!record)
      throw new DecisionOwnerUnknown(
        `decision ${id} is known neither to Temporal nor to the projection`,
      );
    return remember(id, record.owner);
  };
}
