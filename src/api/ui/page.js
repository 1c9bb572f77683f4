// The API's pages: the decisions list at /ui/ and one decision at /ui/decisions/{id}, followed
// live. Plain browser JavaScript, no build step. It reads the API with the key the person gives
// (kept in sessionStorage, for this tab only), and reads a decision's event stream with fetch,
// because EventSource cannot send an Authorization header; eventsource-parser (served from the
// package by the API, see the import map) splits the stream into events.
import { createParser } from 'eventsource-parser';

const KEY_ITEM = 'decisions.api-key';
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30_000;
const END_EVENTS = new Set(['decision.completed', 'decision.failed', 'decision.cancelled']);

// ---- What the live events say, as plain functions (test/unit/decision-page.test.ts) ----------

/** The live text of one model call when a retried attempt begins: empty. */
export function attemptStarted(data) {
  return { attempt: data.attempt, call: 0, text: '', end: 0, gap: false, partial: null };
}

/**
 * The live text of one phase (or one retrieval need) after a `phase.delta`. A later attempt or
 * call starts afresh; a delta of an earlier one comes too late and changes nothing. `offset`
 * says where the delta's text starts in the call's answer: text seen already (a resumed stream)
 * is not repeated, and text missed (deltas the server dropped) shows as a gap.
 */
export function deltaApplied(live, data) {
  let entry = live;
  if (
    !entry ||
    data.attempt > entry.attempt ||
    (data.attempt === entry.attempt && data.call > entry.call)
  ) {
    entry = { attempt: data.attempt, call: data.call, text: '', end: 0, gap: false, partial: null };
  } else if (data.attempt < entry.attempt || data.call < entry.call) {
    return entry;
  }
  const end = data.offset + data.text.length;
  if (end <= entry.end) return entry;
  const missed = data.offset > entry.end;
  const fresh = missed ? data.text : data.text.slice(entry.end - data.offset);
  return {
    ...entry,
    text: entry.text + (missed ? ' … ' : '') + fresh,
    end,
    gap: entry.gap || missed,
    partial: data.partial ?? null,
  };
}

/** What a live entry shows: the answer parsed so far, pretty-printed, or else its raw text. */
export function liveText(entry) {
  if (entry.partial !== null && typeof entry.partial === 'object' && !entry.gap) {
    return JSON.stringify(entry.partial, null, 2);
  }
  return entry.text;
}

