import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/decide';
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
  type DecisionEvent,
} from '../../src/cli/decide-render';

const TITLES = [
  'Identify trigger',
  'Root cause analysis',
  'Scope definition',
  'Establish goals',
  'Information needs',
  'Retrieve information',
  'Generate alternatives',
  'Draft decision',
  'Update draft',
  'Compile result',
];
const NAMES = [
  'identifyTrigger',
  'analyzeRootCause',
  'defineScope',
  'establishGoals',
  'identifyInformationNeeds',
  'retrieveInformation',
  'generateAlternatives',
  'draftDecision',
  'updateDraft',
  'compileResult',
];

const RESULT = {
  query: 'Should we move billing to a managed Postgres?',
  decision: {
    title: 'Move billing to managed Postgres',
    decision: 'Adopt managed Postgres for the billing database',
    summary: 'Managed Postgres removes most of the operational load at an acceptable cost.',
    rationale: 'It scores best on reliability and team effort, the two heaviest criteria.',
    alternatives_considered: [
      { name: 'Managed Postgres', weighted_score: 0.82 },
      { name: 'Self-hosted Postgres', weighted_score: 0.61 },
      { name: 'Stay on MySQL', weighted_score: 0.4 },
    ],
    risks: [{ risk: 'Vendor lock-in', mitigation: 'Keep the schema portable' }],
    next_steps: ['Run a two-week pilot', 'Plan the cut-over'],
    open_questions: ['Who owns on-call after the move?'],
  },
  phases: {},
  usage: { model_calls: 12, input_tokens: 10234, output_tokens: 2345, latency_ms: 41_200 },
};

interface Frame {
  id: string;
  event: string;
  data: unknown;
}

function frames(end: Frame['event'] = 'decision.completed', options: { review?: boolean } = {}) {
  const list: Frame[] = [
    { id: '1-0', event: 'decision.started', data: { process_id: 'dec-1', status: 'running' } },
  ];
  const add = (event: string, data: unknown) =>
    list.push({ id: `${list.length + 1}-0`, event, data });
  NAMES.forEach((phase, index) => {
    const title = TITLES[index];
    add('phase.started', { phase, title, index });
    add('phase.completed', { phase, title, index, duration_ms: 1200 + index, output: {} });
    if (options.review && phase === 'draftDecision') {
      add('review.requested', { phase, draft: { recommended: 'Managed Postgres' } });
      add('review.received', { approved: true, feedback: null });
    }
  });
  if (end === 'decision.completed') add(end, { status: 'completed', result: RESULT });
  if (end === 'decision.failed') {
    add(end, {
      status: 'failed',
      error: { phase: 'compileResult', type: 'ModelTimeout', message: 'the model did not answer' },
    });
  }
  if (end === 'decision.cancelled') add(end, { status: 'cancelled' });
  return list;
}

function sse(frame: Frame): string {
  return `id: ${frame.id}\nevent: ${frame.event}\ndata: ${JSON.stringify(frame.data)}\n\n`;
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
  frames: Frame[];
  /** Consumed one per events connection; once empty, a connection sends everything and ends. */
  plans: Plan[];
  honourLastEventId: boolean;
  create: { status: number; body: unknown; type?: string };
  eventsStatus?: number;
  posts: { headers: IncomingHttpHeaders; body: unknown }[];
  streams: { headers: IncomingHttpHeaders }[];
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
  const fake: Fake = {
    url: '',
    frames: frames(),
    plans: [],
    honourLastEventId: true,
    create: {
      status: 202,
      body: {
        process_id: 'dec-1',
        status: 'pending',
        phases: TITLES.map((title, i) => ({ name: NAMES[i], title, status: 'pending' })),
      },
    },
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
        fake.posts.push({ headers: req.headers, body: JSON.parse(body) });
        res.writeHead(fake.create.status, {
          'Content-Type': fake.create.type ?? 'application/json',
          Location: '/decisions/dec-1',
        });
        res.end(JSON.stringify(fake.create.body));
      });
      return;
    }
    if (req.method === 'GET' && req.url === '/decisions/dec-1/events') {
      fake.streams.push({ headers: req.headers });
      if (fake.eventsStatus) {
        res.writeHead(fake.eventsStatus, { 'Content-Type': 'application/problem+json' });
        res.end(JSON.stringify({ status: fake.eventsStatus, detail: 'No decision with id dec-1' }));
        return;
      }
      const last = req.headers['last-event-id'];
      const start =
        fake.honourLastEventId && typeof last === 'string'
          ? fake.frames.findIndex((f) => f.id === last) + 1
          : 0;
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
      const plan = fake.plans.shift();
      const rest = fake.frames.slice(start);
      if (!plan) {
        res.end(rest.map(sse).join(''));
        return;
      }
      const cut = rest[plan.send];
      res.write(`: keep-alive\n\n${rest.slice(0, plan.send).map(sse).join('')}`);
      if (plan.partial && cut) res.write(sse(cut).slice(0, 25));
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
  options: { isTTY?: boolean; env?: Record<string, string>; abortOn?: string },
) {
  const controller = new AbortController();
  const { abortOn } = options;
  const stdout = sink(options.isTTY, (text) => {
    if (abortOn && text.includes(abortOn)) controller.abort();
  });
  const stderr = sink();
  const delays: number[] = [];
  const code = await run(argv, {
    stdout,
    stderr,
    isTTY: options.isTTY ?? false,
    env: options.env ?? {},
    signal: controller.signal,
    sleep: (ms) => {
      delays.push(ms);
      return Promise.resolve();
    },
  });
  return { code, out: stdout.text(), err: stderr.text(), delays };
}

