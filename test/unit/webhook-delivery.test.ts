import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { WebhookMessage } from '../../src/domain/webhook';
import { lookup } from 'node:dns/promises';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkWebhookUrl,
  nonPublicRange,
  WebhookCheckUnavailable,
  WebhookUrlError,
} from '../../src/webhooks/address';
import { Webhook } from 'standardwebhooks';
import { failureKind, postWebhook } from '../../src/webhooks/deliver';
import { createResolve, parseHosts } from '../../src/webhooks/resolver';
import { principalSecret } from '../../src/webhooks/secret';
import { startStalledDns } from '../support/stalled-dns';
import { startReceiver, verifySignature } from '../support/webhook-receiver';

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;

function message(url: string): WebhookMessage {
  return {
    id: 'msg_test_1_1',
    decision_id: 'test',
    url,
    body: {
      type: 'decision.completed',
      timestamp: new Date().toISOString(),
      decision_id: 'test',
      data: { status: 'completed' },
    },
    timeout_ms: 2000,
    retry_ms: 60_000,
  };
}

describe('webhook addresses', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.5.4', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'linkLocal'],
    ['100.64.0.1', 'carrierGradeNat'],
    ['0.0.0.0', 'unspecified'],
    ['::1', 'loopback'],
    ['fe80::1', 'linkLocal'],
    ['fd00::1', 'uniqueLocal'],
    ['::ffff:10.0.0.1', 'private'],
    ['::127.0.0.1', 'loopback'],
    // How a URL spells [::127.0.0.1]: the deprecated IPv4-compatible form.
    ['::7f00:1', 'ipv4Compatible'],
    ['::808:808', 'ipv4Compatible'],
  ])('counts %s as %s, not public', (address, range) => {
    expect(nonPublicRange(address)).toBe(range);
  });

  it.each(['93.184.215.14', '2606:4700:4700::1111', '8.8.8.8'])('counts %s as public', (a) => {
    expect(nonPublicRange(a)).toBeNull();
  });

  it('checks every address a name resolves to, not only the first', async () => {
    const resolve = () =>
      Promise.resolve([
        { address: '93.184.215.14', family: 4 },
        { address: '10.0.0.7', family: 4 },
      ]);
    await expect(
      checkWebhookUrl('https://hooks.example/x', { allowPrivateNetworks: false, resolve }),
    ).rejects.toThrow('hooks.example resolves to a private address');
    await expect(
      checkWebhookUrl('https://hooks.example/x', { allowPrivateNetworks: true, resolve }),
    ).resolves.toBeInstanceOf(URL);
  });

  it('refuses credentials in the URL, which would be kept in the decision', async () => {
    await expect(
      checkWebhookUrl('https://user:secret@93.184.215.14/hook', { allowPrivateNetworks: true }),
    ).rejects.toThrow('must not carry credentials');
  });

  it('reads decimal and hex IPv4 spellings as the address they are', async () => {
    for (const url of ['http://2130706433/', 'http://0x7f.1/']) {
      await expect(checkWebhookUrl(url, { allowPrivateNetworks: false })).rejects.toThrow(
        '127.0.0.1, a loopback address',
      );
    }
  });
});

