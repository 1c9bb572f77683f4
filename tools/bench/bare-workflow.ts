// The bare workflow of tools/bench/wft-gap.ts: ten no-op activities one after another, nothing
// else, the floor any Temporal TypeScript workflow of ten steps stands on. Bundled on its own.
import { proxyActivities } from '@temporalio/workflow';

export interface BareActivities {
  noop(): Promise<void>;
}

export async function bareWorkflow(steps: number, eager: boolean): Promise<void> {
  const { noop } = proxyActivities<BareActivities>({
    startToCloseTimeout: '10 seconds',
    allowEagerDispatch: eager,
  });
  for (let i = 0; i < steps; i++) await noop();
}
