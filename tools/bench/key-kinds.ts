import { round } from './measure';

/** What a key of the stack's Redis holds (src/projection, src/llm, the API's limiters). */
export const KEY_KINDS = [
  'record',
  'result',
  'events',
  'live',
  'index',
  'ledger',
  'response',
  'provider-limit',
  'rate-limit',
  'hub',
  'other',
] as const;
export type KeyKind = (typeof KEY_KINDS)[number];

/** The kinds each decision has keys of: the rest are shared by all decisions. */
export const DECISION_KINDS: readonly KeyKind[] = [
  'record',
  'result',
  'events',
  'live',
  'ledger',
  'response',
];

export interface KeyOf {
  kind: KeyKind;
  /** The decision (workflow id) the key belongs to; null for shared keys. */
  decision: string | null;
}

/**
 * The kind of a key and its decision. Hash tags are ignored (`decision:{id}:events` reads as
 * `decision:id:events`), so the same patterns hold whether or not the keys carry them:
 * `decision:<id>` (record hash) and its `:result`, `:events`, `:live`; `index:…`;
 * `budget:<workflow>:<run>` (ledger); `llm:<workflow>:<run>:<activity>:<hash>` (stored answers);
 * `provider-limit:…`; `ratelimit:…` and `authfail:…` (rate-limiter-flexible); `events-hub:…`.
 */
export function classifyKey(key: string, prefix: string): KeyOf {
  const bare = (s: string) => s.replace(/[{}]/g, '');
  const plain = bare(key);
  const start = bare(prefix);
  if (!plain.startsWith(start)) return { kind: 'other', decision: null };
  const parts = plain.slice(start.length).split(':');
  const [head, id = null] = parts;
  const shared = (kind: KeyKind): KeyOf => ({ kind, decision: null });
  switch (head) {
    case 'decision': {
      if (!id) return shared('other');
      if (parts.length === 2) return { kind: 'record', decision: id };
      const suffix = parts.slice(2).join(':');
      const kind: KeyKind | undefined = (
        { result: 'result', events: 'events', live: 'live' } as const
      )[suffix as 'result' | 'events' | 'live'];
      return kind ? { kind, decision: id } : shared('other');
    }
    case 'budget':
      return id ? { kind: 'ledger', decision: id } : shared('other');
    case 'llm':
      return id ? { kind: 'response', decision: id } : shared('other');
    case 'index':
      return shared('index');
    case 'provider-limit':
      return shared('provider-limit');
    case 'ratelimit':
    case 'authfail':
      return shared('rate-limit');
    case 'events-hub':
      return shared('hub');
    default:
      return shared('other');
  }
}

/** One key as the bench read it from Redis. */
export interface KeySample {
  key: string;
  /** MEMORY USAGE (SAMPLES 0: every element counted). */
  bytes: number;
  /** Entries: a stream's XLEN, a sorted set's ZCARD, a hash's HLEN; 1 for a string. */
  entries: number;
  /** PTTL in ms: -1 without a TTL. */
  ttlMs: number;
}

/** What the keys of one kind add up to. */
export interface KindTotals {
  keys: number;
  bytes: number;
  entries: number;
  /** Keys without a TTL. */
  no_ttl: number;
  /** The shortest and longest TTL among the keys that have one, in seconds; null when none has. */
  ttl_s: { min: number; max: number } | null;
}

function emptyTotals(): KindTotals {
  return { keys: 0, bytes: 0, entries: 0, no_ttl: 0, ttl_s: null };
}

function add(totals: KindTotals, sample: KeySample): void {
  totals.keys += 1;
  totals.bytes += sample.bytes;
  totals.entries += sample.entries;
  if (sample.ttlMs < 0) {
    totals.no_ttl += 1;
    return;
  }
  const s = Math.round(sample.ttlMs / 1000);
  totals.ttl_s = totals.ttl_s
    ? { min: Math.min(totals.ttl_s.min, s), max: Math.max(totals.ttl_s.max, s) }
    : { min: s, max: s };
}

/**
 * The keys of the decisions in `decisions`, added up by kind, and the shared keys (indexes,
 * limits) by kind; keys of other decisions are left out.
 */