function count(text: string, part: string): number {
  return text.split(part).length - 1;
}

describe('decide rendering', () => {
  it('parses known events and ignores unknown ones', () => {
    expect(
      parseEvent('phase.started', '{"phase":"defineScope","title":"Scope","index":2}'),
    ).toEqual({ type: 'phase.started', phase: 'defineScope', title: 'Scope', index: 2 });
    expect(
      parseEvent('decision.failed', '{"status":"failed","error":{"phase":null,"type":"X"}}'),
    ).toEqual({
      type: 'decision.failed',
      status: 'failed',
      error: { phase: null, type: 'X', message: 'unknown error' },
    });
    expect(parseEvent('phase.progress', '{}')).toBeNull();
    expect(parseEvent(undefined, '{}')).toBeNull();
    expect(() => parseEvent('decision.completed', '{"status":')).toThrow(/not JSON/);
  });

  it('formats problem details with their field errors', () => {
    const problem = toProblem(
      400,
      'Bad Request',
      JSON.stringify({
        type: '/problems/invalid-request',
        title: 'Invalid request',
        status: 400,
        detail: 'The request body is invalid',
        errors: [{ path: 'query', message: 'must not be empty' }],
      }),
    );
    expect(formatProblem(problem)).toBe(
      'Error 400: The request body is invalid\n  - query: must not be empty\n',
    );
    expect(formatProblem(toProblem(502, 'Bad Gateway', '<html>upstream down</html>'))).toBe(
      'Error 502: <html>upstream down</html>\n',
    );
    expect(formatProblem(toProblem(503, 'Service Unavailable', ''))).toBe(
      'Error 503: Service Unavailable\n',
    );
  });

  it('describes phase events as one line each', () => {
    const ctx = { api: 'http://h:1', id: 'dec-1', total: 10 };
    const line = (event: DecisionEvent) => describeEvent(event, ctx);
    expect(line({ type: 'phase.started', phase: 'p', title: 'Identify trigger', index: 0 })).toBe(
      '[ 1/10] Identify trigger: started\n',
    );
    expect(
      line({
        type: 'phase.completed',
        phase: 'p',
        title: 'Compile result',
        index: 9,
        duration_ms: 2500,
        output: {},
      }),
    ).toBe('[10/10] Compile result: completed in 2.5 s\n');
    expect(
      line({
        type: 'phase.failed',
        phase: 'p',
        title: 'Draft decision',
        index: 7,
        error: { type: 'ModelTimeout', message: 'slow' },
      }),
    ).toBe('[ 8/10] Draft decision: failed (ModelTimeout: slow)\n');
    expect(line({ type: 'review.received', approved: false, feedback: 'cheaper' })).toBe(
      'Review received: changes requested: cheaper\n',
    );
    expect(line({ type: 'decision.cancelled', status: 'cancelled' })).toBeNull();
  });

  it('tells the reviewer how to answer, without printing the key', () => {
    const text = reviewInstructions('http://h:1', 'dec 1', {
      auth: true,
      draft: { recommended: 'A' },
    });
    expect(text).toContain('Draft recommends: A');
    expect(text).toContain(
      `curl -X POST http://h:1/decisions/dec%201/review -H 'Content-Type: application/json' -H "Authorization: Bearer $DECISIONS_API_KEY" -d '{"approve":true}'`,
    );
    expect(text).toContain(`-d '{"feedback":"..."}'`);
    expect(reviewInstructions('http://h:1', 'd')).not.toContain('Authorization');
  });

  it('moves the bar forward only', () => {
    let state = { value: 0, label: '' };
    state = progressAfter(
      { type: 'phase.completed', phase: 'p', title: 'T', index: 3, duration_ms: 1, output: {} },
      state,
      10,
    );
    expect(state).toEqual({ value: 4, label: 'T' });
    state = progressAfter({ type: 'phase.started', phase: 'p', title: 'Old', index: 1 }, state, 10);
    expect(state.value).toBe(4);
    state = progressAfter(
      { type: 'decision.completed', status: 'completed', result: {} },
      state,
      10,
    );
    expect(state).toEqual({ value: 10, label: 'Done' });
  });

  it('renders the final decision readably', () => {
    const text = renderResult(RESULT);
    expect(text).toContain('Move billing to managed Postgres\n================================');
    expect(text).toContain('Decision\n  Adopt managed Postgres for the billing database');
    expect(text).toContain('Rationale\n  It scores best');
    expect(text).toContain(
      '  Managed Postgres      0.82\n  Self-hosted Postgres  0.61\n  Stay on MySQL         0.40',
    );
    expect(text).toContain('Risks\n  - Vendor lock-in\n    mitigation: Keep the schema portable');
    expect(text).toContain('Next steps\n  1. Run a two-week pilot\n  2. Plan the cut-over');
    expect(text).toContain('Open questions\n  - Who owns on-call after the move?');
    expect(text).toContain(
      'Usage: 12 model calls, 10,234 input tokens, 2,345 output tokens, 41.2 s model time',
    );
    expect(text).not.toContain('undefined');
  });

  it('skips what a partial result leaves out', () => {
    const text = renderResult({ decision: { decision: 'Do it', open_questions: [] } });
    expect(text).toBe('Decision\n  Do it\n');
  });

  it('formats failures, durations and wrapped text', () => {
    expect(
      renderFailure('dec-1', { phase: 'draftDecision', type: 'ModelTimeout', message: 'slow' }),
    ).toBe('Decision dec-1 failed in phase draftDecision\n  ModelTimeout: slow\n');
    expect(formatDuration(450)).toBe('450 ms');
    expect(formatDuration(61_000)).toBe('1 min 1 s');
    expect(wrap('aaa bbb ccc', 9, '  ')).toBe('  aaa bbb\n  ccc');
  });
});

