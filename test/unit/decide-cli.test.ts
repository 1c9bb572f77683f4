import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { problem } from '../../src/api/problem';
import { run } from '../../src/cli/decide';
import { loadDecideConfig } from '../../src/config/cli';
import {
  describeEvent,
  formatDuration,
  formatProblem,
  parseEvent,
  progressAfter,
  renderFailure,
  renderResult,
  reviewInstructions,
  toProblem,
  wrap,
} from '../../src/cli/decide-render';
import { initialRecord } from '../../src/domain/decision';
import { isLiveEventType } from '../../src/domain/live';
import type { DecisionEventData, DecisionStreamEvent } from '../../src/domain/events';
import { PHASES } from '../../src/domain/phases';
import {
  attemptFrame,
  deltaFrames,
  readRecording,
  startOf,
  toSse,
  withLive,
  type Frame,
  type Recording,
} from '../support/streams';
import { virtualTerminal } from '../support/terminal';

// What the real server streamed (test/streams, recorded and kept in shape by the API tests).
const recordings = {
  reviewed: readRecording('reviewed'),
  reviewTimedOut: readRecording('reviewTimedOut'),
  failed: readRecording('failed'),
  cancelled: readRecording('cancelled'),
} satisfies Record<Recording, Frame[]>;

/** The data of the first event of this type a recording holds. */
function dataOf<T extends DecisionStreamEvent['type']>(
  frames: readonly Frame[],
  type: T,
  which: (data: DecisionEventData<T>) => boolean = () => true,
): DecisionEventData<T> {
  const found = frames
    .filter((f) => f.event === type)
    .map((f) => JSON.parse(f.data) as DecisionEventData<T>)
    .find(which);
  if (!found) throw new Error(`the recording has no ${type} event`);
  return found;
}

const idOf = (frames: readonly Frame[]) => dataOf(frames, 'decision.started').process_id;
const phaseFrom =
  <N extends string>(name: N) =>
  (data: { phase: string }) =>
    data.phase === name;

const ID = idOf(recordings.reviewed);
const RESULT = dataOf(recordings.reviewed, 'decision.completed').result;
const DRAFT = dataOf(recordings.reviewed, 'review.requested').draft;
const FEEDBACK = dataOf(recordings.reviewed, 'review.received').feedback;
const FAILURE = dataOf(recordings.failed, 'decision.failed').error;
const TITLES = PHASES.map((p) => p.title);
const LAST = PHASES.length - 1;

/** A recording's frames with one event's data changed. */
function withData<T extends DecisionStreamEvent['type']>(
  frames: readonly Frame[],
  type: T,
  change: (data: DecisionEventData<T>) => unknown,
): Frame[] {
  return frames.map((f) =>
    f.event === type
      ? { ...f, data: JSON.stringify(change(JSON.parse(f.data) as DecisionEventData<T>)) }
      : f,
  );
}

/** How one events connection behaves: send `send` frames, then cut it (mid-frame if `partial`). */
interface Plan {
  send: number;
  partial?: boolean;
  /** Keep the connection open after sending, as a server does while a phase runs. */
  hold?: boolean;
}

interface Fake {
  url: string;
  /** The decision the fake creates: the one whose stream `frames` were recorded from. */
  id: string;
  frames: Frame[];
  /** Consumed one per events connection; once empty, a connection sends everything and ends. */
  plans: Plan[];
  honourLastEventId: boolean;
  create?: { status: number; body: unknown; type?: string };
  eventsStatus?: number;
  /** Awaited before each frame of a connection without a plan: a test's look at the screen. */
  pace?: (frame: Frame) => Promise<void>;
  posts: { headers: IncomingHttpHeaders; body: unknown }[];
  streams: { headers: IncomingHttpHeaders; query: string }[];
}

let server: Server | undefined;

afterEach(async () => {
  if (!server) return;
  server.closeAllConnections();
  const closing = server;
  server = undefined;
  await new Promise<void>((resolve) => closing.close(() => resolve()));
});

async function fakeApi(overrides: Partial<Fake> = {}): Promise<Fake> {
  const frames = overrides.frames ?? recordings.reviewed;
  const fake: Fake = {
    url: '',
    id: idOf(frames),
    frames,
    plans: [],
    honourLastEventId: true,
    posts: [],
    streams: [],
    ...overrides,
  };
  server = createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/decisions') {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        const sent = JSON.parse(body) as { query: string; context?: string };
        fake.posts.push({ headers: req.headers, body: sent });
        // The new decision as the API shows it: every phase pending.
        const { seq: _seq, ...created } = initialRecord(fake.id, sent, new Date().toISOString());
        const answer = fake.create ?? { status: 202, body: created };
        res.writeHead(answer.status, {
          'Content-Type': answer.type ?? 'application/json',
          Location: `/decisions/${fake.id}`,
        });
        res.end(JSON.stringify(answer.body));
      });
      return;
    }
    const url = new URL(req.url ?? '/', 'http://fake');
    if (req.method === 'GET' && url.pathname === `/decisions/${fake.id}/events`) {
      fake.streams.push({ headers: req.headers, query: url.search });
      if (fake.eventsStatus) {
        res.writeHead(fake.eventsStatus, { 'Content-Type': 'application/problem+json' });
        res.end(JSON.stringify(problem(fake.eventsStatus, `No decision with id ${fake.id}`)));
        return;
      }
      const last = req.headers['last-event-id'];
      const start =
        fake.honourLastEventId && typeof last === 'string'
          ? fake.frames.findIndex((f) => f.id === last) + 1
          : 0;
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
      const plan = fake.plans.shift();
      const rest = fake.frames
        .slice(start)
        .filter((f) => url.searchParams.get('deltas') !== 'false' || !isLiveEventType(f.event));
      if (!plan) {
        const { pace } = fake;
        if (!pace) {
          res.end(`: stream open\n\n${rest.map(toSse).join('')}`);
          return;
        }
        void (async () => {
          res.write(': stream open\n\n');
          for (const frame of rest) {
            await pace(frame);
            res.write(toSse(frame));
          }
          res.end();
        })().catch(() => res.destroy());
        return;
      }
      const cut = rest[plan.send];
      res.write(`: keep-alive\n\n${rest.slice(0, plan.send).map(toSse).join('')}`);
      if (plan.partial && cut) res.write(toSse(cut).slice(0, 25));
      if (plan.hold) return;
      // Ends the socket under the chunked response: the client sees a dropped connection.
      res.socket?.end();
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}

