import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services, testProjection, uniqueName, waitFor } from '../support/context';
import { freePort } from '../support/ports';
import { prebuiltBundle, root, startRole, stopRole } from '../support/processes';
import { parseSse } from '../support/streams';

const API_KEY = 'client-package-key-0123456789abcdef';
const auth = { Authorization: `Bearer ${API_KEY}` };

/** The README's client program: the TypeScript block after its `client-example` marker. */
function readmeProgram(): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const marker = readme.indexOf('<!-- client-example:');
  const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(marker));
  if (marker < 0 || !block) throw new Error('README.md has no client-example program');
  return block[1]!;
}

/**
 * What an outside program may and may not do with the types: each `@ts-expect-error` must meet an
 * error (tsc fails on one that does not), so with types that were `any` the check would fail.
 */
const TYPES_PROGRAM = `import {
  createDecisionClient,
  DecisionApiError,
  type DecisionEvent,
  type Problem,
} from 'decision-backend/client';

const api = createDecisionClient({ baseUrl: 'http://127.0.0.1:8001' });

export async function follow(id: string): Promise<string[]> {
  const seen: string[] = [];
  for await (const event of api.events(id)) {
    // @ts-expect-error: a phase.started event carries no result
    if (event.type === 'phase.started') seen.push(event.data.result);
    if (event.type === 'phase.delta') seen.push(event.data.text);
    if (event.type === 'decision.failed') seen.push(event.data.error.message);
    const any: DecisionEvent = event;
    // @ts-expect-error: no event has this type
    if (any.type === 'phase.finished') seen.push(any.id);
  }
  return seen;
}

export async function misuse(): Promise<void> {
  // @ts-expect-error: a create needs a query
  await api.create({ review: true });
  // @ts-expect-error: no decision has this status
  api.list({ status: 'done' });
  // @ts-expect-error: a review approves or gives feedback
  await api.review('id', { approve: 'yes' });
  try {
    await api.get('id');
  } catch (err) {
    if (!(err instanceof DecisionApiError)) throw err;
    const problem: Problem = err.problem;
    const status: number = err.status;
    const wait: number | undefined = err.retryAfter;
    console.log(problem.detail, status, wait);
  }
}
`;

