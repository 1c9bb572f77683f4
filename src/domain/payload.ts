import { ApplicationFailure } from '@temporalio/common';
import { DEFAULT_LIMITS } from './decision';
import type { PhaseName } from './phases';

// Temporal refuses a payload over 2 MB and terminates the workflow that sent it. Each phase's
// input and output is measured against a limit well below that and fails the phase instead, so
// the decision ends `failed`, with a message, never terminated or stuck.

/** The size of a value as JSON in UTF-8, as Temporal's default converter stores it. */
export function payloadBytes(value: unknown): number {
  const json = JSON.stringify(value) ?? '';
  let bytes = 0;
  for (let i = 0; i < json.length; i++) {
    const code = json.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    // A surrogate pair is 4 bytes in all: 2 for each half.
    else if (code >= 0xd800 && code <= 0xdfff) bytes += 2;
    else bytes += 3;
  }
  return bytes;
}

/** Fails the phase, for good, when `value` is over the payload limit. Safe in workflow code. */
export function checkPayload(
  phase: PhaseName,
  what: 'input' | 'output',
  value: unknown,
  maxBytes: number = DEFAULT_LIMITS.payload_max_bytes,
): void {
  const bytes = payloadBytes(value);
  if (bytes <= maxBytes) return;
  throw ApplicationFailure.create({
    type: 'PayloadTooLarge',
    message: `${phase}: its ${what} is ${bytes} bytes, over the ${maxBytes}-byte limit for one phase (PHASE_PAYLOAD_MAX_BYTES)`,
    nonRetryable: true,
  });
}
