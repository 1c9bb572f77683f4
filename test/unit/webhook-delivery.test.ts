import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { WebhookMessage } from '../../src/domain/webhook';
import { checkWebhookUrl, nonPublicRange, WebhookUrlError } from '../../src/webhooks/address';
import { Webhook } from 'standardwebhooks';
import { postWebhook } from '../../src/webhooks/deliver';
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
        postWebhook(message(url), { secret: SECRET, allowPrivateNetworks: false }),
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
    });
    expect(followed).toEqual({ status: 200, url: target.url });
    expect(verifySignature(SECRET, target.received[0]!.headers, target.received[0]!.body)).toBe(
      true,
    );
    const notFollowed = await postWebhook(message(await hop(302)), {
      secret: SECRET,
      allowPrivateNetworks: true,
    });
    expect(notFollowed.status).toBe(302);
    expect(target.received).toHaveLength(1);
  });

  it('refuses a redirect to something that is not an http(s) URL, as final', async () => {
    const hop = (location: string) => redirector(307, location);
    for (const [location, reason] of [
      ['ftp://example.com/x', 'redirected to a ftp URL'],
      ['http://[bad', 'not a URL'],
    ]) {
      await expect(
        postWebhook(message(await hop(location!)), { secret: SECRET, allowPrivateNetworks: true }),
      ).rejects.toThrow(reason);
    }
  });

  it('gives up on a receiver that does not answer within the timeout', async () => {
    const r = await receiver(() => 'hold');
    await expect(
      postWebhook(
        { ...message(r.url), timeout_ms: 300 },
        { secret: SECRET, allowPrivateNetworks: true },
      ),
    ).rejects.toThrow(/timeout|aborted/i);
  });
});