describe('postWebhook', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });
  const receiver = async (answer: Parameters<typeof startReceiver>[0]) => {
    const r = await startReceiver(answer);
    closers.push(r.close);
    return r;
  };

  it('signs the body so that a receiver verifies it with its own HMAC', async () => {
    const r = await receiver(() => 204);
    const outcome = await postWebhook(message(r.url), {
      secret: SECRET,
      allowPrivateNetworks: true,
      allowedPorts: 'any',
    });
    expect(outcome.status).toBe(204);
    const [got] = r.received;
    expect(got?.headers['webhook-id']).toBe('msg_test_1_1');
    expect(verifySignature(SECRET, got!.headers, got!.body)).toBe(true);
    // A body changed on the way no longer verifies.
    expect(verifySignature(SECRET, got!.headers, got!.body.replace('completed', 'failed'))).toBe(
      false,
    );
  });

  it('signs with the new and the previous secret while one is rotated: receivers with either verify', async () => {
    const r = await receiver(() => 204);
    const previous = `whsec_${randomBytes(32).toString('base64')}`;
    await postWebhook(message(r.url), {
      secret: SECRET,
      previousSecret: previous,
      allowPrivateNetworks: true,
      allowedPorts: 'any',
    });
    const [got] = r.received;
    expect(String(got?.headers['webhook-signature']).split(' ')).toHaveLength(2);
    expect(verifySignature(SECRET, got!.headers, got!.body)).toBe(true);
    expect(verifySignature(previous, got!.headers, got!.body)).toBe(true);
    // The receivers' library reads the list too.
    expect(() =>
      new Webhook(previous).verify(got!.body, got!.headers as Record<string, string>),
    ).not.toThrow();
    const stranger = `whsec_${randomBytes(32).toString('base64')}`;
    expect(verifySignature(stranger, got!.headers, got!.body)).toBe(false);
  });

  it('refuses a loopback receiver when connecting, by name or by address', async () => {
    const r = await receiver(() => 200);
    const byName = r.url.replace('127.0.0.1', 'localhost');
    for (const url of [r.url, byName]) {
      await expect(
        postWebhook(message(url), {
          secret: SECRET,
          allowPrivateNetworks: false,
          allowedPorts: 'any',
        }),
      ).rejects.toBeInstanceOf(WebhookUrlError);
    }
    expect(r.received).toEqual([]);
  });

  /** A tiny server that redirects every request (the receiver helper answers a status only). */
  const redirector = async (status: number, location: string) => {
    const server = createServer((_req, res) => res.writeHead(status, { Location: location }).end());
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    closers.push(() => new Promise((done) => server.close(() => done())));
    const address = server.address();
    return `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/`;
  };

  it('follows a 307 with the same signed request, and not a 302', async () => {
    const target = await receiver(() => 200);
    const hop = (status: number) => redirector(status, target.url);
    const followed = await postWebhook(message(await hop(307)), {
      secret: SECRET,
      allowPrivateNetworks: true,
      allowedPorts: 'any',
    });
    expect(followed).toEqual({ status: 200, url: target.url });
    expect(verifySignature(SECRET, target.received[0]!.headers, target.received[0]!.body)).toBe(
      true,
    );
    const notFollowed = await postWebhook(message(await hop(302)), {
      secret: SECRET,
      allowPrivateNetworks: true,
      allowedPorts: 'any',
    });
    expect(notFollowed.status).toBe(302);
    expect(target.received).toHaveLength(1);
  });

  it('refuses a redirect to a port webhooks are not sent to, without naming it', async () => {
    const hop = await redirector(307, 'http://127.0.0.1:6379/');
    const err = await postWebhook(message(hop), {
      secret: SECRET,
      allowPrivateNetworks: true,
      allowedPorts: new Set([Number(new URL(hop).port)]),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WebhookUrlError);
    expect(String(err)).toMatch('was redirected to a port webhooks are not sent to');
    expect(String(err)).not.toMatch('6379');
  });

  it('refuses a redirect to something that is not an http(s) URL, as final', async () => {
    const hop = (location: string) => redirector(307, location);
    for (const [location, reason] of [
      ['ftp://example.com/x', 'redirected to a ftp URL'],
      ['http://[bad', 'not a URL'],
    ]) {
      await expect(
        postWebhook(message(await hop(location!)), {
          secret: SECRET,
          allowPrivateNetworks: true,
          allowedPorts: 'any',
        }),
      ).rejects.toThrow(reason);
    }
  });

  it('gives up on a receiver that does not answer within the timeout', async () => {
    const r = await receiver(() => 'hold');
    await expect(
      postWebhook(
        { ...message(r.url), timeout_ms: 300 },
        { secret: SECRET, allowPrivateNetworks: true, allowedPorts: 'any' },
      ),
    ).rejects.toThrow(/timeout|aborted/i);
  });
});

