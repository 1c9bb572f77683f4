import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DecisionRecord } from '../../src/domain/decision';
import { portIsFree } from '../../tools/process/ports';
import { newWebhookSecret } from '../../src/webhooks/deliver';
import { uniqueName } from '../support/context';
import { freePort } from '../support/ports';
import { prebuiltBundle, startInOwnGroup } from '../support/processes';
import { parseSse } from '../support/streams';
import { waitFor } from '../support/wait';

/** The process group a process runs in, or null once it has exited. */
function groupOf(pid: number): number | null {
  try {
    return Number(execFileSync('ps', ['-o', 'pgid=', '-p', String(pid)], { encoding: 'utf8' }));
  } catch {
    return null;
  }
}

// `npm start` as a person runs it in a terminal: its own Temporal dev server and redis-server
// (on ports of the test's own), a worker and the API in one process, stopped by one Ctrl-C.
describe('npm start itself', () => {
  it('runs a decision; one Ctrl-C to its process group reaches only it, and it stops every process it started', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dev-main-'));
    const ports = {
      PORT: await freePort(),
      temporal: await freePort(),
      TEMPORAL_UI_PORT: await freePort(),
      redis: await freePort(),
      WORKER_HTTP_PORT: await freePort(),
      metrics: await freePort(),
    };
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: String(ports.PORT),
      TEMPORAL_ADDRESS: `127.0.0.1:${ports.temporal}`,
      TEMPORAL_UI_PORT: String(ports.TEMPORAL_UI_PORT),
      TEMPORAL_DB_FILE: join(dir, 'temporal.sqlite'),
      TEMPORAL_TASK_QUEUE: uniqueName('dev-main'),
      REDIS_URL: `redis://127.0.0.1:${ports.redis}`,
      REDIS_DATA_DIR: join(dir, 'redis'),
      WORKER_HTTP_PORT: String(ports.WORKER_HTTP_PORT),
      WORKER_SDK_METRICS_ADDRESS: `127.0.0.1:${ports.metrics}`,
      WORKFLOW_BUNDLE_PATH: prebuiltBundle(),
      WEBHOOK_SECRET: newWebhookSecret(),
      LLM_PROVIDER: 'offline',
      // Paced, as npm start's own 1.5 s per answer is, but quicker.
      LLM_OFFLINE_DELAY_MS: '300',
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'warn',
    };
    // As in a terminal: Ctrl-C reaches tsx, the entry point, and anything else left in its group.
    const started = startInOwnGroup('tools/dev.ts', env);
    const main = started.child;
    const out = () => started.output();
    try {
      await started.summary(120_000);
      const temporalPid = Number(/Temporal dev server \(pid (\d+)\)/.exec(out())?.[1]);
      const redisPid = Number(/Started redis-server \(pid (\d+)\)/.exec(out())?.[1]);
      expect(temporalPid, out()).toBeGreaterThan(0);
      expect(redisPid, out()).toBeGreaterThan(0);
      // The terminal's group is npm start's alone: each server has a group of its own.
      const group = groupOf(main.pid!);
      expect(group).toBe(main.pid);
      for (const pid of [temporalPid, redisPid]) {
        const own = groupOf(pid);
        expect(own).not.toBeNull();
        expect(own).not.toBe(group);
      }

      const api = `http://127.0.0.1:${ports.PORT}`;
      const res = await fetch(`${api}/decisions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ query: 'Should npm start answer its own decisions?' }),
      });
      expect(res.status).toBe(202);
      const { process_id } = (await res.json()) as { process_id: string };
      const done = await waitFor('the decision to complete', async () => {
        const record = (await (await fetch(`${api}/decisions/${process_id}`)).json()) as
          DecisionRecord | undefined;
        return record?.status === 'completed' || record?.status === 'failed' ? record : undefined;
      });
      expect(done.status, JSON.stringify(done.error)).toBe('completed');
      // The model's answers were streamed live, in many pieces each.
      const stream = await (await fetch(`${api}/decisions/${process_id}/events`)).text();
      const deltas = parseSse(stream).filter((f) => f.event === 'phase.delta');
      const phases = new Set(deltas.map((f) => (JSON.parse(f.data) as { phase: string }).phase));
      expect(phases.size).toBe(10);
      expect(deltas.length).toBeGreaterThan(30);

      // What a terminal sends on Ctrl-C: SIGINT to every process in the foreground group.
      process.kill(-main.pid!, 'SIGINT');
      expect(await started.exited, out()).toBe(0);
      expect(out()).not.toContain('exiting without waiting');
      // Nothing failed on the way down (the servers are stopped last, after the worker).
      expect(out()).not.toMatch(/Worker failed|Shutdown failed/);
      for (const pid of [temporalPid, redisPid]) expect(groupOf(pid), `pid ${pid}`).toBeNull();
      for (const [name, port] of Object.entries(ports)) {
        expect(await portIsFree(port), `${name} port ${port} is still in use`).toBe(true);
      }
    } finally {
      if (main.exitCode === null) process.kill(-main.pid!, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});