function sink(isTTY = false, onWrite: (text: string) => void = () => {}) {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      chunks.push(chunk.toString());
      onWrite(chunks.join(''));
      callback();
    },
  });
  return Object.assign(stream, { isTTY, columns: 120, text: () => chunks.join('') });
}

async function decide(
  argv: string[],
  options: {
    isTTY?: boolean;
    env?: Record<string, string>;
    abortOn?: string;
    /** A terminal to draw on instead of a sink that keeps the text. */
    terminal?: ReturnType<typeof virtualTerminal>;
  },
) {
  const controller = new AbortController();
  const { abortOn, terminal } = options;
  const stdout =
    terminal?.stream ??
    sink(options.isTTY, (text) => {
      if (abortOn && text.includes(abortOn)) controller.abort();
    });
  const stderr = sink();
  const delays: number[] = [];
  const code = await run(argv, {
    stdout,
    stderr,
    isTTY: terminal !== undefined || (options.isTTY ?? false),
    config: loadDecideConfig(options.env ?? {}),
    signal: controller.signal,
    sleep: (ms) => {
      delays.push(ms);
      return Promise.resolve();
    },
  });
  return {
    code,
    out: stdout.text(),
    err: stderr.text(),
    delays,
  };
}

function count(text: string, part: string): number {
  return text.split(part).length - 1;
}

/** Every event of a recording, as the client reads it. */
function eventsOf(frames: readonly Frame[]): DecisionStreamEvent[] {
  return frames.map((f) => parseEvent(f.event, f.data)!);
}

const usageLine = (usage: typeof RESULT.usage) =>
  `Usage: ${usage.model_calls} model calls, ${usage.input_tokens.toLocaleString('en-US')} input ` +
  `tokens, ${usage.output_tokens.toLocaleString('en-US')} output tokens, ` +
  `${formatDuration(usage.latency_ms)} model time`;

