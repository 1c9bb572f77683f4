import { RateLimiterMemory } from 'rate-limiter-flexible';
import { describe, expect, it } from 'vitest';
import { RedisKeys } from '../../src/projection/keys';
import {
  classifyKey,
  commandStats,
  decisionsPerGib,
  perDecision,
  perSecondForGib,
  perSecondPerCore,
  redisPlan,
  totalsByKind,
  type KeySample,
} from '../../tools/bench/key-kinds';

const PREFIX = 'decisions:';
const ID = '3f2b8c1e-5a4d-4e6f-9b7a-0c1d2e3f4a5b';

describe('classifyKey', () => {
  it.each([
    ['one Redis', false],
    ['a Redis Cluster (hash tags)', true],
  ])("sorts the projection's own key names on %s by kind and decision", (_, cluster) => {
    const keys = new RedisKeys(PREFIX, cluster);
    expect(classifyKey(keys.record(ID), PREFIX)).toEqual({ kind: 'record', decision: ID });
    expect(classifyKey(keys.result(ID), PREFIX)).toEqual({ kind: 'result', decision: ID });
    expect(classifyKey(keys.events(ID), PREFIX)).toEqual({ kind: 'events', decision: ID });
    expect(classifyKey(keys.live(ID), PREFIX)).toEqual({ kind: 'live', decision: ID });
    const bucket = keys.bucketOf(ID);
    for (const key of [keys.created(bucket), keys.completed(bucket), keys.owner('team-a')]) {
      expect(classifyKey(key, PREFIX)).toEqual({ kind: 'index', decision: null });
    }
  });

  it('reads the same kinds and decision when keys carry hash tags elsewhere', () => {
    expect(classifyKey(`${PREFIX}decision:{${ID}}`, PREFIX)).toEqual({
      kind: 'record',
      decision: ID,
    });
    expect(classifyKey(`${PREFIX}decision:{${ID}}:events`, PREFIX).kind).toBe('events');
    expect(classifyKey(`${PREFIX}decision:{${ID}}:live`, PREFIX).kind).toBe('live');
    expect(classifyKey(`${PREFIX}{decision:${ID}}:result`, PREFIX)).toEqual({
      kind: 'result',
      decision: ID,
    });
    expect(classifyKey(`${PREFIX}budget:{${ID}}:run-1`, PREFIX)).toEqual({
      kind: 'ledger',
      decision: ID,
    });
    expect(classifyKey(`{${PREFIX}index}:created`, PREFIX).kind).toBe('index');
  });

  it('gives the ledger and the stored answers to the workflow their scope names', () => {
    expect(classifyKey(`${PREFIX}budget:${ID}:run-1`, PREFIX)).toEqual({
      kind: 'ledger',
      decision: ID,
    });
    expect(classifyKey(`${PREFIX}llm:${ID}:run-1:3:${'ab'.repeat(32)}`, PREFIX)).toEqual({
      kind: 'response',
      decision: ID,
    });
  });

  it("counts the limiters' and the event hub's keys as shared", () => {
    const limiter = new RateLimiterMemory({
      keyPrefix: `${PREFIX}ratelimit`,
      points: 1,
      duration: 60,
    });
    expect(classifyKey(limiter.getKey('bench'), PREFIX)).toEqual({
      kind: 'rate-limit',
      decision: null,
    });
    expect(classifyKey(`${PREFIX}authfail:10.0.0.1`, PREFIX).kind).toBe('rate-limit');
    expect(classifyKey(`${PREFIX}provider-limit:{openai:host:model}:log`, PREFIX).kind).toBe(
      'provider-limit',
    );
    expect(classifyKey(`${PREFIX}events-hub:${ID}`, PREFIX).kind).toBe('hub');
  });

  it('calls keys outside the prefix, or of no known shape, other', () => {
    expect(classifyKey(`bull:queue:${ID}`, PREFIX)).toEqual({ kind: 'other', decision: null });
    expect(classifyKey(`${PREFIX}decision:${ID}:unknown`, PREFIX).kind).toBe('other');
    expect(classifyKey(`${PREFIX}something`, PREFIX).kind).toBe('other');
  });
});