describe('webhook ports', () => {
  const check = (url: string, options: Partial<Parameters<typeof checkWebhookUrl>[1]> = {}) =>
    checkWebhookUrl(url, { allowPrivateNetworks: false, ...options });

  it('refuses any port but 80 and 443 by default, private networks allowed or not', async () => {
    for (const allowPrivateNetworks of [false, true]) {
      await expect(check('http://8.8.8.8:6379/', { allowPrivateNetworks })).rejects.toThrow(
        'uses port 6379: webhooks are sent to ports 80, 443 only (WEBHOOK_ALLOWED_PORTS)',
      );
    }
    await expect(check('http://8.8.8.8:8443/')).rejects.toBeInstanceOf(WebhookUrlError);
    for (const url of ['http://8.8.8.8/', 'https://8.8.8.8/', 'http://8.8.8.8:443/']) {
      await expect(check(url)).resolves.toBeInstanceOf(URL);
    }
  });

  it('takes the ports WEBHOOK_ALLOWED_PORTS names, or any with *', async () => {
    await expect(
      check('https://8.8.8.8:8443/', { allowedPorts: new Set([80, 443, 8443]) }),
    ).resolves.toBeInstanceOf(URL);
    await expect(check('http://8.8.8.8:6379/', { allowedPorts: 'any' })).resolves.toBeInstanceOf(
      URL,
    );
  });

  it('refuses a delivery to a port that is not allowed, before connecting', async () => {
    const r = await startReceiver(() => 200);
    try {
      await expect(
        postWebhook(message(r.url), { secret: SECRET, allowPrivateNetworks: true }),
      ).rejects.toThrow('uses a port webhooks are not sent to');
      expect(r.received).toEqual([]);
    } finally {
      await r.close();
    }
  });
});

describe('webhook DNS', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });
  const stalled = async () => {
    const dns = await startStalledDns();
    closers.push(dns.close);
    return dns;
  };

  it('answers 503-style (WebhookCheckUnavailable) within its timeout when the DNS server stalls', async () => {
    const dns = await stalled();
    const resolve = createResolve({ servers: [dns.server], timeoutMs: 400, hostsFile: null });
    const started = performance.now();
    const err = await checkWebhookUrl('https://hooks.stalled.example/x', {
      allowPrivateNetworks: false,
      resolve,
    }).catch((e: unknown) => e);
    const ms = performance.now() - started;
    expect(err).toBeInstanceOf(WebhookCheckUnavailable);
    expect(String(err)).toMatch('could not be resolved just now (ETIMEOUT)');
    expect(ms).toBeLessThan(1000);
    expect(dns.queries).toContain('hooks.stalled.example');
  });

  it("keeps stalled lookups off libuv's thread pool: file reads and dns.lookup go on", async () => {
    const dns = await stalled();
    const resolve = createResolve({ servers: [dns.server], timeoutMs: 1500, hostsFile: null });
    // More stalled lookups than libuv has threads (4), all in flight.
    const lookups = Array.from({ length: 8 }, (_, i) =>
      resolve(`h${i}.stalled.example`).catch(() => null),
    );
    await new Promise((r) => setTimeout(r, 100));
    const started = performance.now();
    await Promise.all([readFile(__filename), lookup('localhost')]);
    expect(performance.now() - started).toBeLessThan(500);
    await Promise.all(lookups);
  });

  it('refuses DNS servers c-ares would refuse when it is made, so that no lookup fails on them', () => {
    for (const bad of ['999.1.1.1', '1.1.1.1:99999', 'dns.example']) {
      expect(() => createResolve({ servers: [bad], timeoutMs: 500, hostsFile: null })).toThrow();
    }
  });

  it('holds at most maxInFlight lookups at once; the others wait within their timeout', async () => {
    const dns = await stalled();
    const resolve = createResolve({
      servers: [dns.server],
      timeoutMs: 500,
      maxInFlight: 2,
      hostsFile: null,
    });
    const outcomes = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        resolve(`n${i}.stalled.example`).then(
          () => 'resolved',
          (err: NodeJS.ErrnoException) => err.code,
        ),
      ),
    );
    expect(outcomes).toEqual(Array(6).fill('ETIMEOUT'));
    // Only the two that held a slot reached the server.
    expect(new Set(dns.queries)).toEqual(new Set(['n0.stalled.example', 'n1.stalled.example']));
  });

  it('fails a delivery whose host does not resolve in time as a DNS timeout, naming no server', async () => {
    const dns = await stalled();
    const err = await postWebhook(message('http://hooks.stalled.example/x'), {
      secret: SECRET,
      allowPrivateNetworks: false,
      resolve: createResolve({ servers: [dns.server], timeoutMs: 300, hostsFile: null }),
    }).catch((e: unknown) => e);
    expect(failureKind(err)).toBe('DNS timeout');
    // Asked of the configured server, not of the system's resolver.
    expect(dns.queries).toContain('hooks.stalled.example');
  });

  it('answers localhost, literals and the hosts file without asking a server', async () => {
    const dns = await stalled();
    const dir = mkdtempSync(join(tmpdir(), 'hosts-'));
    writeFileSync(
      join(dir, 'hosts'),
      '# comment\n10.1.2.3  intranet.example  alias # tail\n::1 six\n',
    );
    const resolve = createResolve({
      servers: [dns.server],
      timeoutMs: 300,
      hostsFile: join(dir, 'hosts'),
    });
    expect(await resolve('localhost')).toEqual([
      { address: '127.0.0.1', family: 4 },
      { address: '::1', family: 6 },
    ]);
    expect(await resolve('api.localhost')).toHaveLength(2);
    expect(await resolve('93.184.215.14')).toEqual([{ address: '93.184.215.14', family: 4 }]);
    expect(await resolve('Intranet.Example.')).toEqual([{ address: '10.1.2.3', family: 4 }]);
    expect(await resolve('alias')).toEqual([{ address: '10.1.2.3', family: 4 }]);
    expect(dns.queries).toEqual([]);
    await expect(
      checkWebhookUrl('https://intranet.example/x', { allowPrivateNetworks: false, resolve }),
    ).rejects.toThrow('intranet.example resolves to a private address');
    expect(parseHosts('::1 six\n').get('six')).toEqual([{ address: '::1', family: 6 }]);
  });
});