describe('decide rendering', () => {
  it('reads every recorded event with its data, and ignores unknown ones', () => {
    for (const frames of Object.values(recordings)) {
      for (const frame of frames) {
        expect(parseEvent(frame.event, frame.data)).toEqual({
          type: frame.event,
          data: JSON.parse(frame.data),
        });
      }
    }
    expect(parseEvent('phase.progress', '{}')).toBeNull();
    expect(parseEvent(undefined, '{}')).toBeNull();
  });

  it('drops keys a newer server adds, but refuses data that does not match its schema', () => {
    const started = recordings.reviewed.find((f) => f.event === 'phase.started')!;
    const data = JSON.parse(started.data) as Record<string, unknown>;
    expect(parseEvent('phase.started', JSON.stringify({ ...data, eta_ms: 5 }))).toEqual({
      type: 'phase.started',
      data,
    });
    expect(() => parseEvent('phase.started', JSON.stringify({ ...data, index: 'two' }))).toThrow(
      /^The server sent a phase\.started event whose data does not match its schema: index: /,
    );
    const failed = recordings.failed.find((f) => f.event === 'decision.failed')!;
    const { message: _message, ...error } = FAILURE;
    expect(() =>
      parseEvent('decision.failed', JSON.stringify({ ...JSON.parse(failed.data), error })),
    ).toThrow(/decision\.failed event whose data does not match its schema: error\.message: /);
    expect(() => parseEvent('decision.completed', '{"status":')).toThrow(
      'The server sent a decision.completed event whose data is not JSON',
    );
  });

  it('formats problem details with their field errors', () => {
    const invalid = problem(400, 'The request body is invalid', {
      errors: [{ path: 'query', message: 'must not be empty' }],
    });
    expect(formatProblem(toProblem(400, 'Bad Request', JSON.stringify(invalid)))).toBe(
      'Error 400: The request body is invalid\n  - query: must not be empty\n',
    );
    expect(formatProblem(toProblem(502, 'Bad Gateway', '<html>upstream down</html>'))).toBe(
      'Error 502: <html>upstream down</html>\n',
    );
    expect(formatProblem(toProblem(503, 'Service Unavailable', ''))).toBe(
      'Error 503: Service Unavailable\n',
    );
    // A proxy's JSON that is no problem document: what fits is kept, the rest falls back.
    expect(formatProblem(toProblem(504, 'Gateway Timeout', '{"title":7,"errors":"x"}'))).toBe(
      'Error 504: Gateway Timeout\n',
    );
  });

  it('describes the recorded phase events as one line each', () => {
    const ctx = { api: 'http://h:1', id: ID, total: PHASES.length };
    const lines = eventsOf(recordings.reviewed).map((event) => describeEvent(event, ctx));
    const compiled = dataOf(recordings.reviewed, 'phase.completed', phaseFrom('compileResult'));
    expect(lines).toContain(`[ 1/10] ${TITLES[0]}: started\n`);
    expect(lines).toContain(
      `[10/10] ${TITLES[LAST]}: completed in ${formatDuration(compiled.duration_ms)}\n`,
    );
    expect(lines).toContain(`Review received: changes requested: ${FEEDBACK}\n`);
    expect(lines.at(-1)).toBeNull();

    const failed = dataOf(recordings.failed, 'phase.failed');
    const failedLines = eventsOf(recordings.failed).map((event) => describeEvent(event, ctx));
    expect(failedLines).toContain(
      `[ ${failed.index + 1}/10] ${TITLES[failed.index]}: failed (${FAILURE.type}: ${FAILURE.message})\n`,
    );
    expect(eventsOf(recordings.reviewTimedOut).map((e) => describeEvent(e, ctx))).toContain(
      'Review timed out; the decision continues without it\n',
    );
    expect(describeEvent(eventsOf(recordings.cancelled).at(-1)!, ctx)).toBeNull();
  });

  it('tells the reviewer how to answer, without printing the key', () => {
    const text = reviewInstructions('http://h:1', 'dec 1', { auth: true, draft: DRAFT });
    expect(text).toContain(`Draft recommends: ${DRAFT.recommended}`);
    expect(text).toContain(
      `curl -X POST http://h:1/decisions/dec%201/review -H 'Content-Type: application/json' -H "Authorization: Bearer $DECISIONS_API_KEY" -d '{"approve":true}'`,
    );
    expect(text).toContain(`-d '{"feedback":"..."}'`);
    expect(reviewInstructions('http://h:1', 'd')).not.toContain('Authorization');
  });

  it('moves the bar forward only', () => {
    const events = eventsOf(recordings.reviewed);
    const completed = events.filter((e) => e.type === 'phase.completed');
    const started = events.filter((e) => e.type === 'phase.started');
    let state = progressAfter(completed[3]!, { value: 0, label: '' }, 10);
    expect(state).toEqual({ value: 4, label: TITLES[3] });
    state = progressAfter(started[1]!, state, 10);
    expect(state).toEqual({ value: 4, label: TITLES[1] });
    state = progressAfter(events.at(-1)!, state, 10);
    expect(state).toEqual({ value: 10, label: 'Done' });
  });

  it('renders the recorded decision readably', () => {
    const text = renderResult(RESULT);
    const d = RESULT.decision;
    expect(text.startsWith(`${d.title}\n${'='.repeat(d.title.length)}\n`)).toBe(true);
    expect(text).toContain(`\n${wrap(`Question: ${RESULT.query}`, 100)}\n`);
    expect(text).toContain(`Decision\n${wrap(d.decision, 100, '  ')}\n`);
    expect(text).toContain(`Rationale\n${wrap(d.rationale, 100, '  ')}\n`);
    const width = Math.max(...d.alternatives_considered.map((a) => a.name.length));
    const rows = d.alternatives_considered.map(
      (a) => `  ${a.name.padEnd(width)}  ${a.weighted_score.toFixed(2)}`,
    );
    expect(text).toContain(`Alternatives considered (weighted score)\n${rows.join('\n')}\n`);
    const risk = d.risks[0]!;
    expect(text).toContain(`Risks\n${wrap(`- ${risk.risk}`, 100, '  ')}\n`);
    expect(text).toContain(wrap(`mitigation: ${risk.mitigation}`, 100, '    '));
    expect(text).toContain(`Next steps\n${wrap(`1. ${d.next_steps[0]!}`, 100, '  ')}\n`);
    expect(text).toContain(usageLine(RESULT.usage));
    expect(text).not.toContain('undefined');
  });

  it('skips what a partial result leaves out', () => {
    expect(renderResult({ decision: { decision: 'Do it', open_questions: [] } })).toBe(
      'Decision\n  Do it\n',
    );
    // A field in another shape is skipped too, the others kept.
    expect(
      renderResult({
        query: 7,
        decision: { title: 'T', risks: [{ risk: 'r' }], next_steps: 'none' },
        usage: { model_calls: 1, input_tokens: 'many' },
      }),
    ).toBe('T\n=\n\nUsage: 1 model call\n');
    expect(renderResult(null)).toBe('\n');
  });

  it('formats failures, durations and wrapped text', () => {
    expect(renderFailure(idOf(recordings.failed), FAILURE)).toBe(
      `Decision ${idOf(recordings.failed)} failed in phase ${FAILURE.phase}\n  ${FAILURE.type}: ${FAILURE.message}\n`,
    );
    expect(formatDuration(450)).toBe('450 ms');
    expect(formatDuration(2500)).toBe('2.5 s');
    expect(formatDuration(61_000)).toBe('1 min 1 s');
    expect(wrap('aaa bbb ccc', 9, '  ')).toBe('  aaa bbb\n  ccc');
  });
});

