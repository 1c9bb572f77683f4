/**
 * Pure text rendering for the `decide` terminal client: wire events in, lines out. No I/O here,
 * so every format is unit-tested without a server or a terminal.
 */

import { terminalSafe, terminalText } from './terminal-text';
import { DECISION_EVENT_TYPES } from '../domain/decision';

/** RFC 9457 problem details, as the API sends them (fields may be missing from a proxy's reply). */
export interface Problem {
  type?: string;
  title?: string;
  status: number;
  detail?: string;
  errors?: { path: string; message: string }[];
}

export interface DecisionError {
  phase: string | null;
  type: string;
  message: string;
}

export interface DecisionUsage {
  model_calls: number;
  input_tokens: number;
  output_tokens: number;
  latency_ms: number;
}

export interface CompiledDecision {
  title: string;
  decision: string;
  summary: string;
  rationale: string;
  alternatives_considered: { name: string; weighted_score: number }[];
  risks: { risk: string; mitigation: string }[];
  next_steps: string[];
  open_questions: string[];
}

export interface DecisionResult {
  query: string;
  decision: CompiledDecision;
  phases: Record<string, unknown>;
  usage: DecisionUsage;
}

export type DecisionEvent =
  | { type: 'decision.started'; process_id: string; status: string }
  | { type: 'phase.started'; phase: string; title: string; index: number }
  | {
      type: 'phase.completed';
      phase: string;
      title: string;
      index: number;
      duration_ms: number | null;
      output: unknown;
    }
  | {
      type: 'phase.failed';
      phase: string;
      title: string;
      index: number;
      error: { type: string; message: string };
    }
  | { type: 'review.requested'; phase: string; draft: unknown }
  | { type: 'review.received'; approved: boolean; feedback: string | null }
  | { type: 'review.timed_out' }
  | { type: 'decision.completed'; status: 'completed'; result: unknown }
  | { type: 'decision.failed'; status: 'failed'; error: DecisionError }
  | { type: 'decision.cancelled'; status: 'cancelled' };

export type TerminalEvent = Extract<
  DecisionEvent,
  { type: 'decision.completed' | 'decision.failed' | 'decision.cancelled' }
>;

export function isTerminalEvent(event: DecisionEvent): event is TerminalEvent {
  return (
    event.type === 'decision.completed' ||
    event.type === 'decision.failed' ||
    event.type === 'decision.cancelled'
  );
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: unknown, fallback = ''): string {
  return typeof value === 'string' ? value : fallback;
}

function num(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? (value as unknown[]) : [];
}

function errorOf(value: unknown): { type: string; message: string } {
  const error = isObject(value) ? value : {};
  return { type: str(error.type, 'Error'), message: str(error.message, 'unknown error') };
}

/**
 * Reads a JSON document the API sent. Its strings carry the query, the context, model output and
 * error messages, so terminal controls are stripped here, where they enter: text and --json output
 * alike print only what is left.
 */
export function readJson(text: string): unknown {
  return terminalSafe(JSON.parse(text) as unknown);
}

const KNOWN_EVENTS: ReadonlySet<string> = new Set(DECISION_EVENT_TYPES);

/**
 * Turns one SSE message into an event. Unknown event types give null so that a newer server can
 * add events without breaking older clients; a known type with unreadable data is an error.
 */
export function parseEvent(type: string | undefined, data: string): DecisionEvent | null {
  if (type === undefined || !KNOWN_EVENTS.has(type)) return null;
  let parsed: unknown;
  try {
    parsed = readJson(data);
  } catch {
    throw new Error(`The server sent a ${type} event whose data is not JSON`);
  }
  const d = isObject(parsed) ? parsed : {};
  const phase = {
    phase: str(d.phase),
    title: str(d.title, str(d.phase)),
    index: num(d.index) ?? 0,
  };
  switch (type) {
    case 'decision.started':
      return { type, process_id: str(d.process_id), status: str(d.status) };
    case 'phase.started':
      return { type, ...phase };
    case 'phase.completed':
      return { type, ...phase, duration_ms: num(d.duration_ms), output: d.output };
    case 'phase.failed':
      return { type, ...phase, error: errorOf(d.error) };
    case 'review.requested':
      return { type, phase: str(d.phase), draft: d.draft };
    case 'review.received':
      return {
        type,
        approved: d.approved === true,
        feedback: typeof d.feedback === 'string' ? d.feedback : null,
      };
    case 'review.timed_out':
      return { type };
    case 'decision.completed':
      return { type, status: 'completed', result: d.result };
    case 'decision.failed': {
      const error = isObject(d.error) ? d.error : {};
      return {
        type,
        status: 'failed',
        error: {
          phase: typeof error.phase === 'string' ? error.phase : null,
          ...errorOf(error),
        },
      };
    }
    case 'decision.cancelled':
      return { type, status: 'cancelled' };
    default:
      return null;
  }
}

