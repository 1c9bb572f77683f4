import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '../support/context';
import {
  apiFuzzed,
  keyRotation,
  dnsStalls,
  modelFaults,
  webhookReceivers,
  permanentFaults,
  redisTroubles,
  streamFlood,
  temporalPaused,
  temporalRestarted,
  workerKilledAfterAnswer,
  workerKilledInPhases,
} from '../../tools/chaos/scenarios';
import { startStack, type Stack } from '../../tools/chaos/stack';

// The quick subset of `npm run chaos`: the same scenarios, smaller, against real processes.
describe('chaos (quick subset of npm run chaos)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ temporalCli: services.temporalCliPath, workers: 2 });
  }, 180_000);
  afterAll(async () => {
    await stack?.stop();
  }, 60_000);

  it('answers generated requests, valid and invalid, with no 5xx and problem documents', async () => {
    const figures = await apiFuzzed(stack, 300);
    expect(figures.checks.slice(1)).toEqual([
      '0 answers 5xx',
      '0 answers 4xx without a problem document',
      '0 without an answer in 10 s',
    ]);
    expect(figures.checks[0]).toMatch(/^300 answered: /);
    expect(figures.ok).toBe(true);
  }, 120_000);

  it('a 401 or a 400 from the model fails the decision after one call', async () => {
    const figures = await permanentFaults(stack);
    expect(figures.checks).toEqual(['401: failed after 1 call', '400: failed after 1 call']);
    expect(figures.ok).toBe(true);
  });

  it('decisions complete with 429, 500, timeout and malformed answers at 30 % of calls', async () => {
    const figures = await modelFaults(stack, 2);
    expect(figures).toMatchObject({ decisions: 2, completed: 2, ok: true });
    // Faults were injected, at about the rate the title says.
    const faulted = Number(/, (\d+) faulted/.exec(figures.checks[0] ?? '')?.[1]);
    expect(faulted).toBeGreaterThan(stack.model.requests.length * 0.15);
  }, 120_000);

  it('a decision completes after its workers are SIGKILLed mid-phase, each phase once', async () => {
    const figures = await workerKilledInPhases(stack, ['analyzeRootCause']);
    expect(figures).toMatchObject({ decisions: 1, completed: 1, ok: true });
  }, 120_000);

  it('a model answer stored before the workers die is never asked for again', async () => {
    const figures = await workerKilledAfterAnswer(stack, ['identifyInformationNeeds']);
    expect(figures).toMatchObject({ decisions: 1, completed: 1, ok: true });
  }, 120_000);

  it('no decision is lost when Redis is paused, flushed and restarted; reads and streams end', async () => {
    const figures = await redisTroubles(stack, 2);
    expect(figures).toMatchObject({ decisions: 2, completed: 2, ok: true });
    expect(figures.checks.slice(1)).toEqual([
      '2/2 completed in the projection',
      '2/2 event streams end with decision.completed',
    ]);
  }, 120_000);

  it('while the dev server is paused: reads within the deadline, creates 503 and none lost', async () => {
    const figures = await temporalPaused(stack, {
      reads: 100,
      creates: 5,
      streams: 3,
      pauseMs: 8000,
    });
    expect(figures).toMatchObject({ decisions: 5, completed: 5, ok: true });
    expect(figures.checks.at(-1)).toBe('0 answers 5xx other than 503; 0 503 without Retry-After');
  }, 180_000);

  it('decisions complete after the dev server is killed and restarted on its SQLite file', async () => {
    const figures = await temporalRestarted(stack, 2);
    expect(figures).toMatchObject({ decisions: 2, completed: 2, ok: true });
  }, 120_000);

  it('a flood of HEAD and abandoned GET event streams leaves no slot held', async () => {
    const figures = await streamFlood(stack, 200);
    expect(figures.checks[1]).toBe('after: 0 slots held; the key opened 20/20, then 429');
    expect(figures.checks[2]).toBe("another key's stream: 200");
    expect(figures).toMatchObject({ decisions: 2, completed: 2, ok: true });
  }, 120_000);

  it('decisions run through a key rotation and read with the new key; the old one gets 401', async () => {
    const figures = await keyRotation(stack, 2);
    expect(figures.checks).toEqual([
      'during the move: old key read 2/2, new key 2/2',
      'old key after its removal: 401',
      '3/3 read completed with the new key, 3/3 in its list',
    ]);
    expect(figures).toMatchObject({ decisions: 3, completed: 3, ok: true });
  }, 180_000);

  it('creates with a webhook answer 503 within the DNS timeout while the DNS server stalls; others 202', async () => {
    const figures = await dnsStalls(stack, 10);
    expect(figures.checks[0]).toMatch(/^10\/10 with a webhook answered 503 \(ETIMEOUT\)/);
    expect(figures.checks[1]).toMatch(/^20\/20 without answered 202/);
    expect(figures.checks[2]).toBe('20 decisions started (20 expected: none for a 503)');
    expect(figures.ok).toBe(true);
  }, 120_000);

  it('webhook deliveries: a 404 is sent 3 times and failed, a 500 retried, a hang timed out, none lost', async () => {
    const figures = await webhookReceivers(stack, 30);
    expect(figures.checks[0]).toMatch(/^404: 10\/10 sent exactly 3 times, then failed/);
    expect(figures.checks[2]).toMatch(
      /^hang: 10\/10 sent \(\d+ attempts, 0 answered\), last_error "No answer: timeout" on 10;/,
    );
    expect(figures.checks[3]).toMatch(/^0 deliveries not failed in the end/);
    expect(figures).toMatchObject({ decisions: 8, completed: 8, ok: true });
  }, 240_000);
});