describe('decision-backend/client, installed in an outside project', () => {
  let api: ReturnType<typeof startRole>;
  let worker: ReturnType<typeof startRole>;
  let baseUrl: string;
  let store: ReturnType<typeof testProjection>;
  let project: string;

  /** Runs a command in the outside project; throws with its output when it fails. */
  const runIn = (command: string, args: string[], env: NodeJS.ProcessEnv = {}) => {
    const ran = spawnSync(command, args, {
      cwd: project,
      encoding: 'utf8',
      env: { ...process.env, ...env },
      timeout: 120_000,
    });
    if (ran.status !== 0) {
      throw new Error(
        `${command} ${args.join(' ')} exited ${ran.status}:\n${ran.stdout}\n${ran.stderr}`,
      );
    }
    return ran.stdout;
  };

  beforeAll(async () => {
    // What `npm install` (the prepare script) builds: dist/client, the package's export.
    const built = spawnSync('npm', ['run', 'build:client'], { cwd: root, encoding: 'utf8' });
    if (built.status !== 0) throw new Error(`build:client failed:\n${built.stdout}${built.stderr}`);

    project = mkdtempSync(join(tmpdir(), 'client-user-'));
    mkdirSync(join(project, 'node_modules', '@types'), { recursive: true });
    // As `npm install <path of a checkout>` links it.
    symlinkSync(root, join(project, 'node_modules', 'decision-backend'), 'dir');
    symlinkSync(
      join(root, 'node_modules', '@types', 'node'),
      join(project, 'node_modules', '@types', 'node'),
      'dir',
    );
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'client-user', private: true, type: 'module' }),
    );
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'es2023',
          lib: ['es2023'],
          module: 'nodenext',
          moduleResolution: 'nodenext',
          types: ['node'],
          strict: true,
          exactOptionalPropertyTypes: true,
          noUncheckedIndexedAccess: true,
          // The package's declarations are checked too, as a strict project would.
          skipLibCheck: false,
          noEmit: true,
        },
        include: ['*.mts'],
      }),
    );
    writeFileSync(join(project, 'first.mts'), readmeProgram());
    writeFileSync(join(project, 'types.mts'), TYPES_PROGRAM);

    store = testProjection();
    const port = await freePort();
    const env = {
      TEMPORAL_ADDRESS: services.temporalAddress,
      TEMPORAL_TASK_QUEUE: uniqueName('client'),
      REDIS_URL: services.redisUrl,
      REDIS_KEY_PREFIX: store.prefix,
      PORT: String(port),
      API_KEYS: `${API_KEY}=decisions:admin@client`,
    };
    baseUrl = `http://127.0.0.1:${port}`;
    worker = startRole('src/main/worker.ts', {
      ...env,
      WORKER_HTTP_PORT: String(await freePort()),
      WORKER_SDK_METRICS_ADDRESS: `127.0.0.1:${await freePort()}`,
      WORKFLOW_BUNDLE_PATH: prebuiltBundle(),
    });
    api = startRole('src/main/api.ts', env);
    await waitFor(
      'the worker to poll',
      () => (worker.output().includes('Worker polling') ? true : undefined),
      90_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nworker output:\n${worker.output()}`);
    });
    await waitFor('the API to answer /health', async () => {
      const res = await fetch(`${baseUrl}/health`).catch(() => null);
      return res?.ok ? true : undefined;
    }).catch((err: Error) => {
      throw new Error(`${err.message}\nAPI output:\n${api.output()}`);
    });
  }, 180_000);

  afterAll(async () => {
    await Promise.all([api && stopRole(api.child), worker && stopRole(worker.child)]);
    await store?.cleanup();
    if (project) rmSync(project, { recursive: true, force: true });
  });

  it("type-checks under --strict with the package's own types, which refuse what the API would", () => {
    runIn(process.execPath, [resolve(root, 'node_modules/typescript/bin/tsc'), '-p', '.']);
  });

  it("runs the README's program: it prints each event the API stored, up to the decision's result", async () => {
    const out = runIn(process.execPath, ['first.mts'], {
      DECISIONS_API_URL: baseUrl,
      DECISIONS_API_KEY: API_KEY,
    });
    // The decision the program made, and its stream as the API serves it.
    const listing = (await (await fetch(`${baseUrl}/decisions`, { headers: auth })).json()) as {
      items: { process_id: string; query: string }[];
    };
    const made = listing.items.filter(
      (d) => d.query === 'Should we move billing to a managed Postgres?',
    );
    expect(made).toHaveLength(1);
    const res = await fetch(`${baseUrl}/decisions/${made[0]!.process_id}/events?deltas=false`, {
      headers: auth,
    });
    const frames = parseSse(await res.text());
    expect(frames.filter((f) => f.event === 'phase.completed')).toHaveLength(10);
    expect(frames.at(-1)?.event).toBe('decision.completed');
    const lines = frames.map((f) => {
      const data = JSON.parse(f.data) as {
        title: string;
        output: { summary: string };
        result: { decision: { summary: string } };
      };
      if (f.event === 'phase.completed') return `${data.title} ${data.output.summary}`;
      if (f.event === 'decision.completed') return data.result.decision.summary;
      return f.event;
    });
    expect(out).toBe(`${lines.join('\n')}\n`);
  });

  it('loads with require() as well, from a CommonJS program', () => {
    const out = runIn(process.execPath, [
      '-e',
      "const c = require('decision-backend/client'); console.log(typeof c.createDecisionClient, typeof c.DecisionApiError)",
    ]);
    expect(out).toBe('function function\n');
  });
});