/** Reads an error body: problem+json when the API sent it, else whatever text came back. */
export function toProblem(status: number, reason: string, body: string): Problem {
  // A reason phrase may carry bytes 0x80-0xFF, which decode to C1 controls.
  const statusText = terminalText(reason);
  try {
    const parsed = readJson(body);
    if (isObject(parsed)) {
      const errors = list(parsed.errors)
        .filter(isObject)
        .map((e) => ({ path: str(e.path), message: str(e.message) }));
      return {
        type: str(parsed.type) || undefined,
        title: str(parsed.title) || undefined,
        status,
        detail: str(parsed.detail) || str(parsed.title) || statusText || undefined,
        ...(errors.length > 0 ? { errors } : {}),
      };
    }
  } catch {
    // Not JSON: a proxy's error page, say. Fall through and show its text.
  }
  const text = terminalText(body).trim().replace(/\s+/g, ' ');
  return { status, detail: text.slice(0, 200) || statusText || undefined };
}

export function formatProblem(problem: Problem): string {
  const lines = [`Error ${problem.status}: ${problem.detail ?? problem.title ?? 'request failed'}`];
  for (const error of problem.errors ?? []) {
    lines.push(error.path ? `  - ${error.path}: ${error.message}` : `  - ${error.message}`);
  }
  return `${lines.join('\n')}\n`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
}

function step(index: number, total: number): string {
  const width = String(total).length;
  return `[${String(index + 1).padStart(width)}/${total}]`;
}

export function decisionPath(api: string, id: string): string {
  return `${api}/decisions/${encodeURIComponent(id)}`;
}

/** How to answer a review from a shell; the key itself is never printed, only where to find it. */
export function reviewInstructions(
  api: string,
  id: string,
  options: { auth?: boolean; draft?: unknown } = {},
): string {
  const auth = options.auth ? ` -H "Authorization: Bearer $DECISIONS_API_KEY"` : '';
  const curl = (body: string) =>
    `curl -X POST ${decisionPath(api, id)}/review -H 'Content-Type: application/json'${auth} -d '${body}'`;
  const lines = [`Decision ${id} awaits your review of its draft.`];
  const draft = isObject(options.draft) ? options.draft : {};
  const recommended = str(draft.recommended);
  if (recommended) lines.push(`  Draft recommends: ${recommended}`);
  lines.push(`  Approve:        ${curl('{"approve":true}')}`);
  lines.push(`  Ask for change: ${curl('{"feedback":"..."}')}`);
  return `${lines.join('\n')}\n`;
}

export interface EventContext {
  api: string;
  id: string;
  total: number;
  auth?: boolean;
}

/** One plain line (or a few) per event, for a log or a pipe; null when there is nothing to say. */
export function describeEvent(event: DecisionEvent, ctx: EventContext): string | null {
  switch (event.type) {
    case 'decision.started':
      return `Decision ${ctx.id} started\n`;
    case 'phase.started':
      return `${step(event.index, ctx.total)} ${event.title}: started\n`;
    case 'phase.completed': {
      const took = event.duration_ms === null ? '' : ` in ${formatDuration(event.duration_ms)}`;
      return `${step(event.index, ctx.total)} ${event.title}: completed${took}\n`;
    }
    case 'phase.failed':
      return `${step(event.index, ctx.total)} ${event.title}: failed (${event.error.type}: ${event.error.message})\n`;
    case 'review.requested':
      return reviewInstructions(ctx.api, ctx.id, { auth: ctx.auth, draft: event.draft });
    case 'review.received':
      return event.approved
        ? 'Review received: draft approved\n'
        : `Review received: changes requested${event.feedback ? `: ${event.feedback}` : ''}\n`;
    case 'review.timed_out':
      return 'Review timed out; the decision continues without it\n';
    default:
      return null;
  }
}

