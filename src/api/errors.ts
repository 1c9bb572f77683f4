import type { Problem } from './problem';
import { problem } from './problem';

/** Thrown by a handler to answer with a problem document; app.onError renders it. */
export class ProblemError extends Error {
  readonly problem: Problem;

  constructor(status: number, detail: string, extra?: Parameters<typeof problem>[2]) {
    super(detail);
    this.name = 'ProblemError';
    this.problem = problem(status, detail, extra);
  }
}
