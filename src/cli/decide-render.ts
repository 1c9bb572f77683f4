/**
 * Pure text rendering for the `decide` terminal client: wire events in, lines out. No I/O here,
 * so every format is unit-tested without a server or a terminal.
 */

import { z } from 'zod';
import { ProblemDetailsSchema } from '../api/problem';
import { DECISION_EVENT_TYPES, type DecisionEventType } from '../domain/decision';
import { DECISION_EVENT_DATA, type DecisionStreamEvent } from '../domain/events';
import type { LiveEventData } from '../domain/live';
import { CompileResultOutput } from '../domain/outputs';
import { phaseNamed } from '../domain/phases';
import { DecisionResultSchema, type DecisionErrorSchema } from '../domain/schemas';
import { terminalSafe, terminalText } from './terminal-text';

/** Problem details as the client reads them: a proxy's reply may lack any field but the status. */
export type Problem = Partial<Omit<z.output<typeof ProblemDetailsSchema>, 'status'>> & {
  status: number;
};

export type DecisionError = z.output<typeof DecisionErrorSchema>;

/**
 * A reader of an object schema that keeps each field that matches its schema and leaves out the
 * rest (and reads anything that is no object as {}): for text shown to a human, where what is
 * there is worth more than a refusal.
 */
function lenient<Shape extends Record<string, z.ZodType>>(schema: z.ZodObject<Shape>) {
  const fields = Object.fromEntries(
    Object.entries(schema.shape).map(([key, field]) => [key, field.optional().catch(undefined)]),
  );
  return z.object(fields).catch({}) as unknown as z.ZodType<Partial<z.output<z.ZodObject<Shape>>>>;
}

const UsageReader = lenient(DecisionResultSchema.shape.usage);
const ResultReader = lenient(
  DecisionResultSchema.pick({ query: true }).extend({
    decision: lenient(CompileResultOutput),
    usage: UsageReader,
  }),
);
const ProblemReader = lenient(ProblemDetailsSchema);

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
 * Turns one SSE message into an event, its data checked against the domain's schema of its type.
 * Unknown event types give null so that a newer server can add events without breaking older
 * clients (and unknown keys are dropped); a known type whose data does not match is an error.
 */
export function parseEvent(type: string | undefined, data: string): DecisionStreamEvent | null {
  if (type === undefined || !KNOWN_EVENTS.has(type)) return null;
  let json: unknown;
  try {
    json = JSON.parse(data) as unknown;
  } catch {
    throw new Error(`The server sent a ${type} event whose data is not JSON`);
  }
  return readEvent(type, json);
}

/** An event whose data the client has parsed, checked as parseEvent checks it. */
export function readEvent(type: string, json: unknown): DecisionStreamEvent | null {
  if (!KNOWN_EVENTS.has(type)) return null;
  const known = type as DecisionEventType;
  // Checked before terminal controls are stripped, so that no text the server sent fails its
  // schema only because the client emptied it.
  const parsed = DECISION_EVENT_DATA[known].safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.length ? issue.path.join('.') : '(the data itself)';
    throw new Error(
      `The server sent a ${known} event whose data does not match its schema: ` +
        `${path}: ${issue?.message ?? 'invalid'}`,
    );
  }
  return { type: known, data: terminalSafe(parsed.data) } as DecisionStreamEvent;
}

