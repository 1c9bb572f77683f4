import { percentile, round } from './measure';

/** A marker as a client saw it: in the text of a `phase.delta`. */
export interface Receipt {
  marker: string;
  /** When the bytes carrying it arrived (wall clock, ms). */
  at: number;
  /** When Redis took the live event carrying it: the millisecond part of its stream id. */
  storedMs: number;
  /** When the client's stream opened: a marker sent before was replayed, not streamed to it. */
  openedAt: number;
  /** The phase whose delta carried it. */
  phase?: string;
}

export interface Distribution {
  samples: number;
  p50: number;
  p99: number;
  max: number;
}

/** The median, 99th percentile and maximum of `samples`, rounded. */
export function distribution(samples: readonly number[], digits = 1): Distribution {
  return {
    samples: samples.length,
    p50: round(percentile(samples, 50), digits),
    p99: round(percentile(samples, 99), digits),
    max: round(samples.length === 0 ? NaN : Math.max(...samples), digits),
  };
}

export interface Matched {
  /** Send → arrival at the client, one per marker seen. */
  latencies: number[];
  /** Send → stored in Redis (the worker's read, its batching, its write). */
  toRedis: number[];
  /** Stored in Redis → arrival at the client (the API's read and its write). */
  fromRedis: number[];
  /** The phase of each latency. */
  phases: (string | undefined)[];
  /** Sent, never seen by a client. */
  missing: number;
  /** Seen again after the first time: an earlier answer's text copied into a later one. */
  repeats: number;
  /** Seen, never sent (by this run of the server). */
  unknown: number;
  /** Sent before the client's stream opened: read from the stream's past, left out. */
  beforeOpen: number;
}

/**
 * Pairs each marker the model server sent with the first time a client saw it. Later phases'
 * answers repeat earlier text (names turned into enums), so a marker may be seen again; only
 * its first sighting is its own chunk arriving.
 */
export function matchMarkers(sent: Readonly<Record<string, number>>, receipts: Receipt[]): Matched {
  const first = new Map<string, Receipt>();
  let repeats = 0;
  let unknown = 0;
  for (const receipt of receipts) {
    if (!(receipt.marker in sent)) unknown += 1;
    else if (first.has(receipt.marker)) {
      repeats += 1;
      if (receipt.at < first.get(receipt.marker)!.at) first.set(receipt.marker, receipt);
    } else first.set(receipt.marker, receipt);
  }
  const latencies: number[] = [];
  const toRedis: number[] = [];
  const fromRedis: number[] = [];
  const phases: (string | undefined)[] = [];
  let beforeOpen = 0;
  for (const [marker, receipt] of first) {
    const at = sent[marker]!;
    if (at < receipt.openedAt) {
      beforeOpen += 1;
      continue;
    }
    latencies.push(receipt.at - at);
    toRedis.push(receipt.storedMs - at);
    fromRedis.push(receipt.at - receipt.storedMs);
    phases.push(receipt.phase);
  }
  return {
    latencies,
    toRedis,
    fromRedis,
    phases,
    missing: Object.keys(sent).length - first.size,
    repeats,
    unknown,
    beforeOpen,
  };
}

/** The latencies of each phase, in the order the phases first appear. */
export function byPhase(
  matched: Pick<Matched, 'latencies' | 'phases'>,
): Record<string, Distribution> {
  const groups = new Map<string, number[]>();
  matched.latencies.forEach((latency, i) => {
    const phase = matched.phases[i] ?? 'unknown';
    const group = groups.get(phase);
    if (group) group.push(latency);
    else groups.set(phase, [latency]);
  });
  return Object.fromEntries([...groups].map(([phase, samples]) => [phase, distribution(samples)]));
}

/** The millisecond part of a Redis stream id (`1700000000000-3`): when Redis stored the entry. */
export function streamIdMs(id: string): number {
  return Number(id.split('-')[0]);
}

/**
 * The live stream's position in the id of an event a stream with live events sends
 * (`<durable id>_<live id>`), or null.
 */
export function liveIdOf(eventId: string | undefined): string | null {
  const live = eventId?.split('_')[1];
  return live && live !== '0-0' ? live : null;
}

/** What Redis's INFO says, as numbers: each command's calls, and the numeric `key:value` fields. */
export function parseInfo(text: string): {
  calls: Record<string, number>;
  fields: Record<string, number>;
} {
  const calls: Record<string, number> = {};
  const fields: Record<string, number> = {};
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const key = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    if (key.startsWith('cmdstat_')) {
      const n = /calls=(\d+)/.exec(value);
      if (n) calls[key.slice('cmdstat_'.length)] = Number(n[1]);
    } else if (/^-?\d+(\.\d+)?$/.test(value)) {
      fields[key] = Number(value);
    }
  }
  return { calls, fields };
}

/** What changed between two readings of the same counters, divided by `per`; what rounds to zero left out. */
export function countersDelta(
  before: Record<string, number>,
  after: Record<string, number>,
  per: number,
  digits = 2,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(after)) {
    const change = round((value - (before[key] ?? 0)) / per, digits);
    if (change !== 0) out[key] = change;
  }
  return out;
}