/** Where the progress bar stands after an event: value out of the phase count, and its label. */
export function progressAfter(
  event: DecisionEvent,
  current: { value: number; label: string },
  total: number,
): { value: number; label: string } {
  switch (event.type) {
    case 'decision.started':
      return { value: current.value, label: 'Starting' };
    case 'phase.started':
      return { value: Math.max(current.value, event.index), label: event.title };
    case 'phase.completed':
      return { value: Math.max(current.value, event.index + 1), label: event.title };
    case 'review.requested':
      return { value: current.value, label: 'Awaiting review' };
    case 'decision.completed':
      return { value: total, label: 'Done' };
    default:
      return current;
  }
}

/** Wraps text at word boundaries to `width` columns, every line indented by `indent`. */
export function wrap(text: string, width: number, indent = ''): string {
  const lines: string[] = [];
  for (const paragraph of text.split('\n')) {
    let line = '';
    for (const word of paragraph.split(/\s+/).filter(Boolean)) {
      if (line && indent.length + line.length + 1 + word.length > width) {
        lines.push(indent + line);
        line = word;
      } else {
        line = line ? `${line} ${word}` : word;
      }
    }
    lines.push(indent + line);
  }
  return lines.join('\n');
}

function section(heading: string, body: string[]): string[] {
  return body.length === 0 ? [] : ['', heading, ...body];
}

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function formatUsage(usage: unknown): string | null {
  if (!isObject(usage)) return null;
  const parts: string[] = [];
  const calls = num(usage.model_calls);
  const input = num(usage.input_tokens);
  const output = num(usage.output_tokens);
  const latency = num(usage.latency_ms);
  if (calls !== null) parts.push(`${integer.format(calls)} model call${calls === 1 ? '' : 's'}`);
  if (input !== null) parts.push(`${integer.format(input)} input tokens`);
  if (output !== null) parts.push(`${integer.format(output)} output tokens`);
  if (latency !== null) parts.push(`${formatDuration(latency)} model time`);
  return parts.length > 0 ? `Usage: ${parts.join(', ')}` : null;
}

/**
 * The final decision as readable text. Reads the result leniently: a field the server left out is
 * skipped rather than shown as "undefined".
 */
export function renderResult(result: unknown, width = 100): string {
  const r = isObject(result) ? result : {};
  const d = isObject(r.decision) ? r.decision : {};
  const para = (value: unknown) => (str(value) ? [wrap(str(value), width, '  ')] : []);
  const bullets = (values: unknown[], mark = '-') =>
    values
      .filter((v): v is string => typeof v === 'string')
      .map((v, i) => wrap(`${mark === '#' ? `${i + 1}.` : mark} ${v}`, width, '  '));

  const alternatives = list(d.alternatives_considered)
    .filter(isObject)
    .map((a) => ({ name: str(a.name), score: num(a.weighted_score) }));
  const nameWidth = Math.max(0, ...alternatives.map((a) => a.name.length));
  const risks = list(d.risks)
    .filter(isObject)
    .flatMap((risk) => [
      wrap(`- ${str(risk.risk)}`, width, '  '),
      ...(str(risk.mitigation) ? [wrap(`mitigation: ${str(risk.mitigation)}`, width, '    ')] : []),
    ]);

  const title = str(d.title);
  const lines = [
    ...(title ? [title, '='.repeat(Math.min(title.length, width))] : []),
    ...(str(r.query) ? [wrap(`Question: ${str(r.query)}`, width)] : []),
    ...section('Decision', para(d.decision)),
    ...section('Summary', para(d.summary)),
    ...section('Rationale', para(d.rationale)),
    ...section(
      'Alternatives considered (weighted score)',
      alternatives.map((a) =>
        `  ${a.name.padEnd(nameWidth)}  ${a.score === null ? '   -' : a.score.toFixed(2)}`.trimEnd(),
      ),
    ),
    ...section('Risks', risks),
    ...section('Next steps', bullets(list(d.next_steps), '#')),
    ...section('Open questions', bullets(list(d.open_questions))),
  ];
  const usage = formatUsage(r.usage);
  if (usage) lines.push('', usage);
  while (lines[0] === '') lines.shift();
  return `${lines.join('\n')}\n`;
}

export function renderFailure(id: string, error: DecisionError): string {
  const where = error.phase ? ` in phase ${error.phase}` : '';
  return `Decision ${id} failed${where}\n  ${error.type}: ${error.message}\n`;
}

export function renderCancelled(id: string): string {
  return `Decision ${id} was cancelled\n`;
}
