import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createParser } from 'eventsource-parser';
import { Allow, parse as parsePartial } from 'partial-json';
import { PHASE_NAMES, type PhaseName } from '../../src/domain/phases';

/**
 * Event streams recorded from the real API (test/api/decisions-api.test.ts writes them with
 * RECORD_STREAMS=1 and checks on every run that the server still streams their shape).
 */
export const RECORDINGS = {
  reviewed: 'decision-reviewed.sse',
  reviewTimedOut: 'decision-review-timed-out.sse',
  failed: 'decision-failed.sse',
  cancelled: 'decision-cancelled.sse',
} as const;
export type Recording = keyof typeof RECORDINGS;

const STREAMS_DIR = join(__dirname, '..', 'streams');

export const RERECORD =
  'RECORD_STREAMS=1 npm exec -- vitest run test/api/decisions-api.test.ts -t "recordings"';

/** One SSE message: its id, event name and data as sent. */
export interface Frame {
  id: string;
  event: string;
  data: string;
}

/** The messages of an SSE body; comments (keep-alives) are left out. */
export function parseSse(body: string): Frame[] {
  const frames: Frame[] = [];
  const parser = createParser({
    onEvent: (e) => frames.push({ id: e.id ?? '', event: e.event ?? 'message', data: e.data }),
  });
  parser.feed(body);
  return frames;
}

/** One frame as a server writes it. */
export function toSse(frame: Frame): string {
  return `id: ${frame.id}\nevent: ${frame.event}\ndata: ${frame.data}\n\n`;
}

export function readRecording(name: Recording): Frame[] {
  return parseSse(readFileSync(join(STREAMS_DIR, RECORDINGS[name]), 'utf8'));
}

export function writeRecording(name: Recording, body: string): void {
  writeFileSync(join(STREAMS_DIR, RECORDINGS[name]), body);
}

/**
 * The key structure of JSON data without its values: objects by their keys (sorted), arrays by
 * the distinct shapes of their elements, every other value by its JSON type.
 */
export function keyShape(value: unknown): unknown {
  if (Array.isArray(value)) {
    const shapes = new Map(value.map((v) => [JSON.stringify(keyShape(v)), keyShape(v)]));
    return [...shapes.values()];
  }
  if (typeof value === 'object' && value !== null) {
    const record = value as Record<string, unknown>;
    return Object.fromEntries(
      Object.keys(record)
        .sort()
        .map((key) => [key, keyShape(record[key])]),
    );
  }
  return value === null ? 'null' : typeof value;
}

/** A stream's events in order, each with the key structure of its data. */
export function streamShape(frames: readonly Frame[]): { event: string; data: unknown }[] {
  return frames.map((f) => ({ event: f.event, data: keyShape(JSON.parse(f.data)) }));
}

/** Which model call a live event is about (attempt and call from 1). */
export interface LiveStep {
  phase: PhaseName;
  need?: string | null;
  attempt?: number;
  call?: number;
}

function liveStep({ phase, need = null, attempt = 1 }: LiveStep) {
  return { phase, index: PHASE_NAMES.indexOf(phase), attempt, need };
}

/** A `phase.attempt` frame (its id is set by `withLive`). */
export function attemptFrame(step: LiveStep & { attempt: number }): Frame {
  return { id: '', event: 'phase.attempt', data: JSON.stringify(liveStep(step)) };
}

/**
 * The `phase.delta` frames of a model call writing `answer`, `chars` characters a delta from
 * `from` on, each with the answer parsed so far as the API adds it (null once one was missed).
 */
export function deltaFrames(step: LiveStep, answer: string, chars = 16, from = 0): Frame[] {
  const frames: Frame[] = [];
  for (let offset = from; offset < answer.length; offset += chars) {
    let partial: unknown = null;
    if (from === 0) {
      try {
        partial = parsePartial(answer.slice(0, offset + chars), Allow.ALL) as unknown;
      } catch {
        partial = null;
      }
    }
    const data = {
      ...liveStep(step),
      call: step.call ?? 1,
      offset,
      text: answer.slice(offset, offset + chars),
      partial,
    };
    frames.push({ id: '', event: 'phase.delta', data: JSON.stringify(data) });
  }
  return frames;
}

/** Picks the `phase.started` frame of a phase. */
export const startOf =
  (phase: PhaseName) =>
  (frame: Frame): boolean =>
    frame.event === 'phase.started' &&
    (JSON.parse(frame.data) as { phase: string }).phase === phase;

/**
 * A recording with live frames put after the durable frames `inserts` pick, every id then as the
 * API writes them when it streams live events: `<durable id>_<live id>`, the last of each so far.
 */
export function withLive(
  frames: readonly Frame[],
  inserts: readonly (readonly [after: (frame: Frame) => boolean, live: readonly Frame[]])[],
): Frame[] {
  let durable = '0-0';
  let live = '0-0';
  let count = 0;
  return frames.flatMap((frame) => {
    durable = frame.id;
    const out = [{ ...frame, id: `${durable}_${live}` }];
    for (const [after, liveFrames] of inserts) {
      if (!after(frame)) continue;
      for (const liveFrame of liveFrames) {
        count += 1;
        live = `1795824390000-${count}`;
        out.push({ ...liveFrame, id: `${durable}_${live}` });
      }
    }
    return out;
  });
}
