import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import type { Figures } from './scenarios';

/** The figures as a Markdown table. */
export function table(results: readonly Figures[]): string {
  const rows = results.map(
    (r) =>
      `| ${r.scenario} | ${r.completed}/${r.decisions} | ${r.checks.join('; ') || '—'} | ${r.seconds} s | ${r.ok ? 'pass' : '**FAIL**'} |`,
  );
  return [
    '| scenario | completed | checked | time | result |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

const WEBHOOK_SCENARIOS = `In the stalled-DNS scenario (\`--only dns-stall\`), an API process of its own resolves webhook
hosts with a DNS server that takes every query and never answers (a UDP socket in the suite,
\`WEBHOOK_DNS_SERVERS\`, \`WEBHOOK_DNS_TIMEOUT_MS=1000\`); creates with a webhook URL on a name
only that server could resolve are sent all at once, beside as many creates without one, after a
round of the plain ones alone. Started decisions are counted in Temporal's visibility.

In the webhook scenario (\`--only webhook-receivers\`), three local receivers answer 404, answer
500, or hold every request unanswered; each is the receiver of a principal of its own, with a
decision started through the API's service on a queue no worker polls. The deliveries are real
delivery workflows on the stack's two workers, started as a decision's would be, with 2 s per
attempt and 60 s of retries (not 24 h, so that the run ends). Attempts are counted from each
receiver's recorded requests by \`webhook-id\`, outcomes from Temporal's describe of each
delivery, \`last_error\` from the projection; four decisions run on the same workers beside the
deliveries, and four before them. Deliveries run on the decisions' task queue and workers: a
burst of them (each retried attempt and each one over its principal's share is an activity task
of that queue) queues ahead of the decisions' own tasks, so decisions beside a burst wait for it;
the share per principal keeps one receiver that hangs from holding the workers' activity slots,
not from taking its turn in the queue.`;

/** Writes docs/RELIABILITY.md from a run's figures. */
export function writeReport(results: readonly Figures[], quick: boolean): string {
  const path = resolve(__dirname, '../../docs/RELIABILITY.md');
  const text = `# Reliability

Figures from \`npm run chaos${quick ? ' -- --quick' : ''}\` on ${new Date().toISOString().slice(0, 10)}, on a machine
with ${cpus().length} cores: real processes (a Temporal dev server keeping history in a SQLite
file, a Redis of the suite's own, the API, two workers on the \`openai\` provider) and a local
Chat Completions server that answers plain instances of each schema it is sent and injects the
faults below. \`npm test\` runs a quick subset of the same scenarios (\`test/chaos/chaos.test.ts\`).

${table(results)}

How each scenario works is in \`tools/chaos/scenarios.ts\`. A decision's workers are killed while
the model holds its call for the phase, so the phase's attempt dies with them; Temporal notices
by the missed heartbeats (heartbeat timeout 30 s) and the phase runs again on the workers started
in their place. In the second kind, the workers are killed once the model's answer for the phase is
in the response store: the phase completes without a second call for it. Model faults are drawn from a seeded sequence, never more than two in a row for
one phase, inside the five attempts its retry policy allows.

In the Redis scenario, the decisions wait for the model in \`draftDecision\` while Redis is
paused for 3 s, flushed, and restarted empty; Temporal keeps every decision, and
\`reconcile\` rebuilds the projection, whose event streams then end with the decision's end (the
events from before the flush are gone with it).

In the Temporal pause scenario, the dev server is SIGSTOPped (it holds every connection and
answers nothing) for 30 s. Meanwhile 100 readers read, by turns, ten decisions awaiting review
(quiet for over 30 s, so the API asks Temporal whether they still run) and ten completed ones;
one create with its own \`Idempotency-Key\` is sent about every 0.5 s; 20 event streams on the waiting
decisions stay open. Reads answer within the 2 s deadline (the waiting ones \`stale\`), creates
answer 503 with \`Retry-After\` at their 5 s deadline, and no answer is a 5xx other than 503.
Once Temporal is back, each create that got 503 is sent again with its key: one decision per key,
and every one completes.

The generated requests come from \`/openapi.json\` (fast-check, seeded): every operation, with
parameters and bodies drawn from their schemas, and as often broken (random JSON, truncated JSON,
bodies of the wrong type, random ids and durations), sent over HTTP to a second API process whose
decisions no worker runs.

The stream flood sends 1,000 requests at one running decision's event stream for one key, 50 at
a time, half \`HEAD\` and half \`GET\`s whose client closes the socket as soon as the answer's headers
arrive; a 429 is right while more than the key's 20 slots are open at once (a \`HEAD\` says what a
\`GET\` would be told). Afterwards the key must open its 20 streams again (slots held after the flood:
20 minus those that open) and be refused the 21st, and another key must open its own.
Key rotation starts an API process with the tenant's old key, creates 5 decisions with it and
holds them in \`generateAlternatives\`; restarts the API with the old and the new key under the
same name (both read every decision; the new one creates a sixth); restarts it with the new key
alone (the old one gets 401); then lets the decisions finish: every one completes in Temporal and
reads completed, and listed, with the new key.

${WEBHOOK_SCENARIOS}
`;
  writeFileSync(path, text);
  return path;
}
