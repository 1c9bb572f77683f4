import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NativeConnection } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { parseApiKeys } from '../../src/api/middleware/auth';
import {
  ApiConfigSchema,
  ConfigError,
  DecisionsCliConfigSchema,
  decisionLimits,
  loadApiConfig,
  loadDecideConfig,
  loadDecisionsCliConfig,
  loadWorkerConfig,
  WorkerConfigSchema,
} from '../../src/config';
import { DEFAULT_LIMITS } from '../../src/domain/decision';
import { createModel } from '../../src/main/model';
import { activitySlotCount, workerOptions } from '../../src/main/start-worker';
import { cgroupMemoryLimitMb } from '../../src/main/worker-memory';
import { OFFLINE_MODEL } from '../../src/llm/offline-model';
import { deploymentNameFor } from '../../src/temporal/versioning';

describe('loadApiConfig', () => {
  it('gives the documented defaults for an empty environment', () => {
    expect(loadApiConfig({})).toMatchObject({
      PORT: 8001,
      TEMPORAL_ADDRESS: '127.0.0.1:7233',
      TEMPORAL_TASK_QUEUE: 'decisions',
      REDIS_URL: 'redis://127.0.0.1:6379',
      MAX_QUERY_CHARS: 4000,
    });
  });

  it('treats an empty variable as unset', () => {
    expect(loadApiConfig({ PORT: '' }).PORT).toBe(8001);
  });

  it('names every bad setting at once', () => {
    const load = () =>
      loadApiConfig({ PORT: 'eighty', REDIS_URL: 'http://x', TEMPORAL_ADDRESS: 'nohostport' });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/PORT[\s\S]*TEMPORAL_ADDRESS[\s\S]*REDIS_URL/);
  });
  it('refuses a REDIS_CLUSTER_NODES that is not a list of host:port, saying what it must be', () => {
    expect(() => loadApiConfig({ REDIS_CLUSTER_NODES: 'redis-a:7000;redis-b' })).toThrow(
      /REDIS_CLUSTER_NODES: must be host:port,host:port/,
    );
    expect(() => loadApiConfig({ REDIS_KEY_PREFIX: 'app{1}:' })).toThrow(
      /REDIS_KEY_PREFIX: must not hold \{ or \}/,
    );
    expect(loadApiConfig({ REDIS_CLUSTER_NODES: 'redis-a:7000,10.0.0.2:7001' })).toMatchObject({
      REDIS_CLUSTER_NODES: 'redis-a:7000,10.0.0.2:7001',
    });
  });
});

describe('configuration by role', () => {
  it("reads only the role's own settings: another role's, however set, are not its concern", () => {
    expect(() =>
      loadApiConfig({ LLM_PROVIDER: 'magic', WORKER_HTTP_PORT: 'x', KNOWLEDGE_DIR: '' }),
    ).not.toThrow();
    expect(() => loadWorkerConfig({ PORT: 'eighty', API_KEY_SECRET: 'short' })).not.toThrow();
    expect(Object.keys(ApiConfigSchema.shape)).not.toContain('LLM_PROVIDER');
    expect(Object.keys(WorkerConfigSchema.shape)).not.toContain('API_KEYS');
    expect(Object.keys(DecisionsCliConfigSchema.shape).sort()).toEqual([
      'DECISION_TTL_SECONDS',
      'REDIS_CLUSTER_NODES',
      'REDIS_COMMAND_TIMEOUT_MS',
      'REDIS_KEY_PREFIX',
      'REDIS_URL',
      'TEMPORAL_ADDRESS',
      'TEMPORAL_NAMESPACE',
      'TEMPORAL_TASK_QUEUE',
      'WORKER_DEPLOYMENT_NAME',
      'WORKER_GONE_AFTER_SECONDS',
    ]);
    expect(() => loadDecisionsCliConfig({ PORT: 'eighty', TEMPORAL_ADDRESS: 'x' })).toThrow(
      /^Invalid configuration:\n {2}TEMPORAL_ADDRESS: must be host:port$/,
    );
    expect(loadDecideConfig({ DECISIONS_API_KEY: 'k', TEMPORAL_ADDRESS: 'x' })).toEqual({
      DECISIONS_API_URL: 'http://127.0.0.1:8001',
      DECISIONS_API_KEY: 'k',
    });
  });

  it('reads NAME_FILE for its own secrets only', () => {
    const missing = join(mkdtempSync(join(tmpdir(), 'config-')), 'missing');
    expect(() => loadApiConfig({ API_KEYS_FILE: missing })).toThrow(/API_KEYS_FILE: cannot read/);
    expect(() => loadWorkerConfig({ API_KEYS_FILE: missing })).not.toThrow();
    expect(() => loadDecisionsCliConfig({ REDIS_URL_FILE: missing })).toThrow(
      /REDIS_URL_FILE: cannot read/,
    );
    expect(() => loadApiConfig({ LLM_API_KEY_FILE: missing })).not.toThrow();
  });
});