export function totalsByKind(
  samples: readonly KeySample[],
  prefix: string,
  decisions: ReadonlySet<string>,
): {
  decisions: Partial<Record<KeyKind, KindTotals>>;
  shared: Partial<Record<KeyKind, KindTotals>>;
} {
  const own: Partial<Record<KeyKind, KindTotals>> = {};
  const shared: Partial<Record<KeyKind, KindTotals>> = {};
  for (const sample of samples) {
    const { kind, decision } = classifyKey(sample.key, prefix);
    if (decision !== null && !decisions.has(decision)) continue;
    const into = decision === null ? shared : own;
    add((into[kind] ??= emptyTotals()), sample);
  }
  return { decisions: own, shared };
}

/** A kind's keys per decision: how many keys, bytes and entries each decision has, on average. */
export interface PerDecision {
  keys: number;
  bytes: number;
  entries: number;
}

/** Totals divided among `count` decisions. */
export function perDecision(totals: KindTotals | undefined, count: number): PerDecision {
  if (!totals || count === 0) return { keys: 0, bytes: 0, entries: 0 };
  return {
    keys: round(totals.keys / count, 2),
    bytes: Math.round(totals.bytes / count),
    entries: round(totals.entries / count, 1),
  };
}

/** What a deployment's Redis must hold and do at a steady rate of decisions. */
export interface RedisPlanInput {
  /** Decisions finished a second, on average. */
  perSecond: number;
  /** DECISION_TTL_SECONDS: how long a finished decision's keys stay. */
  ttlSeconds: number;
  /** How long a decision runs, start to end. */
  decisionSeconds: number;
  /** Bytes Redis holds per finished decision (its keys and index entries). */
  finishedBytes: number;
  /** Bytes per running decision. */
  runningBytes: number;
  /** Redis CPU per decision, ms. */
  cpuMsPerDecision: number;
  /** Commands clients send per decision. */
  commandsPerDecision: number;
}

export interface RedisPlan {
  /** Finished decisions kept at once: those of the last TTL. */
  kept: number;
  /** Decisions running at once (Little's law). */
  running: number;
  /** Their bytes, before Redis's own overhead and fragmentation. */
  bytes: number;
  /** Cores of Redis busy: more than 1 is more than one Redis's command thread can give. */
  cores: number;
  commandsPerSecond: number;
}

/** What a steady rate of decisions asks of Redis: keys kept for the TTL, and work per second. */
export function redisPlan(p: RedisPlanInput): RedisPlan {
  const kept = p.perSecond * p.ttlSeconds;
  const running = p.perSecond * p.decisionSeconds;
  return {
    kept: Math.round(kept),
    running: Math.round(running),
    bytes: Math.round(kept * p.finishedBytes + running * p.runningBytes),
    cores: round((p.perSecond * p.cpuMsPerDecision) / 1000, 3),
    commandsPerSecond: Math.round(p.perSecond * p.commandsPerDecision),
  };
}

/** How many finished decisions `gib` GiB holds at `bytesPerDecision` each. */
export function decisionsPerGib(bytesPerDecision: number, gib: number): number {
  return bytesPerDecision > 0 ? Math.floor((gib * 2 ** 30) / bytesPerDecision) : Infinity;
}

/** The steady rate (decisions a second) that keeps `gib` GiB full for a TTL of `ttlSeconds`. */
export function perSecondForGib(bytesPerDecision: number, gib: number, ttlSeconds: number): number {
  return decisionsPerGib(bytesPerDecision, gib) / ttlSeconds;
}

/** Decisions a second that keep one core of Redis busy, at `cpuMsPerDecision`. */
export function perSecondPerCore(cpuMsPerDecision: number): number {
  return cpuMsPerDecision > 0 ? 1000 / cpuMsPerDecision : Infinity;
}

/** Calls and time (µs) of each command, from `INFO commandstats` (commands scripts run count too). */
export function commandStats(info: string): Record<string, { calls: number; usec: number }> {
  const out: Record<string, { calls: number; usec: number }> = {};
  for (const line of info.split(/\r?\n/)) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line);
    if (m) out[m[1]!] = { calls: Number(m[2]), usec: Number(m[3]) };
  }
  return out;
}