describe('decide against a fake API serving recorded streams', () => {
  it('creates, follows every phase and prints the result (plain lines when piped)', async () => {
    const api = await fakeApi();
    const { code, out, err } = await decide(
      ['--api', api.url, '--review', '--context', 'We run on AWS', 'Should', 'we', 'move?'],
      { env: { DECISIONS_API_KEY: 'secret' } },
    );
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(api.posts).toHaveLength(1);
    expect(api.posts[0]?.body).toEqual({
      query: 'Should we move?',
      review: true,
      context: 'We run on AWS',
    });
    expect(api.posts[0]?.headers['content-type']).toBe('application/json');
    expect(api.posts[0]?.headers.authorization).toBe('Bearer secret');
    expect(api.streams[0]?.headers).toMatchObject({
      accept: 'text/event-stream',
      authorization: 'Bearer secret',
    });
    const compiled = dataOf(recordings.reviewed, 'phase.completed', phaseFrom('compileResult'));
    expect(out).toContain(`Decision ${ID} created\n`);
    expect(out).toContain(`[ 1/10] ${TITLES[0]}: started\n`);
    expect(out).toContain(
      `[10/10] ${TITLES[LAST]}: completed in ${formatDuration(compiled.duration_ms)}\n`,
    );
    expect(out).toContain(`Decision ${ID} awaits your review of its draft.`);
    expect(out).toContain(`Draft recommends: ${DRAFT.recommended}`);
    expect(out).toContain(`${api.url}/decisions/${ID}/review`);
    expect(out).toContain(`Review received: changes requested: ${FEEDBACK}`);
    expect(out).toContain(`Decision\n${wrap(RESULT.decision.decision, 100, '  ')}`);
    expect(out).toContain(usageLine(RESULT.usage));
  });

  it('reconnects with Last-Event-ID after a dropped stream and repeats nothing', async () => {
    const api = await fakeApi({ plans: [{ send: 5, partial: true }] });
    const { code, out, err, delays } = await decide(['--api', api.url, 'q'], {});
    expect(code).toBe(0);
    expect(api.streams).toHaveLength(2);
    expect(api.streams[0]?.headers['last-event-id']).toBeUndefined();
    // Five frames arrived whole; the sixth was cut halfway and must come again.
    expect(api.streams[1]?.headers['last-event-id']).toBe(api.frames[4]!.id);
    expect(delays).toHaveLength(1);
    expect(err).toMatch(/^Event stream lost \(.+\); reconnecting \(1\/5\)\n$/);
    for (const title of TITLES) {
      expect(count(out, `${title}: started`)).toBe(1);
      expect(count(out, `${title}: completed`)).toBe(1);
    }
    expect(count(out, 'Usage:')).toBe(1);
  });

  it('skips events a server replays after a reconnect', async () => {
    const api = await fakeApi({
      plans: [{ send: 8 }, { send: 12 }],
      honourLastEventId: false,
    });
    const { code, out, delays } = await decide(['--api', api.url, '--json', 'q'], {});
    expect(code).toBe(0);
    expect(api.streams.map((s) => s.headers['last-event-id'])).toEqual([
      undefined,
      api.frames[7]!.id,
      api.frames[11]!.id,
    ]);
    expect(delays).toEqual([250, 250]);
    expect(JSON.parse(out)).toEqual(RESULT);
  });

  it('takes an end sent with the id of the event before it (an end read from the record)', async () => {
    const frames = recordings.reviewed.map((f, i, all) =>
      i === all.length - 1 ? { ...f, id: all[i - 1]!.id } : f,
    );
    const api = await fakeApi({ frames });
    const { code, out, err } = await decide(['--api', api.url, 'q'], {});
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(api.streams).toHaveLength(1);
    expect(count(out, 'Usage:')).toBe(1);
  });

  it('gives up after five failed reconnects', async () => {
    const api = await fakeApi({ plans: Array.from({ length: 6 }, () => ({ send: 0 })) });
    const { code, err, delays } = await decide(['--api', api.url, 'q'], {});
    expect(code).toBe(1);
    expect(api.streams).toHaveLength(6);
    expect(delays).toEqual([250, 500, 1000, 2000, 4000]);
    expect(err).toMatch(/Error: lost the event stream .*gave up after 5 retries\n$/);
  });

  it('prints a 400 problem and exits 1 without following', async () => {
    const api = await fakeApi({
      create: {
        status: 400,
        type: 'application/problem+json',
        body: problem(400, 'The request body is invalid', {
          errors: [{ path: 'query', message: 'must be at most 4000 characters' }],
        }),
      },
    });
    const { code, out, err } = await decide(['--api', api.url, 'q'], {});
    expect(code).toBe(1);
    expect(out).toBe('');
    expect(err).toBe(
      'Error 400: The request body is invalid\n  - query: must be at most 4000 characters\n',
    );
    expect(api.streams).toHaveLength(0);
  });

  it('reports an unknown decision on the events stream without retrying', async () => {
    const api = await fakeApi({ eventsStatus: 404 });
    const { code, err, delays } = await decide(['--api', api.url, 'q'], {});
    expect(code).toBe(1);
    expect(err).toBe(`Error 404: No decision with id ${ID}\n`);
    expect(delays).toEqual([]);
  });

  it('stops without retrying when a known event does not match its schema', async () => {
    const api = await fakeApi({
      frames: withData(recordings.reviewed, 'phase.started', (d) => ({ ...d, index: 'two' })),
    });
    const { code, err, delays } = await decide(['--api', api.url, 'q'], {});
    expect(code).toBe(1);
    expect(err).toMatch(
      /^Error: The server sent a phase\.started event whose data does not match its schema: index: .+\n$/,
    );
    expect(api.streams).toHaveLength(1);
    expect(delays).toEqual([]);
  });

  it('prints only the result JSON with --json, and review instructions on stderr', async () => {
    const api = await fakeApi();
    const { code, out, err } = await decide([`--api=${api.url}/`, '--json', 'q'], {});
    expect(code).toBe(0);
    expect(out).toBe(`${JSON.stringify(RESULT, null, 2)}\n`);
    expect(err).toContain(`curl -X POST ${api.url}/decisions/${ID}/review`);
  });

  it('passes the result on whole with --json: keys it does not know and text as written', async () => {
    const frames = withData(recordings.reviewed, 'decision.completed', (d) => ({
      ...d,
      result: {
        ...d.result,
        from_a_newer_server: { kept: true },
        decision: { ...d.result.decision, summary: `  ${d.result.decision.summary}  ` },
      },
    }));
    const api = await fakeApi({ frames });
    const { code, out } = await decide(['--api', api.url, '--json', 'q'], {});
    expect(code).toBe(0);
    const result = JSON.parse(out) as typeof RESULT & { from_a_newer_server: unknown };
    expect(result.from_a_newer_server).toEqual({ kept: true });
    expect(result.decision.summary).toBe(`  ${RESULT.decision.summary}  `);
  });

  it('takes the API URL from DECISIONS_API_URL and prints only the id with --no-follow', async () => {
    const api = await fakeApi();
    const { code, out } = await decide(['--no-follow', 'q'], {
      env: { DECISIONS_API_URL: api.url },
    });
    expect(code).toBe(0);
    expect(out).toBe(`${ID}\n`);
    expect(api.posts).toHaveLength(1);
    expect(api.streams).toHaveLength(0);
  });

  it('says when the review timed out, and goes on to the result', async () => {
    const api = await fakeApi({ frames: recordings.reviewTimedOut });
    const { code, out } = await decide(['--api', api.url, 'q'], {});
    const result = dataOf(recordings.reviewTimedOut, 'decision.completed').result;
    expect(code).toBe(0);
    expect(out).toContain('Review timed out; the decision continues without it\n');
    expect(out).toContain(`Decision\n${wrap(result.decision.decision, 100, '  ')}`);
  });

  it('exits 1 with the phase, type and message when the decision fails', async () => {
    const api = await fakeApi({ frames: recordings.failed });
    const { code, out, err } = await decide(['--api', api.url, 'q'], {});
    const failed = dataOf(recordings.failed, 'phase.failed');
    expect(code).toBe(1);
    expect(out).toContain(`${TITLES[failed.index]}: failed (${FAILURE.type}: `);
    expect(err).toBe(
      `Decision ${api.id} failed in phase ${FAILURE.phase}\n  ${FAILURE.type}: ${FAILURE.message}\n`,
    );
  });

  it('exits 1 when the decision is cancelled', async () => {
    const api = await fakeApi({ frames: recordings.cancelled });
    const { code, err } = await decide(['--api', api.url, 'q'], {});
    expect(code).toBe(1);
    expect(err).toBe(`Decision ${api.id} was cancelled\n`);
  });

  it('draws a progress bar on a terminal', async () => {
    const api = await fakeApi();
    const { code, out } = await decide(['--api', api.url, 'q'], { isTTY: true });
    expect(code).toBe(0);
    expect(out).toContain('10/10 phases');
    expect(out).toContain('Done');
    expect(out).not.toContain('[ 1/10]');
    expect(out).toContain(usageLine(RESULT.usage));
  });

  it('stops following on Ctrl-C (abort) and says the decision keeps running', async () => {
    // Started, the first phase started and completed; then the server holds the stream open.
    const api = await fakeApi({ plans: [{ send: 3, hold: true }] });
    const { code, err } = await decide(['--api', api.url, 'q'], {
      abortOn: `${TITLES[0]}: completed`,
    });
    expect(code).toBe(130);
    expect(err).toBe(
      `Stopped following; decision ${ID} keeps running: ${api.url}/decisions/${ID}\n`,
    );
  });

  it('exits 2 on bad usage and 0 for --help', async () => {
    expect((await decide([], {})).code).toBe(2);
    const badUrl = await decide(['--api', 'not a url', 'q'], {});
    expect(badUrl.code).toBe(2);
    expect(badUrl.err).toContain('--api must be an http(s) URL');
    const help = await decide(['--help'], {});
    expect(help.code).toBe(0);
    expect(help.out).toContain('Usage: decide [options] <question...>');
    expect(help.out).toContain('--no-follow');
  });
});