describe('failureKind', () => {
  it.each([
    [{ code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 10.0.0.1:6379' }, 'connection refused'],
    [{ code: 'ECONNRESET', message: 'socket hang up' }, 'connection reset'],
    [{ code: 'ETIMEDOUT', message: 'connect ETIMEDOUT 10.0.0.1:25' }, 'connect timeout'],
    [{ code: 'ENOTFOUND', message: 'x' }, 'DNS: no such host'],
    [{ code: 'CERT_HAS_EXPIRED', message: 'x' }, 'TLS error (CERT_HAS_EXPIRED)'],
    [{ code: 'EWHATEVER', message: 'connect EWHATEVER 10.0.0.1:22' }, 'connection failed'],
  ])('names %o as %s', (fields, kind) => {
    expect(failureKind(Object.assign(new Error(fields.message), fields))).toBe(kind);
  });
});

describe("each principal's signing secret", () => {
  const MASTER = `whsec_${randomBytes(32).toString('base64')}`;

  it('is derived: the same for the same principal, another for another principal or master', () => {
    const a = principalSecret(MASTER, 'tenant-a');
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(a.slice(6), 'base64')).toHaveLength(32);
    expect(principalSecret(MASTER, 'tenant-a')).toBe(a);
    expect(principalSecret(MASTER, 'tenant-b')).not.toBe(a);
    expect(principalSecret(MASTER, 'anonymous')).not.toBe(a);
    expect(principalSecret(`whsec_${randomBytes(32).toString('base64')}`, 'tenant-a')).not.toBe(a);
    expect(a).not.toBe(MASTER);
  });

  it('stays what it was: receivers keep their secret across upgrades (a known answer)', () => {
    // HKDF-SHA256, the fixed salt and `principal:<name>`: a change to any of them would move
    // every tenant's secret, and every receiver would stop verifying.
    const master = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
    expect(principalSecret(master, 'tenant-a')).toBe(
      'whsec_z9d6F8otOtEJnDWLqKG6RukS9rrsM/zj8ijoJlm6Ivg=',
    );
  });
});
