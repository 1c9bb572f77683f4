import { ApplicationFailure, Context } from '@temporalio/activity';
import type { PhaseAgent } from '../agents/deterministic';
import type { DecisionRecord, PhaseInput, PhaseResult } from '../domain/decision';
import { PHASE_NAMES, type PhaseName } from '../domain/phases';
import type { DecisionProjection } from '../projection/redis-projection';

export interface ActivityDeps {
  agents: Record<PhaseName, PhaseAgent>;
  projection: Pick<DecisionProjection, 'write'>;
}

export type PhaseActivity = (input: PhaseInput) => Promise<PhaseResult>;

/** The worker's activities: one per phase (named after it) and the projection write. */
export function createActivities(deps: ActivityDeps) {
  const phases = {} as Record<PhaseName, PhaseActivity>;
  for (const name of PHASE_NAMES) {
    phases[name] = async (input) => {
      if (typeof input?.query !== 'string' || input.query.trim() === '') {
        throw ApplicationFailure.create({
          type: 'InvalidPhaseInput',
          message: `${name} needs a non-empty question`,
          nonRetryable: true,
        });
      }
      const started = performance.now();
      const answer = await deps.agents[name](input);
      return {
        output: answer.output,
        model: answer.model,
        latency_ms: Math.round(performance.now() - started),
        attempt: Context.current().info.attempt,
      };
    };
  }
  return {
    ...phases,
    /** Writes the decision's state to the Redis projection; a stale write is ignored there. */
    async projectDecision(record: DecisionRecord): Promise<void> {
      await deps.projection.write(record);
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