/** Reads an error body: problem+json when the API sent it, else whatever text came back. */
export function toProblem(status: number, reason: string, body: string): Problem {
  // A reason phrase may carry bytes 0x80-0xFF, which decode to C1 controls.
  const statusText = terminalText(reason);
  let parsed: unknown = null;
  try {
    parsed = readJson(body);
  } catch {
    // Not JSON: a proxy's error page, say; its text is shown below.
  }
  if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
    const problem = ProblemReader.parse(parsed);
    return {
      type: problem.type || undefined,
      title: problem.title || undefined,
      status,
      detail: problem.detail || problem.title || statusText || undefined,
      ...(problem.errors?.length ? { errors: problem.errors } : {}),
    };
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
  options: { auth?: boolean; draft?: { recommended?: string } } = {},
): string {
  const auth = options.auth ? ` -H "Authorization: Bearer $DECISIONS_API_KEY"` : '';
  const curl = (body: string) =>
    `curl -X POST ${decisionPath(api, id)}/review -H 'Content-Type: application/json'${auth} -d '${body}'`;
  const lines = [`Decision ${id} awaits your review of its draft.`];
  const recommended = options.draft?.recommended;
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
export function describeEvent(event: DecisionStreamEvent, ctx: EventContext): string | null {
  switch (event.type) {
    case 'decision.started':
      return `Decision ${ctx.id} started\n`;
    case 'phase.started':
      return `${step(event.data.index, ctx.total)} ${event.data.title}: started\n`;
    case 'phase.completed': {
      const { index, title, duration_ms } = event.data;
      return `${step(index, ctx.total)} ${title}: completed in ${formatDuration(duration_ms)}\n`;
    }
    case 'phase.failed': {
      const { index, title, error } = event.data;
      return `${step(index, ctx.total)} ${title}: failed (${error.type}: ${error.message})\n`;
    }
    case 'review.requested':
      return reviewInstructions(ctx.api, ctx.id, { auth: ctx.auth, draft: event.data.draft });
    case 'review.received': {
      const { approved, feedback } = event.data;
      return approved
        ? 'Review received: draft approved\n'
        : `Review received: changes requested${feedback ? `: ${feedback}` : ''}\n`;
    }
    case 'review.timed_out':
      return 'Review timed out; the decision continues without it\n';
    default:
      return null;
  }
}

/** The line for a retried attempt of a phase, which no durable event tells. */
export function describeAttempt(
  data: LiveEventData<'phase.attempt'>,
  ctx: Pick<EventContext, 'total'>,
): string {
  const need = data.need === null ? '' : ` need ${terminalText(data.need)}`;
  const { title } = phaseNamed(data.phase);
  return `${step(data.index, ctx.total)} ${title}: retrying${need}, attempt ${data.attempt}\n`;
}

/** Where the progress bar stands after an event: value out of the phase count, and its label. */
export function progressAfter(
  event: DecisionStreamEvent,
  current: { value: number; label: string },
  total: number,
): { value: number; label: string } {
  switch (event.type) {
    case 'decision.started':
      return { value: current.value, label: 'Starting' };
    case 'phase.started':
      return { value: Math.max(current.value, event.data.index), label: event.data.title };
    case 'phase.completed':
      return { value: Math.max(current.value, event.data.index + 1), label: event.data.title };
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

/** The usage line of a result; null when the usage says nothing readable. */
function formatUsage(usage: unknown): string | null {
  const { model_calls: calls, input_tokens, output_tokens, latency_ms } = UsageReader.parse(usage);
  const parts: string[] = [];
  if (calls !== undefined) {
    parts.push(`${integer.format(calls)} model call${calls === 1 ? '' : 's'}`);
  }
  if (input_tokens !== undefined) parts.push(`${integer.format(input_tokens)} input tokens`);
  if (output_tokens !== undefined) parts.push(`${integer.format(output_tokens)} output tokens`);
  if (latency_ms !== undefined) parts.push(`${formatDuration(latency_ms)} model time`);
  return parts.length > 0 ? `Usage: ${parts.join(', ')}` : null;
}

/**
 * The final decision as readable text. Reads the result leniently: a field the server left out
 * (or sent in another shape) is skipped rather than shown as "undefined".
 */
export function renderResult(result: unknown, width = 100): string {
  const r = ResultReader.parse(result);
  const d = r.decision ?? {};
  const para = (value: string | undefined) => (value ? [wrap(value, width, '  ')] : []);
  const bullets = (values: string[] = [], mark = '-') =>
    values.map((v, i) => wrap(`${mark === '#' ? `${i + 1}.` : mark} ${v}`, width, '  '));

  const alternatives = d.alternatives_considered ?? [];
  const nameWidth = Math.max(0, ...alternatives.map((a) => a.name.length));
  const risks = (d.risks ?? []).flatMap(({ risk, mitigation }) => [
    wrap(`- ${risk}`, width, '  '),
    ...(mitigation ? [wrap(`mitigation: ${mitigation}`, width, '    ')] : []),
  ]);

  const lines = [
    ...(d.title ? [d.title, '='.repeat(Math.min(d.title.length, width))] : []),
    ...(r.query ? [wrap(`Question: ${r.query}`, width)] : []),
    ...section('Decision', para(d.decision)),
    ...section('Summary', para(d.summary)),
    ...section('Rationale', para(d.rationale)),
    ...section(
      'Alternatives considered (weighted score)',
      alternatives.map((a) =>
        `  ${a.name.padEnd(nameWidth)}  ${a.weighted_score.toFixed(2)}`.trimEnd(),
      ),
    ),
    ...section('Risks', risks),
    ...section('Next steps', bullets(d.next_steps, '#')),
    ...section('Open questions', bullets(d.open_questions)),
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