describe('loadWorkerConfig for model providers', () => {
  it('runs the offline model when LLM_PROVIDER is unset, and keeps it unset for the warning', () => {
    const config = loadWorkerConfig({});
    expect(config.LLM_PROVIDER).toBeUndefined();
    expect(createModel(config).name).toBe(OFFLINE_MODEL);
    expect(createModel(loadWorkerConfig({ LLM_PROVIDER: 'offline' })).name).toBe(OFFLINE_MODEL);
  });

  it('reads token caps as one number for every phase, or phase=N pairs', () => {
    expect(loadWorkerConfig({}).LLM_MAX_COMPLETION_TOKENS).toEqual({});
    const all = loadWorkerConfig({ LLM_MAX_COMPLETION_TOKENS: '4000' }).LLM_MAX_COMPLETION_TOKENS;
    expect(Object.keys(all)).toHaveLength(10);
    expect(all.compileResult).toBe(4000);
    expect(
      loadWorkerConfig({ LLM_MAX_COMPLETION_TOKENS: 'draftDecision=900, compileResult=1200' })
        .LLM_MAX_COMPLETION_TOKENS,
    ).toEqual({ draftDecision: 900, compileResult: 1200 });
    expect(() => loadWorkerConfig({ LLM_MAX_COMPLETION_TOKENS: 'draft=900' })).toThrow(
      /LLM_MAX_COMPLETION_TOKENS: "draft=900" is not phase=N/,
    );
  });

  it('gives every new decision the configured limits', () => {
    expect(
      decisionLimits(
        loadApiConfig({
          DECISION_MAX_MODEL_CALLS: '12',
          DECISION_MAX_TOKENS: '60000',
          LLM_TIMEOUT_MS: '1500',
        }),
      ),
    ).toEqual({
      budget: { max_model_calls: 12, max_tokens: 60000 },
      model_timeout_ms: 1500,
      payload_max_bytes: 256 * 1024,
    });
    expect(decisionLimits(loadApiConfig({}))).toEqual(DEFAULT_LIMITS);
  });

  it('asks for a model and a key (or a base URL) with LLM_PROVIDER=openai', () => {
    expect(() => loadWorkerConfig({ LLM_PROVIDER: 'openai' })).toThrow(
      /LLM_API_KEY: is required[\s\S]*LLM_MODEL: is required/,
    );
    expect(
      loadWorkerConfig({
        LLM_PROVIDER: 'openai',
        LLM_MODEL: 'm',
        LLM_BASE_URL: 'http://127.0.0.1:11434/v1',
      }),
    ).toMatchObject({
      LLM_MODEL: 'm',
    });
  });

  it('rejects an unknown provider', () => {
    expect(() => loadWorkerConfig({ LLM_PROVIDER: 'magic' })).toThrow(/LLM_PROVIDER/);
  });
});