describe('decide against a fake API', () => {
  it('creates, follows every phase and prints the result (plain lines when piped)', async () => {
    const api = await fakeApi({ frames: frames('decision.completed', { review: true }) });
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
    expect(out).toContain('Decision dec-1 created\n');
    expect(out).toContain('[ 1/10] Identify trigger: started\n');
    expect(out).toContain('[10/10] Compile result: completed in 1.2 s\n');
    expect(out).toContain('Decision dec-1 awaits your review of its draft.');
    expect(out).toContain(`${api.url}/decisions/dec-1/review`);
    expect(out).toContain('Review received: draft approved');
    expect(out).toContain('Decision\n  Adopt managed Postgres for the billing database');
    expect(out).toContain('Usage: 12 model calls');
  });

  it('reconnects with Last-Event-ID after a dropped stream and repeats nothing', async () => {
    const api = await fakeApi({ plans: [{ send: 5, partial: true }] });
    const { code, out, err, delays } = await decide(['--api', api.url, 'q'], {});
    expect(code).toBe(0);
    expect(api.streams).toHaveLength(2);
    expect(api.streams[0]?.headers['last-event-id']).toBeUndefined();
    // Frames 1-0..5-0 arrived whole; the sixth was cut halfway and must come again.
    expect(api.streams[1]?.headers['last-event-id']).toBe('5-0');
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
    expect(api.streams.map((s) => s.headers['last-event-id'])).toEqual([undefined, '8-0', '12-0']);
    expect(delays).toEqual([250, 250]);
    expect(JSON.parse(out)).toEqual(RESULT);
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
        body: {
          type: '/problems/invalid-request',
          title: 'Invalid request',
          status: 400,
          detail: 'The request body is invalid',
          errors: [{ path: 'query', message: 'must be at most 4000 characters' }],
        },
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
    expect(err).toBe('Error 404: No decision with id dec-1\n');
    expect(delays).toEqual([]);
  });

  it('prints only the result JSON with --json, and review instructions on stderr', async () => {
    const api = await fakeApi({ frames: frames('decision.completed', { review: true }) });
    const { code, out, err } = await decide([`--api=${api.url}/`, '--json', 'q'], {});
    expect(code).toBe(0);
    expect(out).toBe(`${JSON.stringify(RESULT, null, 2)}\n`);
    expect(err).toContain(`curl -X POST ${api.url}/decisions/dec-1/review`);
  });

  it('takes the API URL from DECISIONS_API_URL and prints only the id with --no-follow', async () => {
    const api = await fakeApi();
    const { code, out } = await decide(['--no-follow', 'q'], {
      env: { DECISIONS_API_URL: api.url },
    });
    expect(code).toBe(0);
    expect(out).toBe('dec-1\n');
    expect(api.streams).toHaveLength(0);
  });

  it('exits 1 with the phase, type and message when the decision fails', async () => {
    const api = await fakeApi({ frames: frames('decision.failed') });
    const { code, err } = await decide(['--api', api.url, 'q'], {});
    expect(code).toBe(1);
    expect(err).toBe(
      'Decision dec-1 failed in phase compileResult\n  ModelTimeout: the model did not answer\n',
    );
  });

  it('exits 1 when the decision is cancelled', async () => {
    const api = await fakeApi({ frames: frames('decision.cancelled') });
    const { code, err } = await decide(['--api', api.url, 'q'], {});
    expect(code).toBe(1);
    expect(err).toBe('Decision dec-1 was cancelled\n');
  });

  it('draws a progress bar on a terminal', async () => {
    const api = await fakeApi();
    const { code, out } = await decide(['--api', api.url, 'q'], { isTTY: true });
    expect(code).toBe(0);
    expect(out).toContain('10/10 phases');
    expect(out).toContain('Done');
    expect(out).not.toContain('[ 1/10]');
    expect(out).toContain('Usage: 12 model calls');
  });

  it('stops following on Ctrl-C (abort) and says the decision keeps running', async () => {
    const api = await fakeApi({ plans: [{ send: 3, hold: true }] });
    const { code, err } = await decide(['--api', api.url, 'q'], {
      abortOn: 'Identify trigger: completed',
    });
    expect(code).toBe(130);
    expect(err).toBe(
      `Stopped following; decision dec-1 keeps running: ${api.url}/decisions/dec-1\n`,
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

describe('decide with text that tries to drive the terminal', () => {
  const HOSTILE = '\u001b]0;pwned\u0007\u001b[2J\u202e';
  const hostileFrames = () =>
    frames('decision.completed', { review: true }).map((frame) => {
      if (frame.event === 'review.requested') {
        return {
          ...frame,
          data: { phase: 'draftDecision', draft: { recommended: `Managed ${HOSTILE}Postgres` } },
        };
      }
      if (frame.event === 'review.received') {
        return { ...frame, data: { approved: false, feedback: `cheaper ${HOSTILE}please` } };
      }
      if (frame.event !== 'decision.completed') return frame;
      return {
        ...frame,
        data: {
          status: 'completed',
          result: {
            ...RESULT,
            query: `Should we ${HOSTILE}move billing?`,
            decision: { ...RESULT.decision, summary: `Managed Postgres ${HOSTILE}wins.` },
          },
        },
      };
    });
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
      frames: frames('decision.failed').map((f) =>
        f.event === 'decision.failed'
          ? {
              ...f,
              data: {
                status: 'failed',
                error: {
                  phase: 'compileResult',
                  type: 'ModelError',
                  message: `bad ${HOSTILE}answer`,
                },
              },
            }
          : f,
      ),
    });
    const { code, err } = await decide(['--api', api.url, 'q'], {});
    expect(code).toBe(1);
    expect(err).toBe('Decision dec-1 failed in phase compileResult\n  ModelError: bad answer\n');
  });
});