describe("decide showing the running phase's model output", () => {
  const SCOPE = JSON.stringify({
    summary: 'Scope of the move',
    in_scope: ['build runners', 'caches'],
    constraints: 'keep costs flat',
  });
  const SCOPE_LINES = [
    '  summary: Scope of the move',
    '  in scope: build runners · caches',
    '  constraints: keep costs flat',
  ];
  const scope = { phase: 'defineScope' } as const;
  /** In the row of a progress bar that is not full, however narrow the terminal. */
  const BAR = '\u2591';
  /** The frame of an event of this type about this phase. */
  const frameOf = (frames: readonly Frame[], type: string, phase: string) =>
    frames.find(
      (f) => f.event === type && (JSON.parse(f.data) as { phase?: string }).phase === phase,
    )!;
  /** The rows below the progress bar. */
  const underBar = (rows: readonly string[]) =>
    rows.slice(rows.findIndex((r) => r.includes(BAR)) + 1);
  const barsOn = (rows: readonly string[]) => rows.filter((r) => r.includes(BAR)).length;
  const showing = (text: string) => (rows: string[]) => underBar(rows).join('\n').includes(text);

  it('draws it under the bar while the phase runs, and clears it when the phase completes', async () => {
    const frames = withLive(recordings.reviewed, [
      [startOf('defineScope'), deltaFrames(scope, SCOPE)],
    ]);
    const completed = frameOf(frames, 'phase.completed', 'defineScope');
    const next = frames[frames.indexOf(completed) + 1];
    const tty = virtualTerminal(60);
    const shots: string[][] = [];
    const api = await fakeApi({
      frames,
      pace: async (frame) => {
        if (frame === completed) shots.push(await tty.when(showing('keep costs flat')));
        if (frame === next) shots.push(await tty.when((rows) => underBar(rows).length === 0));
      },
    });
    const { code, out } = await decide(['--api', api.url, 'q'], { terminal: tty });
    expect(code).toBe(0);
    const [running, completedShot] = shots;
    expect(barsOn(running!)).toBe(1);
    expect(running!.find((r) => r.includes(BAR))).toContain(' 2/10 phases ');
    expect(underBar(running!)).toEqual(SCOPE_LINES);
    expect(barsOn(completedShot!)).toBe(1);
    expect(completedShot!.find((r) => r.includes(BAR))).toContain(' 3/10 phases ');
    expect(underBar(completedShot!)).toEqual([]);
    expect(out).toContain(usageLine(RESULT.usage));
  });

  it('fits it to the terminal: the last three lines, none wider than the terminal', async () => {
    // Wide characters take two columns each: cut by characters, a line would wrap.
    const words = '変更は四半期ごとに見直す。'.repeat(6);
    const answer = JSON.stringify({ summary: 'short', constraints: `${words} and the last words` });
    const frames = withLive(recordings.reviewed, [
      [startOf('defineScope'), deltaFrames(scope, answer)],
    ]);
    const completed = frameOf(frames, 'phase.completed', 'defineScope');
    const tty = virtualTerminal(40);
    let shot: { rows: string[]; widths: number[] } | undefined;
    const api = await fakeApi({
      frames,
      pace: async (frame) => {
        if (frame !== completed) return;
        const rows = await tty.when((r) => underBar(r).at(-1)?.endsWith('last words') ?? false);
        shot = { rows, widths: await tty.widths() };
      },
    });
    expect((await decide(['--api', api.url, 'q'], { terminal: tty })).code).toBe(0);
    const { rows, widths } = shot!;
    const bar = rows.findIndex((r) => r.includes(BAR));
    expect(barsOn(rows)).toBe(1);
    expect(underBar(rows)).toHaveLength(3);
    expect(underBar(rows).at(-1)).toMatch(/ and the last words$/);
    expect(underBar(rows).join('')).not.toContain('summary');
    for (const width of widths.slice(bar + 1)) expect(width).toBeLessThan(40);
  });

  it('shows none with --quiet', async () => {
    const frames = withLive(recordings.reviewed, [
      [startOf('defineScope'), deltaFrames(scope, SCOPE)],
    ]);
    const completed = frameOf(frames, 'phase.completed', 'defineScope');
    const tty = virtualTerminal(60);
    let shot: string[] = [];
    const api = await fakeApi({
      frames,
      pace: async (frame) => {
        if (frame !== completed) return;
        // Three redraws of the bar after the deltas were sent: without --quiet, they show.
        const drawn = count(tty.stream.text(), ' phases | ');
        shot = await tty.when(() => count(tty.stream.text(), ' phases | ') >= drawn + 3);
      },
    });
    const { code, out } = await decide(['--api', api.url, '--quiet', 'q'], { terminal: tty });
    expect(code).toBe(0);
    expect(shot.find((r) => r.includes(BAR))).toContain(' 2/10 phases ');
    expect(underBar(shot)).toEqual([]);
    expect(out).not.toContain('Scope of the move');
  });

  it('starts afresh on a retried attempt, and says so above the bar', async () => {
    const first = deltaFrames(scope, JSON.stringify({ summary: 'first try' }));
    const retry = attemptFrame({ ...scope, attempt: 2 });
    const second = deltaFrames({ ...scope, attempt: 2 }, JSON.stringify({ summary: 'second try' }));
    const frames = withLive(recordings.reviewed, [
      [startOf('defineScope'), [...first, retry, ...second]],
    ]);
    const at = (frame: Frame) => frames.find((f) => f.data === frame.data)!;
    const completed = frameOf(frames, 'phase.completed', 'defineScope');
    const tty = virtualTerminal(60);
    const shots: string[][] = [];
    const api = await fakeApi({
      frames,
      pace: async (frame) => {
        if (frame === at(retry)) shots.push(await tty.when(showing('first try')));
        if (frame === at(second[0]!)) {
          shots.push(await tty.when((rows) => rows.some((r) => r.includes('retrying'))));
        }
        if (frame === completed) shots.push(await tty.when(showing('second try')));
      },
    });
    expect((await decide(['--api', api.url, 'q'], { terminal: tty })).code).toBe(0);
    const [before, retried, after] = shots;
    expect(underBar(before!)).toEqual(['  summary: first try']);
    expect(
      retried!.slice(
        0,
        retried!.findIndex((r) => r.includes(BAR)),
      ),
    ).toContain(`[ 3/10] ${TITLES[2]}: retrying, attempt 2`);
    expect(underBar(retried!)).toEqual([]);
    expect(underBar(after!)).toEqual(['  summary: second try']);
  });

  it('starts afresh on a repair round (the next call of the attempt)', async () => {
    const broken = deltaFrames(scope, JSON.stringify({ summary: 'broken', rationale: 'half' }));
    const repaired = deltaFrames({ ...scope, call: 2 }, JSON.stringify({ summary: 'repaired' }));
    const frames = withLive(recordings.reviewed, [
      [startOf('defineScope'), [...broken, ...repaired]],
    ]);
    const at = (frame: Frame) => frames.find((f) => f.data === frame.data)!;
    const tty = virtualTerminal(60);
    const shots: string[][] = [];
    const api = await fakeApi({
      frames,
      pace: async (frame) => {
        if (frame === at(repaired[0]!)) shots.push(await tty.when(showing('rationale: half')));
        if (frame === at(repaired[1]!)) shots.push(await tty.when(showing('summary: repa')));
      },
    });
    expect((await decide(['--api', api.url, 'q'], { terminal: tty })).code).toBe(0);
    expect(underBar(shots[0]!)).toEqual(['  summary: broken', '  rationale: half']);
    // The first piece of the repaired answer is `{"summary":"repa`.
    expect(underBar(shots[1]!)).toEqual(['  summary: repa']);
  });

  it('gives each information need that retrieval answers at once a line of its own', async () => {
    const answers = {
      N1: 'Runners cost less',
      N2: 'Caches need a disk',
      N3: 'Security reviews the images',
    };
    const streams = Object.entries(answers).map(([need, answer]) =>
      deltaFrames(
        { phase: 'retrieveInformation', need },
        JSON.stringify({ need_id: need, answer }),
        8,
      ),
    );
    // Interleaved as parallel activities write them.
    const longest = Math.max(...streams.map((d) => d.length));
    const mixed = Array.from({ length: longest }, (_, i) => streams.flatMap((d) => d[i] ?? []));
    const frames = withLive(recordings.reviewed, [[startOf('retrieveInformation'), mixed.flat()]]);
    const completed = frameOf(frames, 'phase.completed', 'retrieveInformation');
    const tty = virtualTerminal(60);
    let shot: string[] = [];
    const api = await fakeApi({
      frames,
      pace: async (frame) => {
        if (frame !== completed) return;
        shot = await tty.when((rows) => Object.values(answers).every((a) => showing(a)(rows)));
      },
    });
    expect((await decide(['--api', api.url, 'q'], { terminal: tty })).code).toBe(0);
    expect(underBar(shot)).toEqual([
      '  N1: answer: Runners cost less',
      '  N2: answer: Caches need a disk',
      '  N3: answer: Security reviews the images',
    ]);
  });

  it('resumes after a dropped stream with the last opaque id as Last-Event-ID', async () => {
    const deltas = deltaFrames(scope, SCOPE);
    const frames = withLive(recordings.reviewed, [[startOf('defineScope'), deltas]]);
    // Cut after the second delta, halfway through the third.
    const send = frames.findIndex((f) => f.data === deltas[1]!.data) + 1;
    const api = await fakeApi({ frames, plans: [{ send, partial: true }] });
    const { code, out } = await decide(['--api', api.url, 'q'], {});
    expect(code).toBe(0);
    expect(api.streams).toHaveLength(2);
    const resumedFrom = api.streams[1]?.headers['last-event-id'];
    expect(resumedFrom).toBe(frames[send - 1]!.id);
    expect(resumedFrom).toMatch(/^\d+-\d+_\d+-\d+$/);
    for (const title of TITLES) expect(count(out, `${title}: started`)).toBe(1);
    expect(count(out, 'Usage:')).toBe(1);
  });

  it('prints no live text as plain lines, but a line for each retried attempt', async () => {
    const frames = withLive(recordings.reviewed, [
      [
        startOf('defineScope'),
        [
          ...deltaFrames(scope, JSON.stringify({ summary: 'first try' })),
          attemptFrame({ ...scope, attempt: 2 }),
          ...deltaFrames({ ...scope, attempt: 2 }, SCOPE),
        ],
      ],
      [
        startOf('retrieveInformation'),
        [attemptFrame({ phase: 'retrieveInformation', need: 'N2', attempt: 3 })],
      ],
    ]);
    const api = await fakeApi({ frames });
    const { code, out, err } = await decide(['--api', api.url, 'q'], {});
    expect(code).toBe(0);
    expect(err).toBe('');
    expect(api.streams[0]?.query).toBe('');
    expect(out).toContain(
      `[ 3/10] ${TITLES[2]}: started\n[ 3/10] ${TITLES[2]}: retrying, attempt 2\n[ 3/10] ${TITLES[2]}: completed`,
    );
    expect(out).toContain(`[ 6/10] ${TITLES[5]}: retrying need N2, attempt 3\n`);
    expect(out).not.toContain('first try');
    expect(out).not.toContain('Scope of the move');
  });

  it('asks for the stream without live events with --json, and prints the same', async () => {
    const frames = withLive(recordings.reviewed, [
      [startOf('defineScope'), deltaFrames(scope, SCOPE)],
    ]);
    const api = await fakeApi({ frames });
    const { code, out } = await decide(['--api', api.url, '--json', 'q'], {});
    expect(code).toBe(0);
    expect(api.streams.map((s) => s.query)).toEqual(['?deltas=false']);
    expect(out).toBe(`${JSON.stringify(RESULT, null, 2)}\n`);
  });

  it('strips what could drive the terminal from what the model writes', async () => {
    const HOSTILE = '\u001b]0;pwned\u0007\u001b[2J\u202e';
    const fields = { summary: `Managed ${HOSTILE}Postgres`, constraints: `raw ${HOSTILE}text` };
    const parsed = deltaFrames(scope, JSON.stringify(fields));
    // A repair round written with the controls as they are (no JSON parses that), and its
    // deltas missed up to offset 8: shown as the raw text from there.
    const raw = `{"summary":"${fields.summary}","constraints":"${fields.constraints}"}`;
    const unparsed = deltaFrames({ ...scope, call: 2 }, raw, 16, 8);
    const frames = withLive(recordings.reviewed, [
      [startOf('defineScope'), [...parsed, ...unparsed]],
    ]);
    const at = (frame: Frame) => frames.find((f) => f.data === frame.data)!;
    const completed = frameOf(frames, 'phase.completed', 'defineScope');
    const tty = virtualTerminal(100);
    const shots: string[][] = [];
    const api = await fakeApi({
      frames,
      pace: async (frame) => {
        if (frame === at(unparsed[0]!)) shots.push(await tty.when(showing('raw text')));
        if (frame === completed) shots.push(await tty.when(showing('"}')));
      },
    });
    const { code, out } = await decide(['--api', api.url, 'q'], { terminal: tty });
    expect(code).toBe(0);
    for (const part of ['\u001b]0;', 'pwned', '\u0007', '\u001b[2J', '\u202e']) {
      expect(out).not.toContain(part);
    }
    expect(underBar(shots[0]!)).toEqual(['  summary: Managed Postgres', '  constraints: raw text']);
    expect(underBar(shots[1]!)).toEqual(['  …y":"Managed Postgres","constraints":"raw text"}']);
  });

  it('documents --quiet in --help', async () => {
    const help = await decide(['--help'], {});
    expect(help.out).toMatch(/--quiet +no live text of the running phase's model/);
  });
});

describe('decide with text that tries to drive the terminal', () => {
  const HOSTILE = '\u001b]0;pwned\u0007\u001b[2J\u202e';
  /** The reviewed recording with escape sequences in the draft, the feedback and the result. */
  const hostileFrames = () => {
    let frames = withData(recordings.reviewed, 'review.requested', (d) => ({
      ...d,
      draft: { ...d.draft, recommended: `Managed ${HOSTILE}Postgres` },
    }));
    frames = withData(frames, 'review.received', (d) => ({
      ...d,
      feedback: `cheaper ${HOSTILE}please`,
    }));
    return withData(frames, 'decision.completed', (d) => ({
      ...d,
      result: {
        ...d.result,
        query: `Should we ${HOSTILE}move billing?`,
        decision: { ...d.result.decision, summary: `Managed Postgres ${HOSTILE}wins.` },
      },
    }));
  };
  const expectClean = (text: string) => {
    for (const part of ['\u001b]0;', 'pwned', '\u0007', '\u001b[2J', '\u202e']) {
      expect(text).not.toContain(part);
    }
  };

  it('prints the query and the phase outputs without their escape sequences (plain lines)', async () => {
    const api = await fakeApi({ frames: hostileFrames() });
    const { code, out, err } = await decide(['--api', api.url, 'q'], {});
    expect(code).toBe(0);
    expectClean(out + err);
    expect(out).toContain('Draft recommends: Managed Postgres');
    expect(out).toContain('Review received: changes requested: cheaper please');
    expect(out).toContain('Question: Should we move billing?');
    expect(out).toContain('Summary\n  Managed Postgres wins.');
  });

  it('strips the data but keeps the progress bar drawing its own escape codes', async () => {
    const api = await fakeApi({ frames: hostileFrames() });
    const { code, out } = await decide(['--api', api.url, 'q'], { isTTY: true });
    expect(code).toBe(0);
    expectClean(out);
    expect(out).toContain('\u001b[?25l');
    expect(out).toContain('Draft recommends: Managed Postgres');
    expect(out).toContain('Question: Should we move billing?');
  });

  it('keeps --json valid, with the same cleaned strings', async () => {
    const api = await fakeApi({ frames: hostileFrames() });
    const { code, out } = await decide(['--api', api.url, '--json', 'q'], {});
    expect(code).toBe(0);
    expectClean(out);
    const result = JSON.parse(out) as typeof RESULT;
    expect(result.query).toBe('Should we move billing?');
    expect(result.decision.summary).toBe('Managed Postgres wins.');
  });

  it('cleans error bodies and failure messages too', async () => {
    expect(formatProblem(toProblem(502, 'Bad\u0085 Gateway', `<h1>${HOSTILE}down</h1>`))).toBe(
      'Error 502: <h1>down</h1>\n',
    );
    expect(formatProblem(toProblem(503, 'Service\u009b2J Unavailable', ''))).toBe(
      'Error 503: Service Unavailable\n',
    );
    const api = await fakeApi({
      frames: withData(recordings.failed, 'decision.failed', (d) => ({
        ...d,
        error: { ...d.error, message: `bad ${HOSTILE}answer` },
      })),
    });
    const { code, err } = await decide(['--api', api.url, 'q'], {});
    expect(code).toBe(1);
    expect(err).toBe(
      `Decision ${api.id} failed in phase ${FAILURE.phase}\n  ${FAILURE.type}: bad answer\n`,
    );
  });
});