describe('API keys', () => {
  const KEY = 'k'.repeat(30);

  it('names a key by an HMAC with the server secret, never by a plain hash of it', () => {
    const [a] = parseApiKeys(`${KEY}=decisions:read`, { secret: 'secret-one-0123456789' });
    const [b] = parseApiKeys(`${KEY}=decisions:read`, { secret: 'secret-two-0123456789' });
    const plain = createHash('sha256').update(KEY).digest('hex');
    expect(a!.id).toMatch(/^key-[0-9a-f]{16}$/);
    expect(a!.id).not.toBe(b!.id);
    expect(plain).not.toContain(a!.id.slice(4, 12));
    expect(parseApiKeys(`${KEY}=decisions:read`, { secret: 'secret-one-0123456789' })[0]!.id).toBe(
      a!.id,
    );
  });

  it('takes a name for the key, which survives rotating it', () => {
    const [named] = parseApiKeys(`${KEY}=decisions:read+decisions:write@billing-team`);
    expect(named).toMatchObject({ id: 'billing-team' });
    expect([...named!.scopes]).toEqual(['decisions:read', 'decisions:write']);
  });

  it('takes one name on several keys, each with its own scopes, and no key twice', () => {
    const keys = parseApiKeys(
      `${KEY}=decisions:read+decisions:write@billing,${'n'.repeat(30)}=decisions:read@billing`,
    );
    expect(keys.map((k) => [k.id, [...k.scopes]])).toEqual([
      ['billing', ['decisions:read', 'decisions:write']],
      ['billing', ['decisions:read']],
    ]);
    expect(() => parseApiKeys(`${KEY}=decisions:read@a,${KEY}=decisions:admin@b`)).toThrow(
      'API_KEYS entry 2: this key is given twice',
    );
    expect(() => parseApiKeys(`${KEY}=decisions:read,${KEY}=decisions:admin`)).toThrow(
      'API_KEYS entry 2: this key is given twice',
    );
    // A name cannot take over the decisions of an unnamed key by spelling its id.
    const [unnamed] = parseApiKeys(`${KEY}=decisions:read`, { secret: 'secret-0123456789' });
    expect(() =>
      parseApiKeys(`${KEY}=decisions:read,${'n'.repeat(30)}=decisions:admin@${unnamed!.id}`, {
        secret: 'secret-0123456789',
      }),
    ).toThrow(/entry 2: the name key-[0-9a-f]{16} is an unnamed key's id/);
  });

  it('names a bad entry by its position, never by its characters', () => {
    for (const value of [
      `${KEY}=decisions:read,Zq7short=decisions:read`,
      `${KEY}=decisions:read,Zq7${KEY}=decisions:fly`,
      `Zq7${KEY}`,
    ]) {
      let message = '';
      try {
        parseApiKeys(value, { minLength: 24 });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toMatch(/^API_KEYS entry \d/);
      expect(message).not.toContain('Zq7');
    }
  });
});

describe('loadWorkerConfig for deployment', () => {
  const VERSION = { deploymentName: 'decisions', buildId: 'build-1' };

  it('takes a previous webhook secret only beside the new one it is rotated to', () => {
    const current = `whsec_${'A'.repeat(43)}=`;
    const previous = `whsec_${'B'.repeat(43)}=`;
    expect(() => loadWorkerConfig({ WEBHOOK_PREVIOUS_SECRET: previous })).toThrow(
      /WEBHOOK_PREVIOUS_SECRET: needs WEBHOOK_SECRET/,
    );
    expect(() =>
      loadWorkerConfig({ WEBHOOK_SECRET: current, WEBHOOK_PREVIOUS_SECRET: 'not-a-secret' }),
    ).toThrow(/WEBHOOK_PREVIOUS_SECRET: must be whsec_/);
    expect(
      loadWorkerConfig({ WEBHOOK_SECRET: current, WEBHOOK_PREVIOUS_SECRET: previous }),
    ).toMatchObject({ WEBHOOK_SECRET: current, WEBHOOK_PREVIOUS_SECRET: previous });
  });

  it('reads the webhook ports and DNS servers, refusing what is not one', () => {
    expect(loadWorkerConfig({}).WEBHOOK_ALLOWED_PORTS).toEqual(new Set([80, 443]));
    expect(loadApiConfig({ WEBHOOK_ALLOWED_PORTS: '80, 443,8443' }).WEBHOOK_ALLOWED_PORTS).toEqual(
      new Set([80, 443, 8443]),
    );
    expect(loadApiConfig({ WEBHOOK_ALLOWED_PORTS: '*' }).WEBHOOK_ALLOWED_PORTS).toBe('any');
    for (const bad of ['80,http', '0', '70000', '80;443']) {
      expect(() => loadApiConfig({ WEBHOOK_ALLOWED_PORTS: bad })).toThrow(
        /WEBHOOK_ALLOWED_PORTS: must be a comma-separated list of ports/,
      );
    }
    expect(loadWorkerConfig({}).WEBHOOK_DNS_SERVERS).toEqual([]);
    expect(
      loadWorkerConfig({ WEBHOOK_DNS_SERVERS: '1.1.1.1, 127.0.0.1:5353,[::1]:53,::1' })
        .WEBHOOK_DNS_SERVERS,
    ).toEqual(['1.1.1.1', '127.0.0.1:5353', '[::1]:53', '::1']);
    for (const bad of ['dns.example', '999.1.1.1:53', '1.1.1.1:99999']) {
      expect(() => loadApiConfig({ WEBHOOK_DNS_SERVERS: bad })).toThrow(
        /WEBHOOK_DNS_SERVERS: must be comma-separated server addresses/,
      );
    }
  });

  it('reads a secret from NAME_FILE', () => {
    const dir = mkdtempSync(join(tmpdir(), 'config-'));
    const file = join(dir, 'api-keys');
    writeFileSync(file, 'file-key-0123=decisions:admin\n');
    expect(loadApiConfig({ API_KEYS_FILE: file }).API_KEYS).toBe('file-key-0123=decisions:admin');
    expect(() => loadWorkerConfig({ LLM_API_KEY_FILE: join(dir, 'missing') })).toThrow(
      /LLM_API_KEY_FILE: cannot read/,
    );
  });

  it('builds the options Worker.create gets from the configuration, defaults and settings alike', () => {
    const connection = {} as NativeConnection;
    // A 512 MB container: 256 MB for the idle worker, 40 for 1000 cached workflows, 216 slots.
    const parts = {
      connection,
      workflowCode: 'code',
      version: VERSION,
      plugins: [],
      memoryLimitMb: 512,
    };
    const fixed = (numSlots: number) => ({ type: 'fixed-size', numSlots });
    expect(workerOptions(loadWorkerConfig({}), parts)).toEqual({
      connection,
      namespace: 'default',
      taskQueue: 'decisions',
      workflowBundle: { code: 'code' },
      workerDeploymentOptions: {
        version: VERSION,
        useWorkerVersioning: true,
        defaultVersioningBehavior: 'PINNED',
      },
      tuner: {
        activityTaskSlotSupplier: fixed(216),
        workflowTaskSlotSupplier: fixed(40),
        localActivityTaskSlotSupplier: fixed(100),
        nexusTaskSlotSupplier: fixed(1),
      },
      maxCachedWorkflows: 1000,
      maxHeartbeatThrottleInterval: '1 second',
      shutdownGraceTime: '30 seconds',
      plugins: [],
    });
    const set = loadWorkerConfig({
      TEMPORAL_NAMESPACE: 'billing',
      TEMPORAL_TASK_QUEUE: 'decisions-eu',
      WORKER_MAX_ACTIVITIES: '7',
      WORKER_MAX_WORKFLOW_TASKS: '3',
      WORKER_MAX_CACHED_WORKFLOWS: '0',
      WORKER_SHUTDOWN_GRACE_SECONDS: '2',
      WORKER_VERSIONING: 'off',
    });
    expect(workerOptions(set, parts)).toMatchObject({
      namespace: 'billing',
      taskQueue: 'decisions-eu',
      workerDeploymentOptions: undefined,
      tuner: {
        activityTaskSlotSupplier: fixed(7),
        workflowTaskSlotSupplier: fixed(3),
        localActivityTaskSlotSupplier: fixed(100),
        nexusTaskSlotSupplier: fixed(1),
      },
      maxCachedWorkflows: 0,
      shutdownGraceTime: '2 seconds',
    });
  });

  it("derives activity slots from the memory limit, the cgroup's (v2, else v1) or 1 GiB", () => {
    const files = (entries: Record<string, string>) => (path: string) => {
      if (path in entries) return entries[path]!;
      throw new Error(`ENOENT: ${path}`);
    };
    const v2 = '/sys/fs/cgroup/memory.max';
    const v1 = '/sys/fs/cgroup/memory/memory.limit_in_bytes';
    expect(cgroupMemoryLimitMb(files({ [v2]: `${512 * 2 ** 20}\n` }))).toBe(512);
    expect(cgroupMemoryLimitMb(files({ [v2]: 'max\n', [v1]: `${2 ** 30}` }))).toBeNull();
    expect(cgroupMemoryLimitMb(files({ [v1]: `${2 ** 30}` }))).toBe(1024);
    expect(cgroupMemoryLimitMb(files({ [v1]: '9223372036854771712' }))).toBeNull();
    expect(cgroupMemoryLimitMb(files({}))).toBeNull();

    const defaults = loadWorkerConfig({});
    // 1 GiB less the idle worker (256 MB) and 1000 cached workflows (40 MB), 1 MB a phase.
    expect(activitySlotCount(defaults, null)).toBe(728);
    expect(activitySlotCount(defaults, 300)).toBe(10);
    expect(activitySlotCount(defaults, 8192)).toBe(2000);
    expect(activitySlotCount({ ...defaults, WORKER_MAX_CACHED_WORKFLOWS: 0 }, 512)).toBe(256);
    expect(activitySlotCount(loadWorkerConfig({ WORKER_MAX_ACTIVITIES: '50' }), 8192)).toBe(50);
  });

  it("reads the worker's HTTP port, off to turn it off, and refuses a workflow-task limit below 2", () => {
    expect(loadWorkerConfig({}).WORKER_HTTP_PORT).toBe(8002);
    expect(loadWorkerConfig({ WORKER_HTTP_PORT: 'off' }).WORKER_HTTP_PORT).toBeNull();
    expect(() => loadWorkerConfig({ WORKER_MAX_WORKFLOW_TASKS: '1' })).toThrow(
      /WORKER_MAX_WORKFLOW_TASKS/,
    );
  });

  it('names the worker version after the task queue unless told, and refuses names Temporal would', () => {
    const config = loadWorkerConfig({ TEMPORAL_TASK_QUEUE: 'decisions.eu:1' });
    expect(config).toMatchObject({ WORKER_PROMOTION: 'auto' });
    expect(config.WORKER_BUILD_ID).toBeUndefined();
    expect(deploymentNameFor(config)).toBe('decisions-eu-1');
    expect(deploymentNameFor(loadWorkerConfig({ WORKER_DEPLOYMENT_NAME: 'billing' }))).toBe(
      'billing',
    );
    expect(loadWorkerConfig({ WORKER_BUILD_ID: '1.4.0+git.3f2a9c1' }).WORKER_BUILD_ID).toBe(
      '1.4.0+git.3f2a9c1',
    );
    expect(() => loadWorkerConfig({ WORKER_DEPLOYMENT_NAME: 'decisions.v2' })).toThrow(
      /WORKER_DEPLOYMENT_NAME: .*Temporal refuses \. and :/,
    );
    expect(() => loadWorkerConfig({ WORKER_BUILD_ID: '__internal' })).toThrow(/WORKER_BUILD_ID/);
    expect(() => loadWorkerConfig({ WORKER_BUILD_ID: 'has space' })).toThrow(/WORKER_BUILD_ID/);
    expect(() => loadWorkerConfig({ WORKER_PROMOTION: 'sometimes' })).toThrow(/WORKER_PROMOTION/);
  });
});
