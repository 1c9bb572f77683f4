import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createParser } from 'eventsource-parser';

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
