import type { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { MultiBar, type SingleBar } from 'cli-progress';
import { Command, CommanderError } from 'commander';
import {
  DecisionApiError,
  createDecisionClient,
  type Decision,
  type DecisionClient,
} from '../client';
import {
  decisionPath,
  describeAttempt,
  describeEvent,
  formatProblem,
  progressAfter,
  readEvent,
  renderCancelled,
  renderFailure,
  renderResult,
  reviewInstructions,
  toProblem,
  type EventContext,
} from './decide-render';
import { isEndEvent, type DecisionEndEvent, type DecisionStreamEvent } from '../domain/events';
import { isLiveEventType } from '../domain/live';
import { DecideConfigSchema, loadDecideConfig, type DecideConfig } from '../config/cli';
import { terminalSafe, terminalText } from './terminal-text';
import {
  NO_LIVE_TEXT,
  liveAfter,
  liveLines,
  readLiveEvent,
  type LiveStreamEvent,
} from './decide-live';

const PHASE_COUNT = 10;
const MAX_RECONNECTS = 5;

export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Whether stdout is a terminal: a live bar if so, plain lines if not. */
  isTTY: boolean;
  /** DECISIONS_API_URL and DECISIONS_API_KEY, the defaults of --api and --api-key; unset, none. */
  config?: DecideConfig;
  /** Aborting stops following (Ctrl-C); the decision itself keeps running on the server. */
  signal?: AbortSignal;
  /** Waits between reconnects; tests pass one that does not wait. */
  sleep?: (ms: number) => Promise<void>;
}

interface Options {
  api: string;
  apiKey: string | undefined;
  review: boolean;
  context: string | undefined;
  json: boolean;
  quiet: boolean;
  follow: boolean;
  question: string;
}

function baseUrl(text: string): string | null {
  try {
    const url = new URL(text);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
    return url.href.replace(/\/+$/, '');
  } catch {
    return null;
  }
}

/** Parses the command line; a CommanderError means usage was shown (help) or was wrong. */
function parseOptions(argv: readonly string[], io: Io): Options {
  const config = io.config ?? DecideConfigSchema.parse({});
  const program: Command = new Command('decide')
    .description('Ask the decision backend a question and follow it through its ten phases.')
    .argument('<question...>', 'the question to decide (quoted, or as several words)')
    .option('--api <url>', 'API base URL (env DECISIONS_API_URL)', config.DECISIONS_API_URL)
    .option('--api-key <key>', 'bearer token for the API (env DECISIONS_API_KEY)')
    .option('--review', 'pause for a human review of the draft before the result is compiled')
    .option('--context <text>', 'background the agents should take into account')
    .option('--json', 'no progress; print only the final result as JSON (for scripts)')
    .option('--quiet', "no live text of the running phase's model under the progress bar")
    .option('--no-follow', 'create the decision, print its id and return')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    });
  program.parse(argv, { from: 'user' });

  const opts = program.opts<{
    api: string;
    apiKey?: string;
    review?: boolean;
    context?: string;
    json?: boolean;
    quiet?: boolean;
    follow: boolean;
  }>();
  const question = (program.processedArgs[0] as string[]).join(' ').trim();
  if (!question) program.error('error: the question must not be empty');
  const api = baseUrl(opts.api);
  if (api === null) program.error(`error: --api must be an http(s) URL, got '${opts.api}'`);
  const context = opts.context?.trim();
  return {
    api,
    apiKey: opts.apiKey || config.DECISIONS_API_KEY || undefined,
    review: opts.review === true,
    context: context || undefined,
    json: opts.json === true,
    quiet: opts.quiet === true,
    follow: opts.follow,
    question,
  };
}

/** An error in words for the terminal: messages can quote what a server or proxy sent. */
function describeError(err: unknown): string {
  if (!(err instanceof Error)) return terminalText(String(err), { multiline: true });
  // fetch reports "fetch failed" and hides the useful part (ECONNREFUSED, ...) in its cause.
  const cause: unknown = err.cause;
  const text =
    err instanceof TypeError && cause instanceof Error
      ? `${err.message} (${cause.message})`
      : err.message;
  return terminalText(text, { multiline: true });
}

/**
 * The client for the API at --api: a request that cannot reach it fails with a message that
 * says where it tried.
 */
