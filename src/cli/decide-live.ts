/**
 * The live text of the `decide` terminal client: what a running phase's model is writing, from
 * the stream's live events (`phase.attempt`, `phase.delta`), as a few lines that fit the
 * terminal. Pure like decide-render.ts: events in, state and lines out.
 */

import stringWidth from 'string-width';
import type { DecisionStreamEvent } from '../domain/events';
import {
  LIVE_EVENT_DATA,
  isLiveEventType,
  type LiveEventData,
  type LiveEventType,
} from '../domain/live';
import type { PhaseName } from '../domain/phases';
import { terminalSafe, terminalText } from './terminal-text';

export type LiveStreamEvent = {
  [T in LiveEventType]: { type: T; data: LiveEventData<T> };
}[LiveEventType];

/**
 * Reads a live event; null for any other type, and for live data this client cannot read: what
 * the model is writing is shown as a courtesy, and no fault in it stops following the decision.
 * `text` is kept as sent (offsets count it), so it is made safe where it is shown.
 */
export function parseLiveEvent(type: string | undefined, data: string): LiveStreamEvent | null {
  if (type === undefined || !isLiveEventType(type)) return null;
  let json: unknown;
  try {
    json = JSON.parse(data) as unknown;
  } catch {
    return null;
  }
  return readLiveEvent(type, json);
}

/** A live event whose data the client has parsed, read as parseLiveEvent reads it. */
export function readLiveEvent(type: string, json: unknown): LiveStreamEvent | null {
  if (!isLiveEventType(type)) return null;
  if (type === 'phase.attempt') {
    const parsed = LIVE_EVENT_DATA[type].safeParse(json);
    return parsed.success ? { type, data: parsed.data } : null;
  }
  const parsed = LIVE_EVENT_DATA[type].safeParse(json);
  if (!parsed.success) return null;
  return { type, data: { ...parsed.data, partial: terminalSafe(parsed.data.partial) } };
}

/** What one model call of a running phase (or of one information need) has written so far. */
interface LiveCall {
  phase: PhaseName;
  need: string | null;
  attempt: number;
  call: number;
  /** Where `text` starts in the call's answer: past 0 once deltas were missed. */
  from: number;
  text: string;
  /** The answer parsed so far, as the server sent it with the latest delta. */
  partial: unknown;
  /** The state's clock when it last changed. */
  touched: number;
}

export interface LiveState {
  /** By phase and need, in the order they began. */
  calls: ReadonlyMap<string, LiveCall>;
  /** Phases that ended: a live event of theirs that comes late is not shown again. */
  ended: ReadonlySet<PhaseName>;
  clock: number;
}

export const NO_LIVE_TEXT: LiveState = { calls: new Map(), ended: new Set(), clock: 0 };

const keyOf = (phase: PhaseName, need: string | null) => `${phase}\u0000${need ?? ''}`;

function withoutPhase(state: LiveState, phase: PhaseName, ended: boolean): LiveState {
  const calls = new Map([...state.calls].filter(([, c]) => c.phase !== phase));
  const endedPhases = new Set(state.ended);
  if (ended) endedPhases.add(phase);
  else endedPhases.delete(phase);
  return { calls, ended: endedPhases, clock: state.clock };
}

function withCall(state: LiveState, call: Omit<LiveCall, 'touched'>): LiveState {
  const clock = state.clock + 1;
  const calls = new Map(state.calls);
  calls.set(keyOf(call.phase, call.need), { ...call, touched: clock });
  return { calls, ended: state.ended, clock };
}

/**
 * The live text after an event. A phase's start clears what an earlier run of it left, its end
 * clears its text for good; a new attempt or a new call (a repair round) starts afresh, and a
 * delta continues its call's text where its offset says (after a gap, from there).
 */
export function liveAfter(
  state: LiveState,
  event: DecisionStreamEvent | LiveStreamEvent,
): LiveState {
  switch (event.type) {
    case 'phase.started':
      return withoutPhase(state, event.data.phase, false);
    case 'phase.completed':
    case 'phase.failed':
      return withoutPhase(state, event.data.phase, true);
    case 'decision.completed':
    case 'decision.failed':
    case 'decision.cancelled':
      return { ...NO_LIVE_TEXT, clock: state.clock };
    case 'phase.attempt': {
      const { phase, need, attempt } = event.data;
      const current = state.calls.get(keyOf(phase, need));
      if (state.ended.has(phase) || (current && current.attempt >= attempt)) return state;
      return withCall(state, { phase, need, attempt, call: 0, from: 0, text: '', partial: null });
    }
    case 'phase.delta': {
      const { phase, need, attempt, call, offset, text, partial } = event.data;
      if (state.ended.has(phase)) return state;
      const current = state.calls.get(keyOf(phase, need));
      if (
        current &&
        (attempt < current.attempt || (attempt === current.attempt && call < current.call))
      ) {
        return state;
      }
      const same = current && current.attempt === attempt && current.call === call;
      const end = same ? current.from + current.text.length : 0;
      const next =
        same && offset >= current.from && offset <= end
          ? { from: current.from, text: current.text.slice(0, offset - current.from) + text }
          : { from: offset, text };
      return withCall(state, { phase, need, attempt, call, ...next, partial });
    }
    default:
      return state;
  }
}

