import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Context, Env, Hono } from 'hono';

/** Where a person's browser finds the Temporal Web UI, for the decision page's links. */
export interface TemporalUiLink {
  url: string;
  namespace: string;
}

// The page's own files, beside this folder in src/ and (copied by `npm run build`) in dist/.
const PAGE_DIR = join(__dirname, '../ui');
const ASSETS: Record<string, string> = {
  'page.js': 'text/javascript; charset=utf-8',
  'page.css': 'text/css; charset=utf-8',
};
// The SSE parser the page reads its event stream with: the package's own ES modules, unbundled.
const PARSER_DIR = dirname(require.resolve('eventsource-parser'));
const PARSER_FILE = /^[a-z]+\.js$/;

const escapeAttribute = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

/** The shell with the Web UI's address filled in, and the policy that lets its import map run. */
async function loadShell(temporalUi: TemporalUiLink | null) {
  const template = await readFile(join(PAGE_DIR, 'index.html'), 'utf8');
  const html = template
    .replace('%TEMPORAL_UI_URL%', escapeAttribute(temporalUi?.url.replace(/\/+$/, '') ?? ''))
    .replace('%TEMPORAL_NAMESPACE%', escapeAttribute(temporalUi?.namespace ?? ''));
  const importMap = /<script type="importmap">([\s\S]*?)<\/script>/.exec(html)?.[1];
  if (importMap === undefined) throw new Error('index.html has no import map');
  const hash = createHash('sha256').update(importMap).digest('base64');
  const policy = [
    "default-src 'none'",
    `script-src 'self' 'sha256-${hash}'`,
    "style-src 'self'",
    "connect-src 'self'",
    "img-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { html, policy };
}

/**
 * GET /ui/ (the decisions list) and /ui/decisions/{id} (one decision, followed live): public HTML
 * shells whose script reads the API with the key the person gives it, so they hold no data. Like
 * /docs, they are not part of the OpenAPI document.
 */
export function registerUiRoutes<E extends Env>(
  app: Hono<E>,
  deps: { temporalUi: TemporalUiLink | null },
): void {
  let shell: ReturnType<typeof loadShell> | undefined;
  const page = async (c: Context<E>) => {
    shell ??= loadShell(deps.temporalUi);
    const { html, policy } = await shell.catch((err: unknown) => {
      shell = undefined;
      throw err;
    });
    return c.html(html, 200, {
      'Content-Security-Policy': policy,
      'Cache-Control': 'no-cache',
      'Referrer-Policy': 'same-origin',
      'X-Content-Type-Options': 'nosniff',
    });
  };
  app.get('/ui', (c) => c.redirect('/ui/', 308));
  app.get('/ui/', page);
  app.get('/ui/decisions/:process_id', page);
  app.get('/ui/assets/:file', async (c) => {
    const file = c.req.param('file');
    // Own properties only: `constructor` or `__proto__` name no asset.
    if (!Object.hasOwn(ASSETS, file)) return c.notFound();
    const body = await readFile(join(PAGE_DIR, file));
    return c.body(body, 200, {
      'Content-Type': ASSETS[file]!,
      'Cache-Control': 'no-cache',
      'X-Content-Type-Options': 'nosniff',
    });
  });
  app.get('/ui/assets/eventsource-parser/:file', async (c) => {
    const file = c.req.param('file');
    if (!PARSER_FILE.test(file)) return c.notFound();
    const body = await readFile(join(PARSER_DIR, file)).catch(() => null);
    if (body === null) return c.notFound();
    return c.body(body, 200, {
      'Content-Type': 'text/javascript; charset=utf-8',
      'Cache-Control': 'public, max-age=86400',
      'X-Content-Type-Options': 'nosniff',
    });
  });
}