describe('totalsByKind', () => {
  const key = (suffix: string, id = ID) => `${PREFIX}decision:${id}${suffix}`;
  const samples: KeySample[] = [
    { key: key(''), bytes: 1000, entries: 20, ttlMs: 3_600_000 },
    { key: key(':events'), bytes: 3000, entries: 22, ttlMs: 3_599_400 },
    { key: key('', 'other-decision'), bytes: 999_999, entries: 1, ttlMs: -1 },
    { key: `${PREFIX}llm:${ID}:r:1:h1`, bytes: 500, entries: 1, ttlMs: 3_000_000 },
    { key: `${PREFIX}llm:${ID}:r:2:h2`, bytes: 700, entries: 1, ttlMs: 3_500_000 },
    { key: `${PREFIX}index:created`, bytes: 400, entries: 5, ttlMs: -1 },
  ];

  it("adds up the given decisions' keys by kind and leaves other decisions' keys out", () => {
    const { decisions, shared } = totalsByKind(samples, PREFIX, new Set([ID]));
    expect(decisions.record).toEqual({
      keys: 1,
      bytes: 1000,
      entries: 20,
      no_ttl: 0,
      ttl_s: { min: 3600, max: 3600 },
    });
    expect(decisions.response).toEqual({
      keys: 2,
      bytes: 1200,
      entries: 2,
      no_ttl: 0,
      ttl_s: { min: 3000, max: 3500 },
    });
    expect(shared.index).toEqual({ keys: 1, bytes: 400, entries: 5, no_ttl: 1, ttl_s: null });
    expect(Object.keys(decisions).sort()).toEqual(['events', 'record', 'response']);
  });

  it('divides a kind among the decisions, keys and entries included', () => {
    const { decisions } = totalsByKind(samples, PREFIX, new Set([ID]));
    expect(perDecision(decisions.response, 2)).toEqual({ keys: 1, bytes: 600, entries: 1 });
    expect(perDecision(undefined, 2)).toEqual({ keys: 0, bytes: 0, entries: 0 });
  });
});

describe('sizing arithmetic', () => {
  it("keeps a TTL's worth of finished decisions and a run's worth of running ones", () => {
    const plan = redisPlan({
      perSecond: 2,
      ttlSeconds: 3600,
      decisionSeconds: 30,
      finishedBytes: 100_000,
      runningBytes: 50_000,
      cpuMsPerDecision: 25,
      commandsPerDecision: 900,
    });
    expect(plan).toEqual({
      kept: 7200,
      running: 60,
      bytes: 7200 * 100_000 + 60 * 50_000,
      cores: 0.05,
      commandsPerSecond: 1800,
    });
  });

  it('counts decisions a GiB holds, the steady rate that fills it, and decisions a core carries', () => {
    expect(decisionsPerGib(128 * 1024, 1)).toBe(8192);
    expect(decisionsPerGib(100_000, 4)).toBe(Math.floor((4 * 2 ** 30) / 100_000));
    expect(perSecondForGib(128 * 1024, 1, 8192)).toBe(1);
    expect(perSecondPerCore(25)).toBe(40);
    expect(perSecondPerCore(0)).toBe(Infinity);
  });
});

describe('commandStats', () => {
  it("reads each command's calls and time, subcommands by their own name", () => {
    const info = [
      '# Commandstats',
      'cmdstat_evalsha:calls=52,usec=4100,usec_per_call=78.85,rejected_calls=0,failed_calls=0',
      'cmdstat_memory|usage:calls=30,usec=600,usec_per_call=20.00,rejected_calls=0,failed_calls=0',
      'used_memory:123',
    ].join('\r\n');
    expect(commandStats(info)).toEqual({
      evalsha: { calls: 52, usec: 4100 },
      'memory|usage': { calls: 30, usec: 600 },
    });
  });
});