/** Text as one line: no controls, whitespace runs as one space. */
function oneLine(text: string): string {
  return terminalText(text).replace(/\s+/g, ' ').trim();
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A field of an answer as lines, `key: value`; a list of plain values on one line. */
function fieldLines(value: unknown, key: string | null): string[] {
  const label = (text: string) => (key === null ? text : `${key.replace(/_/g, ' ')}: ${text}`);
  if (typeof value === 'string') return [label(oneLine(value))];
  if (typeof value === 'number' || typeof value === 'boolean') return [label(String(value))];
  if (Array.isArray(value)) {
    const plain = value.every((v) => typeof v !== 'object' || v === null);
    if (plain) {
      const items = value.filter((v) => v !== null).map((v) => oneLine(String(v)));
      return items.length > 0 ? [label(items.join(' · '))] : [];
    }
    return value.flatMap((v) => fieldLines(v, isObject(v) ? null : key));
  }
  if (isObject(value)) return Object.entries(value).flatMap(([k, v]) => fieldLines(v, k));
  return [];
}

/**
 * What a call has written, readably: the fields of the answer parsed so far, one a line, in the
 * order the model writes them; the raw text when there is no parse (after missed deltas).
 */
function readable(call: LiveCall): string[] {
  if (isObject(call.partial)) {
    const lines = fieldLines(call.partial, null).map((l) => l.trimEnd());
    if (lines.length > 0) return lines;
  }
  const raw = oneLine(call.text);
  if (!raw) return [];
  return [call.from > 0 ? `…${raw}` : raw];
}

const segmenter = new Intl.Segmenter();

function graphemes(text: string): string[] {
  return Array.from(segmenter.segment(text), (s) => s.segment);
}

/** The columns a line takes on a terminal (wide characters count two, combining marks none). */
export function columns(text: string): number {
  return stringWidth(text);
}

/** A line wrapped at spaces to `width` columns; a word wider than that is broken where it must. */
export function wrapColumns(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  let used = 0;
  const breakLine = () => {
    lines.push(line);
    line = '';
    used = 0;
  };
  for (const word of text.split(' ').filter(Boolean)) {
    const w = columns(word);
    if (used > 0 && used + 1 + w <= width) {
      line += ` ${word}`;
      used += 1 + w;
      continue;
    }
    if (used > 0) breakLine();
    if (w <= width) {
      line = word;
      used = w;
      continue;
    }
    for (const g of graphemes(word)) {
      const gw = columns(g);
      if (used > 0 && used + gw > width) breakLine();
      line += g;
      used += gw;
    }
  }
  if (used > 0 || lines.length === 0) lines.push(line);
  return lines;
}

/** The end of a line in at most `width` columns, `…` in front when its start is cut. */
export function tailColumns(text: string, width: number): string {
  if (columns(text) <= width) return text;
  const kept: string[] = [];
  let used = 1;
  for (const g of graphemes(text).reverse()) {
    const gw = columns(g);
    if (used + gw > width) break;
    kept.unshift(g);
    used += gw;
  }
  return `…${kept.join('')}`;
}

const INDENT = '  ';
/** Narrower than this, lines are cut anyway: a terminal that narrow shows nothing legible. */
const MIN_WIDTH = 20;
/** Retrieval answers each information need at once (six at most): one line for each. */
const MAX_PARALLEL = 6;

/**
 * The live text as terminal lines of at most `width` columns: for one call, the last `lines`
 * lines of what it wrote, so the text being written is the bottom line; for calls side by side
 * (retrieval's needs), one line each, the end of what it wrote after its need's id.
 */
export function liveLines(state: LiveState, width: number, lines = 3): string[] {
  const calls = [...state.calls.values()];
  const room = Math.max(MIN_WIDTH, width) - INDENT.length;
  if (calls.length === 0) return [];
  if (calls.length === 1) {
    return readable(calls[0]!)
      .flatMap((l) => wrapColumns(l, room))
      .slice(-lines)
      .map((l) => INDENT + l);
  }
  const latest = new Set([...calls].sort((a, b) => b.touched - a.touched).slice(0, MAX_PARALLEL));
  return calls
    .filter((c) => latest.has(c))
    .map((c) => {
      const name = `${c.need ?? c.phase}: `;
      return INDENT + name + tailColumns(readable(c).at(-1) ?? '', room - columns(name));
    });
}
