import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Redis } from 'ioredis';
import { format, resolveConfig } from 'prettier';
import { createApp } from '../src/api/app';
import { decisionLimits } from '../src/config';
import { ApiConfigSchema } from '../src/config/api';

/** The committed document: what the API serves with its default settings, for review and lint. */
export const DOCUMENT_FILE = resolve(__dirname, '../docs/openapi.json');

/** The URL the committed document names as its server: the API's default address. */
export const DEFAULT_PUBLIC_URL = 'http://127.0.0.1:8001';

/**
 * The OpenAPI document the API serves with its default settings, as /openapi.json answers it. The
 * app is built with nothing behind it: the document needs no server, and nothing connects.
 */
export async function liveDocument(): Promise<unknown> {
  const config = ApiConfigSchema.parse({});
  const redis = new Redis({ lazyConnect: true, enableOfflineQueue: false });
  try {
    const app = createApp({
      decisions: {} as never,
      projection: {} as never,
      health: () => Promise.reject(new Error('no server behind the document')),
      redis,
      keyPrefix: config.REDIS_KEY_PREFIX,
      apiKeys: [],
      publicUrl: DEFAULT_PUBLIC_URL,
      maxQueryChars: config.MAX_QUERY_CHARS,
      maxWaitSeconds: config.MAX_WAIT_SECONDS,
      maxBudget: decisionLimits(config).budget,
    });
    const res = await app.request('/openapi.json');
    if (res.status !== 200) throw new Error(`/openapi.json answered ${res.status}`);
    return await res.json();
  } finally {
    redis.disconnect();
  }
}

/** The document as the committed file holds it: JSON formatted as the project formats files. */
export async function documentText(document: unknown): Promise<string> {
  const options = await resolveConfig(DOCUMENT_FILE);
  return format(JSON.stringify(document), { ...options, parser: 'json' });
}

/** Whether the committed document is the live one; its text and the live text otherwise. */
export async function documentDrift(
  document?: unknown,
): Promise<{ committed: string; live: string } | null> {
  const live = await documentText(document ?? (await liveDocument()));
  const committed = readFileSync(DOCUMENT_FILE, 'utf8');
  return committed === live ? null : { committed, live };
}

// `npm run openapi`: writes the live document to docs/openapi.json.
if (require.main === module) {
  liveDocument()
    .then(documentText)
    .then((text) => {
      writeFileSync(DOCUMENT_FILE, text);
      process.stderr.write(`Wrote ${DOCUMENT_FILE}\n`);
    })
    .catch((err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
}
