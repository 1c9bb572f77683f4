import type { Env, Hono } from 'hono';
import { PROBLEM_TYPE_BY_SLUG, PROBLEM_TYPES, type ProblemType } from '../problem';

const escapeHtml = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** `code` spans for the backquoted words of a plain sentence. */
const prose = (text: string) => escapeHtml(text).replace(/`([^`]+)`/g, '<code>$1</code>');

const page = (title: string, body: string) => `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>${escapeHtml(title)} · Decision backend API</title>
    <style>
      body { font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; color: #1f2328; }
      code { font: 0.9em ui-monospace, monospace; background: #f0f2f4; padding: 0 0.2em; border-radius: 3px; }
      dt { font-weight: 600; margin-top: 1rem; }
    </style>
  </head>
  <body>
${body}
  </body>
</html>
`;

function typePage(type: ProblemType): string {
  const status = type.status === 0 ? 'any status' : `HTTP ${type.status}`;
  return page(
    type.title,
    `    <p><a href="./">Problem types</a> of the decision backend API</p>
    <h1>${escapeHtml(type.title)} <small>(${status})</small></h1>
    <dl>
      <dt>What it means</dt>
      <dd>${prose(type.meaning)}</dd>
      <dt>What to do</dt>
      <dd>${prose(type.remedy)}</dd>
    </dl>
    <p>Every error of this API is an RFC 9457 problem document (<code>application/problem+json</code>) with <code>type</code>, <code>title</code>, <code>status</code>, <code>detail</code> and <code>instance</code>. See <a href="../docs">the API's documentation</a>.</p>`,
  );
}

const INDEX = page(
  'Problem types',
  `    <h1>Problem types</h1>
    <p>The <code>type</code> of each problem document this API answers with is one of these pages.</p>
    <ul>
${PROBLEM_TYPES.map((t) => `      <li><a href="${t.slug}">${escapeHtml(t.title)}</a>${t.status ? ` (${t.status})` : ''}</li>`).join('\n')}
    </ul>`,
);

/**
 * GET /problems/{type}: the page each problem `type` URI names (what it means, what to do), and
 * GET /problems/ listing them. Public: a client that follows a `type` needs no key for it.
 */
export function registerProblemRoutes<E extends Env>(app: Hono<E>): void {
  app.get('/problems', (c) => c.redirect('problems/', 301));
  app.get('/problems/', (c) => c.html(INDEX, 200, { 'Cache-Control': 'public, max-age=86400' }));
  app.get('/problems/:slug', (c) => {
    const type = PROBLEM_TYPE_BY_SLUG.get(c.req.param('slug'));
    if (!type) return c.notFound();
    return c.html(typePage(type), 200, { 'Cache-Control': 'public, max-age=86400' });
  });
}
