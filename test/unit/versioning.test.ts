import { msNumberToTs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { describe, expect, it } from 'vitest';
import {
  decisionVersion,
  goneAfterWarning,
  shouldPromote,
  takeOverWatch,
  takesOverFrom,
  type DeploymentState,
} from '../../src/temporal/versioning';

const { VersioningBehavior, WorkerDeploymentVersionStatus: Status } = temporal.api.enums.v1;
type Service = Parameters<typeof takeOverWatch>[0];

const WINDOW = 90_000;
const T0 = Date.parse('2026-12-05T12:00:00Z');

/**
 * A server as the takeover sees it: `current` takes new decisions, each build's version created at
 * the given time, and each build's workers last polling at the given time (absent: not listed, as
 * after a matching restart). Records the builds made current.
 */
function fakeServer(options: {
  current: string;
  created: Record<string, number>;
  lastPoll: Record<string, number>;
}) {
  const promoted: string[] = [];
  const service = {
    describeWorkerDeployment: () =>
      Promise.resolve({
        workerDeploymentInfo: {
          routingConfig: { currentDeploymentVersion: { buildId: options.current } },
          versionSummaries: Object.entries(options.created).map(([buildId, at]) => ({
            deploymentVersion: { deploymentName: 'd', buildId },
            status:
              buildId === options.current
                ? Status.WORKER_DEPLOYMENT_VERSION_STATUS_CURRENT
                : Status.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINING,
            createTime: msNumberToTs(at),
          })),
        },
      }),
    describeTaskQueue: () =>
      Promise.resolve({
        pollers: Object.entries(options.lastPoll).map(([buildId, at]) => ({
          identity: `1@${buildId}`,
          deploymentOptions: { deploymentName: 'd', buildId },
          lastAccessTime: msNumberToTs(at),
        })),
      }),
    setWorkerDeploymentCurrentVersion: (request: { buildId: string }) => {
      promoted.push(request.buildId);
      options.current = request.buildId;
      return Promise.resolve({});
    },
  };
  return { service: service as unknown as Service, promoted, options };
}

/** A running auto worker's takeover check for build `buildId`, on a clock the test moves. */
function watch(server: ReturnType<typeof fakeServer>, buildId: string) {
  let now = T0;
  // pollersByBuild judges lastAccessTime against the real clock: polls are given relative to it.
  const check = takeOverWatch(
    server.service,
    {
      namespace: 'default',
      taskQueue: 'q',
      version: { deploymentName: 'd', buildId },
      liveWindowMs: WINDOW,
    },
    () => now,
  );
  return {
    check,
    advance: (ms: number) => (now += ms),
  };
}

describe('auto takeover: only from an older current build, and only when it stays gone', () => {
  const state = (current: string, created: Record<string, string | null>): DeploymentState => ({
    deployment: 'd',
    current,
    ramping: null,
    versions: Object.entries(created).map(([build_id, created_at]) => ({
      build_id,
      status: build_id === current ? 'current' : 'draining',
      created_at,
    })),
  });

  it('a starting auto worker of an older build does not take over from a newer current one whose workers are gone', () => {
    // A (old) was current, B (new) took over; B's workers pause: A's worker restarting stays off.
    const newer = state('b', { a: '2026-12-01T00:00:00.000Z', b: '2026-12-02T00:00:00.000Z' });
    expect(takesOverFrom(newer, 'a')).toBe(false);
    expect(shouldPromote('auto', newer, 'a', false)).toBe(false);
    // The case: `dev` (older) made current again and stopped; B's worker takes over.
    const devAgain = state('dev', {
      dev: '2026-12-01T00:00:00.000Z',
      b: '2026-12-02T00:00:00.000Z',
    });
    expect(takesOverFrom(devAgain, 'b')).toBe(true);
    expect(shouldPromote('auto', devAgain, 'b', false)).toBe(true);
    expect(shouldPromote('auto', devAgain, 'b', true)).toBe(false);
    // A version whose creation the server does not say is never taken over from, nor takes over.
    expect(
      shouldPromote('auto', state('dev', { dev: null, b: '2026-12-02T00:00:00.000Z' }), 'b', false),
    ).toBe(false);
    // `always` is the developer's single worker: it takes over whatever the age.
    expect(shouldPromote('always', newer, 'a', true)).toBe(true);
  });

  it('a running auto worker of an older build never takes over from a newer current build, however long its workers are gone', async () => {
    const now = Date.now();
    const server = fakeServer({
      current: 'b',
      created: { a: T0 - 2 * 86_400_000, b: T0 - 86_400_000 },
      // B's poller dropped from the list (matching restarted), A's worker polls.
      lastPoll: { a: now },
    });
    const { check, advance } = watch(server, 'a');
    for (let i = 0; i < 10; i++) {
      expect(await check()).toBeNull();
      advance(WINDOW / 3);
    }
    expect(server.promoted).toEqual([]);
  });

  it('a running auto worker of a newer build takes over only after two checks a window apart find the current build gone', async () => {
    const now = Date.now();
    const server = fakeServer({
      current: 'a',
      created: { a: T0 - 2 * 86_400_000, b: T0 - 86_400_000 },
      lastPoll: { b: now },
    });
    const { check, advance } = watch(server, 'b');
    // First seen gone: not yet.
    expect(await check()).toBeNull();
    advance(WINDOW / 3);
    expect(await check()).toBeNull();
    // A's workers are back within the window (a matching restart, a crashloop): it starts over.
    server.options.lastPoll = { a: now, b: now };
    advance(WINDOW / 3);
    expect(await check()).toBeNull();
    server.options.lastPoll = { b: now };
    advance(WINDOW / 3);
    expect(await check()).toBeNull();
    advance(WINDOW - 1);
    expect(await check()).toBeNull();
    expect(server.promoted).toEqual([]);
    // Gone on two checks a whole window apart: B takes over.
    advance(1);
    expect(await check()).toEqual({ previous: 'a' });
    expect(server.promoted).toEqual(['b']);
    expect(await check()).toBeNull();
  });
});

describe("decisionVersion: the build a decision's next step needs", () => {
  const pinnedTo = (buildId: string) => ({
    behavior: VersioningBehavior.VERSIONING_BEHAVIOR_PINNED,
    deploymentVersion: { deploymentName: 'd', buildId },
  });

  it('is the pinned version, unless an override moves it: to the current build (auto-upgrade) or another build', () => {
    expect(decisionVersion(pinnedTo('a'))).toEqual({ deploymentName: 'd', buildId: 'a' });
    // `temporal workflow update-options --versioning-override-behavior auto_upgrade`.
    expect(decisionVersion({ ...pinnedTo('a'), versioningOverride: { autoUpgrade: true } })).toBe(
      null,
    );
    expect(
      decisionVersion({
        ...pinnedTo('a'),
        versioningOverride: { behavior: VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE },
      }),
    ).toBe(null);
    // Pinned to another build, by the override's fields or only the deprecated one.
    expect(
      decisionVersion({
        ...pinnedTo('a'),
        versioningOverride: { pinned: { version: { deploymentName: 'd', buildId: 'c' } } },
      }),
    ).toEqual({ deploymentName: 'd', buildId: 'c' });
    expect(
      decisionVersion({
        ...pinnedTo('a'),
        versioningOverride: {
          behavior: VersioningBehavior.VERSIONING_BEHAVIOR_PINNED,
          pinnedVersion: 'd.0.1.0+abc',
        },
      }),
    ).toEqual({ deploymentName: 'd', buildId: '0.1.0+abc' });
    // Auto-upgrade, before its first step, or unversioned: the current build.
    expect(
      decisionVersion({
        behavior: VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE,
        deploymentVersion: { deploymentName: 'd', buildId: 'a' },
      }),
    ).toBe(null);
    expect(decisionVersion({})).toBe(null);
    expect(decisionVersion(null)).toBe(null);
  });
});

describe('WORKER_GONE_AFTER_SECONDS below 65 s', () => {
  it('is warned of, saying that idle workers are seen polling only once a minute', () => {
    expect(goneAfterWarning(90)).toBeNull();
    expect(goneAfterWarning(65)).toBeNull();
    const warning = goneAfterWarning(30);
    expect(warning).toContain('WORKER_GONE_AFTER_SECONDS=30 is below 65 s');
    expect(warning).toContain('long poll lasts 60 s');
  });
});