function apiClient(options: Options, signal: AbortSignal | undefined): DecisionClient {
  return createDecisionClient({
    baseUrl: options.api,
    apiKey: options.apiKey,
    fetch: async (request) => {
      try {
        return await fetch(request);
      } catch (err) {
        if (signal?.aborted) throw err;
        throw new Error(`cannot reach the API at ${options.api}: ${describeError(err)}`, {
          cause: err,
        });
      }
    },
  });
}

/** An error the API answered, as the terminal shows it: the problem, or the text that came back. */
function problemOf(err: DecisionApiError) {
  const body = err.body === undefined ? '' : err.body;
  return toProblem(
    err.status,
    err.response.statusText,
    typeof body === 'string' ? body : JSON.stringify(body),
  );
}

/**
 * Follows the event stream to a terminal event, with the live events (what the running phase's
 * model writes) unless `deltas` is false. The client resumes a dropped connection and skips what
 * it has seen; each event's data is checked here against the domain's schema of its type.
 */
async function followEvents(
  api: DecisionClient,
  id: string,
  handlers: Pick<Progress, 'event' | 'live' | 'notice'>,
  options: { deltas: boolean; sleep: (ms: number) => Promise<void>; signal?: AbortSignal },
): Promise<{ end: DecisionEndEvent; sent: unknown }> {
  const events = api.events(id, {
    deltas: options.deltas,
    signal: options.signal,
    retries: MAX_RECONNECTS,
    sleep: options.sleep,
    onReconnect: ({ attempt, retries, reason }) =>
      handlers.notice(
        `Event stream lost (${terminalText(reason, { multiline: true })}); reconnecting (${attempt}/${retries})\n`,
      ),
  });
  for await (const { type, data } of events) {
    if (isLiveEventType(type)) {
      const live = readLiveEvent(type, data);
      if (live) handlers.live(live);
      continue;
    }
    const event = readEvent(type, data);
    if (!event) continue;
    handlers.event(event);
    // The end's data as sent, too: --json passes the result on whole, keys this client does not
    // know and text as the model wrote it included.
    if (isEndEvent(event)) return { end: event, sent: data };
  }
  throw new Error(`the event stream of decision ${id} ended before the decision did`);
}

interface Progress {
  event(event: DecisionStreamEvent): void;
  live(event: LiveStreamEvent): void;
  notice(text: string): void;
  stop(): void;
}

/**
 * The live bar; messages go through the bar's log so they print above it, not through it. Under
 * it, unless `live` is false, the running phase's live text: lines that are bars of their own,
 * made as the text needs them and kept until the phase ends, so that what is under the bar does
 * not jump when a call starts afresh.
 */
function barProgress(io: Io, ctx: EventContext, options: { live: boolean }): Progress {
  const bars = new MultiBar({
    stream: io.stdout,
    format: ' {bar} {value}/{total} phases | {duration_formatted} | {label}',
    barCompleteChar: '\u2588',
    barIncompleteChar: '\u2591',
    hideCursor: true,
    // Trims the bar to the terminal width but lets logged lines (the review curl commands) wrap.
    linewrap: true,
    // Redraw every tick so the elapsed time moves and the bar comes back after a logged line.
    forceRedraw: true,
  });
  let state = { value: 0, label: 'Waiting for the first phase' };
  const bar: SingleBar = bars.create(ctx.total, 0, { label: state.label });
  let live = NO_LIVE_TEXT;
  const lines: SingleBar[] = [];
  const lineFormat = (_options: unknown, _params: unknown, payload: { text: string }) =>
    payload.text;
  // One column short of the width: a line that fills the last column wraps on some terminals.
  const width = () => ((io.stdout as { columns?: number }).columns || 80) - 1;
  // Drawn at the bar's pace (its fps), not per delta: a frame shows the text as it is then.
  bars.on('update-pre', () => {
    const text = liveLines(live, width());
    while (lines.length < text.length) {
      lines.push(bars.create(0, 0, { text: '' }, { format: lineFormat }));
    }
    lines.forEach((line, i) => line.update({ text: text[i] ?? '' }));
  });
  // A redraw moves the cursor and writes each line: held and let go as one write, no flicker.
  const stdout = io.stdout as Partial<Pick<Writable, 'cork' | 'uncork'>>;
  bars.on('update-pre', () => stdout.cork?.());
  bars.on('update-post', () => stdout.uncork?.());
  const clearLive = () => {
    if (lines.length === 0) return;
    // From the bottom: each removal redraws and clears below the bars that are left.
    stdout.cork?.();
    for (let line = lines.pop(); line; line = lines.pop()) bars.remove(line);
    stdout.uncork?.();
  };
  const log = (text: string) => {
    bars.log(text);
    bars.update();
  };
  return {
    event(event) {
      state = progressAfter(event, state, ctx.total);
      bar.update(state.value, { label: state.label });
      if (options.live) {
        live = liveAfter(live, event);
        if (live.calls.size === 0) clearLive();
      }
      if (
        event.type === 'phase.failed' ||
        event.type === 'review.requested' ||
        event.type === 'review.received' ||
        event.type === 'review.timed_out'
      ) {
        const line = describeEvent(event, ctx);
        if (line) log(line);
      }
    },
    live(event) {
      if (options.live) live = liveAfter(live, event);
      if (event.type === 'phase.attempt') log(describeAttempt(event.data, ctx));
    },
    notice: log,
    stop() {
      live = NO_LIVE_TEXT;
      clearLive();
      bars.update();
      bars.stop();
    },
  };
}

