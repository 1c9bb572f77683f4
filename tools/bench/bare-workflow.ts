// The bare workflow of tools/bench/wft-gap.ts and of the bench's floor: ten no-op activities one
// after another, nothing else, the floor any Temporal TypeScript workflow of ten steps stands on.
// Bundled on its own. `shape` adds one of a decision's features at a time (wft-gap.ts's
// `shape.<option>=value`), to find what each costs against the floor.
import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';

export interface BareActivities {
  noop(input?: string): Promise<string | void>;
}

export interface BareShape {
  /** A local activity after each step, given this many bytes (a decision's projection write). */
  localActivityBytes?: number;
  /** Each activity's input and result, this many bytes each (a phase's input and output). */
  payloadBytes?: number;
  /** One step runs this many activities at once (retrieval's fan-out over information needs). */
  fanOut?: number;
  /** The workflow's result, this many bytes (a decision returns its record). */
  resultBytes?: number;
}

export async function bareWorkflow(
  steps: number,
  eager: boolean,
  shape: BareShape = {},
): Promise<string | void> {
  const { noop } = proxyActivities<BareActivities>({
    startToCloseTimeout: '10 seconds',
    allowEagerDispatch: eager,
  });
  const local = proxyLocalActivities<BareActivities>({ startToCloseTimeout: '10 seconds' });
  const bytes = (n: number | undefined) => (n ? 'x'.repeat(n) : undefined);
  for (let i = 0; i < steps; i++) {
    const input = bytes(shape.payloadBytes);
    if (shape.fanOut && i === Math.floor(steps / 2)) {
      await Promise.all(Array.from({ length: shape.fanOut }, () => noop(input)));
    } else {
      await noop(input);
    }
    if (shape.localActivityBytes) await local.noop(bytes(shape.localActivityBytes));
  }
  return bytes(shape.resultBytes);
}