/** A duration for people: 850 ms, 2.4 s, 3 min 5 s. */
export function formatDuration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds - minutes * 60)} s`;
}

// ---- The API ----------------------------------------------------------------------------------

/** A problem document (RFC 9457) the API answered with, or one made for a request that failed. */
class ApiProblem extends Error {
  constructor(problem) {
    super(problem.detail || problem.title);
    this.problem = problem;
  }
}

const storedKey = () => sessionStorage.getItem(KEY_ITEM);

function authHeaders(key = storedKey()) {
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function problemOf(res) {
  if ((res.headers.get('Content-Type') ?? '').includes('json')) {
    const body = await res.json().catch(() => null);
    if (body && typeof body === 'object' && typeof body.status === 'number') return body;
  }
  return {
    title: res.statusText || 'Error',
    status: res.status,
    detail: `The API answered ${res.status}`,
  };
}

function asProblem(err) {
  if (err instanceof ApiProblem) return err.problem;
  return { title: 'No answer', status: 0, detail: `The API could not be reached: ${err.message}` };
}

/** A JSON request to the API with the tab's key; a refusal throws its problem document. */
async function api(path, { method = 'GET', body, key } = {}) {
  const headers = { Accept: 'application/json', ...authHeaders(key) };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (!res.ok) throw new ApiProblem(await problemOf(res));
  return res.json();
}

const may = (me, scope) => me.scopes.includes(scope) || me.scopes.includes('decisions:admin');
const decisionPath = (id) => `/ui/decisions/${encodeURIComponent(id)}`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- Building the page --------------------------------------------------------------------------

/** Children as given: nested lists flattened, strings as text, null, undefined and false left out. */
const nodes = (children) =>
  children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false);

/** An element with attributes (`on…` ones are listeners) and children. */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  element.append(...nodes(children));
  return element;
}

/** Replaces an element's children. */
const fill = (element, ...children) => element.replaceChildren(...nodes(children));

const numbers = new Intl.NumberFormat('en');
const plural = (n, word) => `${numbers.format(n)} ${word}${n === 1 ? '' : 's'}`;
const statusText = (status) => status.replace('_', ' ');
const phaseLabel = (name) =>
  name
    ? name.replace(/[A-Z]/g, (c) => ` ${c.toLowerCase()}`).replace(/^./, (c) => c.toUpperCase())
    : '—';

function timeView(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  const sameDay = date.toDateString() === new Date().toDateString();
  return h(
    'time',
    { datetime: iso, title: iso },
    sameDay ? date.toLocaleTimeString() : date.toLocaleString(),
  );
}

function badge(status) {
  return h('span', { class: `badge status-${status}` }, statusText(status));
}

/** A problem document as the API gave it: title, status, detail, and the fields it names. */
function problemView(problem) {
  return h(
    'div',
    { class: 'problem', 'data-status': problem.status },
    h(
      'p',
      { class: 'problem-title' },
      problem.status ? `${problem.status} ${problem.title}` : problem.title,
    ),
    h('p', {}, problem.detail),
    problem.errors?.length
      ? h(
          'ul',
          {},
          problem.errors.map((e) => h('li', {}, `${e.path}: ${e.message}`)),
        )
      : null,
  );
}

/** A region that announces the problems put in it. */
function alertBox() {
  const box = h('div', { class: 'problems', role: 'alert' });
  return {
    element: box,
    show: (err) => fill(box, problemView(asProblem(err))),
    clear: () => fill(box),
  };
}

const main = () => document.getElementById('main');

// ---- The key ----------------------------------------------------------------------------------

/** The key's id and scopes (GET /me); asks for a key while the API wants one. */
async function signIn() {
  try {
    return await api('/me');
  } catch (err) {
    if (asProblem(err).status !== 401) throw err;
    sessionStorage.removeItem(KEY_ITEM);
    return askForKey();
  }
}

function askForKey() {
  return new Promise((resolve) => {
    const input = h('input', {
      id: 'api-key',
      name: 'api-key',
      type: 'password',
      autocomplete: 'off',
      spellcheck: 'false',
      required: true,
    });
    const button = h('button', { type: 'submit' }, 'Use this key');
    const problems = alertBox();
    const form = h(
      'form',
      {
        class: 'card key-form',
        'aria-labelledby': 'key-title',
        onsubmit: async (event) => {
          event.preventDefault();
          const key = input.value.trim();
          if (!key) return;
          button.disabled = true;
          problems.clear();
          try {
            const me = await api('/me', { key });
            sessionStorage.setItem(KEY_ITEM, key);
            resolve(me);
          } catch (err) {
            problems.show(err);
            input.select();
          } finally {
            button.disabled = false;
          }
        },
      },
      h('h1', { id: 'key-title' }, 'API key'),
      h(
        'p',
        {},
        'This API asks for a key. The page keeps it for this tab only and sends it with each request.',
      ),
      h('label', { for: 'api-key' }, 'API key'),
      input,
      button,
      problems.element,
    );
    fill(main(), form);
    input.focus();
  });
}

function showKey(me) {
  const status = document.getElementById('key-status');
  if (me.principal === 'anonymous' && !storedKey()) {
    fill(status, h('span', {}, 'Authentication is off'));
    return;
  }
  fill(
    status,
    h('span', {}, 'Key ', h('strong', {}, me.principal), ` (${me.scopes.join(', ')})`),
    h(
      'button',
      {
        type: 'button',
        class: 'link',
        onclick: () => {
          sessionStorage.removeItem(KEY_ITEM);
          location.reload();
        },
      },
      'Forget key',
    ),
  );
}

// ---- The list ---------------------------------------------------------------------------------

function askForm() {
  const query = h('textarea', { id: 'query', name: 'query', rows: 3, required: true });
  const context = h('textarea', { id: 'context', name: 'context', rows: 2 });
  const review = h('input', { id: 'review', name: 'review', type: 'checkbox' });
  const button = h('button', { type: 'submit' }, 'Ask');
  const problems = alertBox();
  return h(
    'form',
    {
      class: 'card ask',
      'aria-labelledby': 'ask-title',
      onsubmit: async (event) => {
        event.preventDefault();
        button.disabled = true;
        problems.clear();
        try {
          const record = await api('/decisions', {
            method: 'POST',
            body: {
              query: query.value,
              ...(context.value.trim() ? { context: context.value } : {}),
              ...(review.checked ? { review: true } : {}),
            },
          });
          location.assign(decisionPath(record.process_id));
        } catch (err) {
          problems.show(err);
          button.disabled = false;
        }
      },
    },
    h('h2', { id: 'ask-title' }, 'Ask a question'),
    h('label', { for: 'query' }, 'Question'),
    query,
    h('label', { for: 'context' }, 'Background (optional)'),
    context,
    h(
      'div',
      { class: 'check' },
      review,
      h('label', { for: 'review' }, 'Pause after the draft for my review'),
    ),
    button,
    problems.element,
  );
}

async function listPage(me) {
  document.title = 'Decisions';
  const rows = h('tbody');
  const problems = alertBox();
  const more = h('button', { type: 'button', hidden: true }, 'Show older decisions');
  const empty = h('p', { hidden: true }, 'No decisions yet.');
  let cursor = null;
  const load = async () => {
    more.disabled = true;
    try {
      const query = new URLSearchParams({ limit: '20' });
      if (cursor) query.set('cursor', cursor);
      const page = await api(`/decisions?${query}`);
      for (const item of page.items) {
        rows.append(
          h(
            'tr',
            { 'data-id': item.process_id },
            h('td', {}, h('a', { href: decisionPath(item.process_id) }, item.query)),
            h('td', {}, badge(item.status)),
            h('td', {}, phaseLabel(item.current_phase)),
            h('td', {}, timeView(item.created_at)),
          ),
        );
      }
      cursor = page.next_cursor;
      more.hidden = !cursor;
      empty.hidden = rows.children.length > 0;
    } catch (err) {
      problems.show(err);
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener('click', load);
  fill(
    main(),
    h('h1', {}, 'Decisions'),
    may(me, 'decisions:write')
      ? askForm()
      : h('p', { class: 'note' }, 'This key may read decisions, not ask new ones.'),
    h(
      'table',
      { class: 'decisions' },
      h('caption', {}, 'Newest first'),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Question', 'Status', 'Phase', 'Created'].map((name) => h('th', { scope: 'col' }, name)),
        ),
      ),
      rows,
    ),
    empty,
    more,
    problems.element,
  );
  await load();
}

// ---- One decision -----------------------------------------------------------------------------

class DecisionPage {
  constructor(id, me, record) {
    this.id = id;
    this.me = me;
    this.record = record;
    /** Phase outputs as the stream gave them (`phase.completed`), before the result has them. */
    this.outputs = {};
    /** The draft a review is asked for (`review.requested`). */
    this.draft = null;
    /** Live text by phase and need: `${phase}/${need}`. */
    this.live = new Map();
    this.lastEventId = null;
    this.ended = false;
    this.refreshing = Promise.resolve();
    this.refreshQueued = false;
    this.phaseViews = new Map();
    this.build();
    this.render();
  }

  build() {
    const { id } = this;
    this.statusBadge = h('span');
    this.times = h('p', { class: 'times' });
    this.connection = h('p', { class: 'connection', 'aria-live': 'polite' });
    this.actions = h('div', { class: 'actions' });
    this.actionProblems = alertBox();
    /** What reading the record or its stream was refused with; cleared by the next good read. */
    this.readProblems = alertBox();
    this.reviewSection = h('section', {
      class: 'card review',
      'aria-labelledby': 'review-title',
      hidden: true,
    });
    this.failure = h('section', {
      class: 'card failure',
      'aria-labelledby': 'failure-title',
      hidden: true,
    });
    this.result = h('section', {
      class: 'result',
      'aria-labelledby': 'result-title',
      hidden: true,
    });
    const timeline = h('ol', { class: 'timeline' });
    for (const [index, phase] of this.record.phases.entries()) {
      const view = {
        item: h('li', { class: 'phase', 'data-phase': phase.name }),
        badge: h('span'),
        meta: h('p', { class: 'phase-meta' }),
        live: h('div', { class: 'live', hidden: true }),
        liveBlocks: new Map(),
        output: h(
          'details',
          { class: 'output', hidden: true },
          h('summary', {}, 'Output'),
          h('pre', { tabindex: 0 }),
        ),
        error: h('p', { class: 'phase-error', hidden: true }),
      };
      view.item.append(
        h(
          'div',
          { class: 'phase-head' },
          h('span', { class: 'phase-index', 'aria-hidden': 'true' }, index + 1),
          h('h3', {}, phase.title),
          view.badge,
        ),
        view.meta,
        view.live,
        view.error,
        view.output,
      );
      timeline.append(view.item);
      this.phaseViews.set(phase.name, view);
    }
    const ui = document.querySelector('meta[name="temporal-ui-url"]')?.content;
    const namespace = document.querySelector('meta[name="temporal-namespace"]')?.content;
    const links = ui
      ? h(
          'p',
          { class: 'links' },
          h(
            'a',
            {
              href: `${ui}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(id)}`,
              class: 'temporal-link',
            },
            'Open in the Temporal Web UI',
          ),
        )
      : null;
    fill(
      main(),
      h(
        'header',
        { class: 'decision-head' },
        h('p', { class: 'eyebrow' }, 'Decision ', h('code', {}, id)),
        h('h1', { id: 'question' }, this.record.query),
        this.record.context ? h('p', { class: 'context' }, this.record.context) : null,
        h('div', { class: 'status-line' }, this.statusBadge, this.times),
        links,
        this.connection,
        this.readProblems.element,
      ),
      this.actions,
      this.actionProblems.element,
      this.reviewSection,
      this.failure,
      this.result,
      h(
        'section',
        { 'aria-labelledby': 'timeline-title' },
        h('h2', { id: 'timeline-title' }, 'Phases'),
        timeline,
      ),
    );
    document.title = `${this.record.query} – Decisions`;
    this.clock = setInterval(() => this.renderPhases(), 1000);
  }

  // -- Rendering: the record, as the API gives it, and the live text besides ---------------------

  render() {
    const record = this.record;
    fill(this.statusBadge, badge(record.status));
    fill(
      this.times,
      'Created ',
      timeView(record.created_at),
      record.completed_at ? [' · finished ', timeView(record.completed_at)] : [],
      record.forked_from
        ? [
            ' · forked from ',
            h(
              'a',
              { href: decisionPath(record.forked_from.process_id) },
              record.forked_from.process_id,
            ),
          ]
        : [],
    );
    this.renderActions();
    this.renderReview();
    this.renderPhases();
    this.renderFailure();
    this.renderResult();
    if (['completed', 'failed', 'cancelled'].includes(record.status)) clearInterval(this.clock);
  }

  renderActions() {
    const open = !['completed', 'failed', 'cancelled'].includes(this.record.status);
    if (!open) {
      delete this.actions.dataset.shown;
      return fill(this.actions);
    }
    if (!may(this.me, 'decisions:write')) {
      return fill(
        this.actions,
        h('p', { class: 'note' }, 'This key may follow the decision, not cancel or review it.'),
      );
    }
    if (this.actions.dataset.shown === 'cancel') return;
    this.actions.dataset.shown = 'cancel';
    const confirm = h(
      'div',
      { class: 'confirm', hidden: true },
      h('span', {}, 'Cancel this decision? The phase running now is stopped.'),
      h(
        'button',
        { type: 'button', class: 'danger', onclick: () => this.cancel() },
        'Yes, cancel it',
      ),
      h(
        'button',
        {
          type: 'button',
          onclick: () => {
            confirm.hidden = true;
            ask.hidden = false;
          },
        },
        'Keep it running',
      ),
    );
    const ask = h(
      'button',
      {
        type: 'button',
        class: 'danger',
        onclick: () => {
          ask.hidden = true;
          confirm.hidden = false;
        },
      },
      'Cancel decision',
    );
    fill(this.actions, ask, confirm);
  }

  async cancel() {
    this.actionProblems.clear();
    try {
      this.record = await api(`/decisions/${encodeURIComponent(this.id)}/cancel`, {
        method: 'POST',
      });
      this.render();
    } catch (err) {
      this.actionProblems.show(err);
    }
    this.refreshSoon();
  }

  renderReview() {
    const { review, status } = this.record;
    const awaiting = status === 'awaiting_review';
    const section = this.reviewSection;
    if (!awaiting) {
      if (section.dataset.shown === 'form') section.dataset.shown = '';
      if (section.dataset.shown !== 'sent') section.hidden = true;
      return;
    }
    if (section.dataset.shown === 'form' || section.dataset.shown === 'sent') return;
    section.dataset.shown = 'form';
    section.hidden = false;
    const draft = this.draft?.draft ?? null;
    const deadline =
      review.requested_at && this.draft
        ? new Date(Date.parse(review.requested_at) + this.draft.timeout_ms).toISOString()
        : null;
    const problems = alertBox();
    const writable = may(this.me, 'decisions:write');
    const feedback = h('textarea', { id: 'feedback', name: 'feedback', rows: 4, required: true });
    const send = async (body, button) => {
      problems.clear();
      button.disabled = true;
      try {
        const answer = await api(`/decisions/${encodeURIComponent(this.id)}/review`, {
          method: 'POST',
          body,
        });
        section.dataset.shown = 'sent';
        fill(
          section,
          h('h2', { id: 'review-title' }, 'Review sent'),
          h(
            'p',
            { class: 'review-sent' },
            answer.status === 'approved'
              ? 'You approved the draft; the decision goes on.'
              : 'Your feedback was received; the draft is being revised.',
          ),
        );
        this.refreshSoon();
      } catch (err) {
        problems.show(err);
        button.disabled = false;
      }
    };
    const approve = h(
      'button',
      { type: 'button', onclick: () => send({ approve: true }, approve) },
      'Approve the draft',
    );
    const sendFeedback = h('button', { type: 'submit' }, 'Send feedback');
    fill(
      section,
      h('h2', { id: 'review-title' }, 'Review the draft'),
      h(
        'p',
        {},
        'The decision waits for your review',
        deadline ? [' until ', timeView(deadline)] : [],
        '. Approve the draft as it is, or say what the revision must address.',
      ),
      draft
        ? draftView(draft)
        : h('p', { class: 'note' }, 'The draft is in the decision’s event stream.'),
      writable
        ? [
            approve,
            h(
              'form',
              {
                class: 'feedback',
                onsubmit: (event) => {
                  event.preventDefault();
                  if (feedback.value.trim()) send({ feedback: feedback.value }, sendFeedback);
                },
              },
              h('label', { for: 'feedback' }, 'Feedback for the revision'),
              feedback,
              sendFeedback,
            ),
          ]
        : h('p', { class: 'note' }, 'This key may not review (it lacks decisions:write).'),
      problems.element,
    );
  }

  renderPhases() {
    const now = Date.now();
    for (const phase of this.record.phases) {
      const view = this.phaseViews.get(phase.name);
      if (!view) continue;
      view.item.dataset.status = phase.status;
      fill(view.badge, badge(phase.status));
      fill(view.meta, phaseMeta(phase, now));
      const output = this.outputs[phase.name] ?? this.record.result?.phases?.[phase.name];
      view.output.hidden = phase.status !== 'completed' || output === undefined;
      if (!view.output.hidden && !view.output.dataset.filled) {
        view.output.lastChild.textContent = JSON.stringify(output, null, 2);
        view.output.dataset.filled = 'true';
      }
      view.error.hidden = !phase.error;
      view.error.textContent = phase.error ? `${phase.error.type}: ${phase.error.message}` : '';
      this.renderLive(phase.name);
    }
  }

  renderLive(name) {
    const view = this.phaseViews.get(name);
    const status = this.record.phases.find((p) => p.name === name)?.status;
    const entries = [...this.live.entries()].filter(([key]) => key.startsWith(`${name}/`));
    // The blocks of a run that started again go with its text.
    for (const [key, block] of view.liveBlocks) {
      if (!this.live.has(key)) {
        block.element.remove();
        view.liveBlocks.delete(key);
      }
    }
    view.live.hidden = status === 'completed' || entries.length === 0;
    if (view.live.hidden) return;
    for (const [key, entry] of entries.sort(([a], [b]) => a.localeCompare(b))) {
      let block = view.liveBlocks.get(key);
      if (!block) {
        const caption = h('p', { class: 'live-caption' });
        const text = h('pre', { class: 'live-text', tabindex: 0 });
        block = { element: h('div', { class: 'live-block' }, caption, text), caption, text };
        view.liveBlocks.set(key, block);
        view.live.append(block.element);
      }
      const need = key.slice(name.length + 1);
      const where = [
        need ? `need ${need}` : null,
        entry.attempt > 1 ? `attempt ${entry.attempt}` : null,
        entry.call > 1 ? `call ${entry.call} (repair)` : null,
      ].filter(Boolean);
      block.caption.textContent = `${status === 'running' || status === 'pending' ? 'Writing' : 'Wrote'}${where.length ? ` · ${where.join(' · ')}` : ''}${entry.gap ? ' · some text was missed' : ''}`;
      const pre = block.text;
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      pre.textContent = liveText(entry);
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    }
  }

  renderFailure() {
    const { status, error } = this.record;
    this.failure.hidden = !(status === 'failed' || status === 'cancelled');
    if (this.failure.hidden) return;
    fill(
      this.failure,
      h(
        'h2',
        { id: 'failure-title' },
        status === 'failed' ? 'The decision failed' : 'The decision was cancelled',
      ),
      error ? h('p', {}, error.message) : null,
      error
        ? h(
            'p',
            { class: 'note' },
            `${error.type}${error.phase ? ` in ${phaseLabel(error.phase)}` : ''}`,
          )
        : null,
    );
  }

  renderResult() {
    const result = this.record.result;
    if (!result || this.result.dataset.shown) return;
    this.result.dataset.shown = 'true';
    this.result.hidden = false;
    fill(this.result, resultView(result));
  }

  // -- Following the decision -------------------------------------------------------------------

  /** Reads the record again soon: one read at a time, one more queued for what came meanwhile. */
  refreshSoon() {
    if (this.refreshQueued) return;
    this.refreshQueued = true;
    this.refreshing = this.refreshing.then(async () => {
      await sleep(100);
      this.refreshQueued = false;
      try {
        this.record = await api(`/decisions/${encodeURIComponent(this.id)}`);
        this.readProblems.clear();
        this.render();
      } catch (err) {
        this.readProblems.show(err);
      }
    });
  }

  /** Applies one event of the stream. */
  handle(type, text) {
    let data;
    try {
      data = JSON.parse(text);
    } catch {
      return;
    }
    const key = data && `${data.phase}/${data.need ?? ''}`;
    switch (type) {
      case 'phase.attempt':
        this.live.set(key, attemptStarted(data));
        this.renderLive(data.phase);
        return;
      case 'phase.delta':
        this.live.set(key, deltaApplied(this.live.get(key), data));
        this.renderLive(data.phase);
        return;
      case 'phase.started':
        for (const k of [...this.live.keys()])
          if (k.startsWith(`${data.phase}/`)) this.live.delete(k);
        break;
      case 'phase.completed':
        this.outputs[data.phase] = data.output;
        break;
      case 'review.requested':
        this.draft = data;
        // A form drawn before the draft came is drawn again with it.
        if (this.reviewSection.dataset.shown === 'form') this.reviewSection.dataset.shown = '';
        break;
    }
    if (END_EVENTS.has(type)) this.ended = true;
    this.refreshSoon();
  }

  /**
   * Follows the event stream to the decision's end. A dropped stream is opened again with the
   * last event's id as Last-Event-ID, after a pause that doubles up to 30 s (or what the server's
   * `retry:` asks), so that nothing is missed or shown twice.
   */
  async follow() {
    let delay = FIRST_RETRY_MS;
    while (!this.ended) {
      const headers = { Accept: 'text/event-stream', ...authHeaders() };
      if (this.lastEventId !== null) headers['Last-Event-ID'] = this.lastEventId;
      try {
        const res = await fetch(`/decisions/${encodeURIComponent(this.id)}/events`, {
          headers,
          cache: 'no-store',
        });
        // 204: the stream has nothing after the id sent, the decision's end included.
        if (res.status === 204) break;
        if (!res.ok) {
          const problem = await problemOf(res);
          if ([401, 403, 404].includes(problem.status)) {
            this.readProblems.show(new ApiProblem(problem));
            this.setConnection('stopped', 'Not following the decision.');
            return;
          }
          const retryAfter = Number(res.headers.get('Retry-After'));
          if (retryAfter > 0) delay = retryAfter * 1000;
          throw new ApiProblem(problem);
        }
        this.setConnection('live', 'Following the decision live.');
        delay = FIRST_RETRY_MS;
        await this.read(res.body, (ms) => (delay = ms));
      } catch {
        // A dropped connection or an API that does not answer: try again below.
      }
      if (this.ended) break;
      this.setConnection(
        'reconnecting',
        `Connection lost; reconnecting in ${Math.ceil(delay / 1000)} s.`,
      );
      await sleep(delay);
      delay = Math.min(delay * 2, MAX_RETRY_MS);
    }
    this.ended = true;
    this.setConnection('ended', 'The decision has ended.');
    this.refreshSoon();
  }

  async read(body, onRetry) {
    const parser = createParser({
      onEvent: (message) => {
        if (message.id !== undefined) this.lastEventId = message.id;
        if (message.event) this.handle(message.event, message.data);
      },
      onRetry,
    });
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      parser.feed(value);
    }
  }

  setConnection(state, text) {
    this.connection.dataset.state = state;
    this.connection.textContent = text;
  }
}

function phaseMeta(phase, now) {
  const parts = [];
  if (phase.reused_from) parts.push(`reused from ${phase.reused_from}`);
  if (phase.started_at) parts.push(['started ', timeView(phase.started_at)]);
  if (phase.duration_ms !== null) parts.push(formatDuration(phase.duration_ms));
  else if (phase.status === 'running' && phase.started_at) {
    parts.push(`running for ${formatDuration(Math.max(0, now - Date.parse(phase.started_at)))}`);
  }
  if (phase.attempts !== null) parts.push(plural(phase.attempts, 'attempt'));
  if (phase.model_calls !== null) parts.push(plural(phase.model_calls, 'model call'));
  if (phase.repair_rounds) parts.push(plural(phase.repair_rounds, 'repair round'));
  if (phase.usage) {
    parts.push(
      `${numbers.format(phase.usage.input_tokens)} tokens in, ${numbers.format(phase.usage.output_tokens)} out`,
    );
  }
  if (phase.model) parts.push(`model ${phase.model}`);
  return parts.flatMap((part, i) => (i === 0 ? [part] : [' · ', part])).flat();
}

function risksTable(risks) {
  return h(
    'table',
    { class: 'risks' },
    h(
      'thead',
      {},
      h('tr', {}, h('th', { scope: 'col' }, 'Risk'), h('th', { scope: 'col' }, 'Mitigation')),
    ),
    h(
      'tbody',
      {},
      risks.map((r) => h('tr', {}, h('td', {}, r.risk), h('td', {}, r.mitigation))),
    ),
  );
}

function draftView(draft) {
  return h(
    'div',
    { class: 'draft' },
    h(
      'p',
      {},
      'Recommended: ',
      h('strong', {}, draft.recommended),
      ` (confidence ${draft.confidence})`,
    ),
    h('p', {}, draft.summary),
    h('p', {}, draft.rationale),
    draft.risks.length ? risksTable(draft.risks) : null,
  );
}

/** The final decision record laid out for a person. */
function resultView(result) {
  const record = result.decision;
  const chosen = result.phases?.updateDraft?.revised_recommendation ?? null;
  const bars = h(
    'ul',
    { class: 'bars' },
    record.alternatives_considered.map((alt) => {
      const fill = h('span', { class: 'bar-fill' });
      fill.style.width = `${Math.max(0, Math.min(1, alt.weighted_score)) * 100}%`;
      return h(
        'li',
        { class: alt.name === chosen ? 'bar chosen' : 'bar' },
        h(
          'span',
          { class: 'bar-name' },
          alt.name,
          alt.name === chosen ? h('span', { class: 'chosen-mark' }, ' (chosen)') : null,
        ),
        h('span', { class: 'bar-track', 'aria-hidden': 'true' }, fill),
        h('data', { class: 'bar-value', value: alt.weighted_score }, alt.weighted_score.toFixed(2)),
      );
    }),
  );
  const usage = result.usage;
  return [
    h('h2', { id: 'result-title' }, 'Decision'),
    h(
      'div',
      { class: 'card verdict' },
      h('h3', { class: 'result-title' }, record.title),
      h('p', { class: 'result-decision' }, record.decision),
    ),
    h('h3', {}, 'Summary'),
    h('p', { class: 'result-summary' }, record.summary),
    h('h3', {}, 'Rationale'),
    h('p', { class: 'result-rationale' }, record.rationale),
    h('h3', { id: 'alternatives-title' }, 'Alternatives'),
    h(
      'figure',
      { class: 'chart', 'aria-labelledby': 'alternatives-title' },
      bars,
      h('figcaption', {}, 'Weighted score against the criteria, from 0 to 1.'),
    ),
    h('h3', {}, 'Risks'),
    record.risks.length ? risksTable(record.risks) : h('p', { class: 'note' }, 'No risks named.'),
    h('h3', {}, 'Next steps'),
    h(
      'ol',
      { class: 'next-steps' },
      record.next_steps.map((step) => h('li', {}, step)),
    ),
    record.open_questions.length
      ? [
          h('h3', {}, 'Open questions'),
          h(
            'ul',
            { class: 'open-questions' },
            record.open_questions.map((q) => h('li', {}, q)),
          ),
        ]
      : null,
    h(
      'p',
      { class: 'usage' },
      `${plural(usage.model_calls, 'model call')} · ${numbers.format(usage.input_tokens)} tokens in, ${numbers.format(usage.output_tokens)} out · ${formatDuration(usage.latency_ms)} waiting for the model`,
    ),
  ];
}

async function decisionPage(id, me) {
  let record;
  try {
    record = await api(`/decisions/${encodeURIComponent(id)}`);
  } catch (err) {
    document.title = 'Decision – Decisions';
    fill(main(), h('h1', {}, 'Decision ', h('code', {}, id)), problemView(asProblem(err)));
    return;
  }
  await new DecisionPage(id, me, record).follow();
}

async function start() {
  const me = await signIn();
  showKey(me);
  const match = /^\/ui\/decisions\/([^/]+)$/.exec(location.pathname);
  if (match) return decisionPage(decodeURIComponent(match[1]), me);
  if (location.pathname === '/ui/') return listPage(me);
  fill(main(), problemView({ title: 'Not found', status: 404, detail: 'No page here.' }));
}

// Loaded by a page (not by the unit tests, which import the functions above).
if (typeof document !== 'undefined') {
  start().catch((err) => fill(main(), problemView(asProblem(err))));
}