/** Plain lines, for a log: no live text, but a retried attempt, which no durable event tells. */
function lineProgress(io: Io, ctx: EventContext): Progress {
  return {
    event(event) {
      const line = describeEvent(event, ctx);
      if (line) io.stdout.write(line);
    },
    live(event) {
      if (event.type === 'phase.attempt') io.stdout.write(describeAttempt(event.data, ctx));
    },
    notice: (text) => io.stderr.write(text),
    stop() {},
  };
}

/** --json: stdout carries only the result, but a pending review must still reach the human. */
function quietProgress(io: Io, ctx: EventContext): Progress {
  return {
    event(event) {
      if (event.type === 'review.requested') {
        io.stderr.write(
          reviewInstructions(ctx.api, ctx.id, { auth: ctx.auth, draft: event.data.draft }),
        );
      }
    },
    live() {},
    notice: (text) => io.stderr.write(text),
    stop() {},
  };
}

/** Runs the client; resolves to the process exit code (0 done, 1 failed, 2 bad usage, 130 stopped). */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(argv, io);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    throw err;
  }

  const api = apiClient(options, io.signal);
  const sleep = io.sleep ?? ((ms: number) => delay(ms, undefined, { signal: io.signal }));
  let id: string | undefined;
  let progress: Progress | undefined;
  try {
    const created: Decision = terminalSafe(
      await api.create(
        {
          query: options.question,
          ...(options.review ? { review: true } : {}),
          ...(options.context ? { context: options.context } : {}),
        },
        { signal: io.signal },
      ),
    );
    id = created.process_id;
    if (!options.follow) {
      io.stdout.write(options.json ? `${JSON.stringify(created, null, 2)}\n` : `${id}\n`);
      return 0;
    }

    const ctx: EventContext = {
      api: options.api,
      id,
      total: created.phases.length || PHASE_COUNT,
      auth: options.apiKey !== undefined,
    };
    if (!options.json) io.stdout.write(`Decision ${id} created\n`);
    progress = options.json
      ? quietProgress(io, ctx)
      : io.isTTY
        ? barProgress(io, ctx, { live: !options.quiet })
        : lineProgress(io, ctx);
    // --json shows nothing of the live events: it asks for the stream without them.
    const { end, sent } = await followEvents(api, id, progress, {
      deltas: !options.json,
      sleep,
      signal: io.signal,
    });
    progress.stop();
    progress = undefined;

    switch (end.type) {
      case 'decision.completed':
        io.stdout.write(
          options.json
            ? `${JSON.stringify(terminalSafe((sent as { result: unknown }).result), null, 2)}\n`
            : `\n${renderResult(end.data.result)}`,
        );
        return 0;
      case 'decision.failed':
        io.stderr.write(renderFailure(id, end.data.error));
        return 1;
      case 'decision.cancelled':
        io.stderr.write(renderCancelled(id));
        return 1;
    }
  } catch (err) {
    progress?.stop();
    if (io.signal?.aborted) {
      io.stderr.write(
        id === undefined
          ? 'Stopped\n'
          : `Stopped following; decision ${id} keeps running: ${decisionPath(options.api, id)}\n`,
      );
      return 130;
    }
    if (err instanceof DecisionApiError) io.stderr.write(formatProblem(problemOf(err)));
    else io.stderr.write(`Error: ${describeError(err)}\n`);
    return 1;
  }
}

if (require.main === module) {
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  run(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    isTTY: process.stdout.isTTY === true,
    config: loadDecideConfig(),
    signal: controller.signal,
  }).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
