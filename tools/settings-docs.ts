import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import prettier from 'prettier';
import { ROLES, SHARED_SETTINGS, settingDocs } from '../src/config';
import type { SettingDoc, Settings } from '../src/config/settings';
import { LocalSettingsSchema } from './settings';

// `npm run docs:settings`: the README's settings tables, generated from the schemas each role
// parses (src/config/) and the local scaffolding's (tools/settings.ts). A unit test fails when
// the README differs from what this generates.

export const README = resolve(__dirname, '../README.md');
export const BEGIN =
  '<!-- settings:begin: generated from src/config/ and tools/settings.ts by `npm run docs:settings` -->';
export const END = '<!-- settings:end -->';

/** Where each role's table is, and what runs it. */
const HEADINGS: Record<string, string> = {
  API: 'API: `npm run api`, `node dist/main/api.js`',
  worker: 'Worker: `npm run worker`, `node dist/main/worker.js`',
  '`decisions`': "The operators' command: `npm run decisions`, `node dist/cli/decisions.js`",
  '`decide`': 'The terminal client: `npm run decide`',
};

interface Row {
  name: string;
  doc: SettingDoc;
  shownDefault: string;
  readBy: string[];
}

const code = (text: string) => `\`${text}\``;

/** The default as the table shows it: the documented one, else the schema's, else unset. */
function shownDefault(name: string, entry: Settings['shape'][string], doc: SettingDoc): string {
  if (doc.shownDefault) return doc.shownDefault;
  const parsed = entry.safeParse(undefined);
  if (!parsed.success) throw new Error(`${name} has no default: document what unset means`);
  const value = parsed.data;
  if (value === undefined) return '(unset)';
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
    return code(String(value));
  }
  throw new Error(`${name}: give its default as shownDefault, the schema's is not plain text`);
}

/** Every setting of the schemas, once, with the roles that read it (in ROLES' order). */
function rows(schemas: { name: string; schema: Settings }[]): Row[] {
  const byName = new Map<string, Row & { entry: unknown }>();
  for (const { name: role, schema } of schemas) {
    for (const [name, entry] of Object.entries(schema.shape)) {
      const doc = settingDocs.get(entry);
      if (!doc)
        throw new Error(`${name} (${role}) has no documentation: declare it with setting()`);
      const row = byName.get(name);
      if (row && row.entry !== entry) {
        throw new Error(`${name} is declared twice: roles that share it take it from shared.ts`);
      }
      if (row) {
        row.readBy.push(role);
        continue;
      }
      byName.set(name, {
        name,
        doc,
        entry,
        shownDefault: shownDefault(name, entry, doc),
        readBy: [role],
      });
    }
  }
  return [...byName.values()];
}

/** A paragraph in lines of at most 100 characters, as the rest of the README is written. */
function paragraph(text: string): string {
  const lines: string[] = [];
  for (const word of text.split(' ')) {
    const last = lines.at(-1);
    if (last !== undefined && last.length + 1 + word.length <= 100) {
      lines[lines.length - 1] = `${last} ${word}`;
    } else {
      lines.push(word);
    }
  }
  return lines.join('\n');
}

function table(header: string[], lines: string[][]): string {
  const row = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [row(header), row(header.map(() => '---')), ...lines.map(row)].join('\n');
}

/** The generated part of the README's Configuration section, before formatting. */
export function settingsSection(): string {
  const all = rows(ROLES);
  const sharedOrder = SHARED_SETTINGS.flatMap((group) => Object.keys(group));
  const shared = all
    .filter((r) => r.readBy.length > 1)
    .sort((a, b) => sharedOrder.indexOf(a.name) - sharedOrder.indexOf(b.name));
  for (const r of shared) {
    if (!sharedOrder.includes(r.name)) {
      throw new Error(`${r.name} is read by ${r.readBy.join(' and ')}: declare it in shared.ts`);
    }
  }
  for (const name of sharedOrder) {
    if (!shared.some((r) => r.name === name)) {
      throw new Error(`${name} is in shared.ts but only one role reads it: move it to that role`);
    }
  }
  const secrets = all.filter((r) => r.doc.secret).map((r) => code(r.name));
  const local = rows([{ name: 'local', schema: LocalSettingsSchema }]);
  const cells = (r: Row) => [code(r.name), r.shownDefault, r.doc.meaning];

  const parts = [
    BEGIN,
    '',
    paragraph(
      `${secrets.slice(0, -1).join(', ')} and ${secrets.at(-1)} may instead be given as ` +
        '`NAME_FILE`, the path of a file holding the value (Docker and Kubernetes secrets).',
    ),
    '',
    '### Shared',
    '',
    'Read by more than one role, as the second column says.',
    '',
    table(
      ['variable', 'read by', 'default', 'meaning'],
      shared.map((r) => [code(r.name), r.readBy.join(', '), r.shownDefault, r.doc.meaning]),
    ),
  ];
  for (const { name } of ROLES) {
    const own = all.filter((r) => r.readBy.length === 1 && r.readBy[0] === name);
    const heading = HEADINGS[name];
    if (!heading) throw new Error(`No heading for the role ${name}`);
    parts.push('', `### ${heading}`, '');
    if (own.length === 0) {
      parts.push(`It reads shared settings only: those marked ${name} above.`);
      continue;
    }
    parts.push(table(['variable', 'default', 'meaning'], own.map(cells)));
  }
  parts.push(
    '',
    '### Local development: `npm start`, `npm run temporal`, `npm run cluster`',
    '',
    paragraph(
      "The scaffolding's own settings, for the servers it starts on this machine; no product " +
        'process reads them. `TEMPORAL_CLI_PATH` names the `temporal` CLI (Quick start), and ' +
        '`npm run cluster` has more (docs/DEPLOYMENT.md).',
    ),
    '',
    table(['variable', 'default', 'meaning'], local.map(cells)),
    '',
    END,
  );
  return parts.join('\n');
}

/** The README with its settings section as the schemas have it, formatted as Prettier would. */
export async function updateReadme(readme: string): Promise<string> {
  const begin = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (begin < 0 || end < begin) throw new Error(`README.md has no ${BEGIN} … ${END} section`);
  const text = readme.slice(0, begin) + settingsSection() + readme.slice(end + END.length);
  const options = await prettier.resolveConfig(README);
  return prettier.format(text, { ...options, filepath: README });
}

if (require.main === module) {
  const readme = readFileSync(README, 'utf8');
  updateReadme(readme).then(
    (updated) => {
      if (updated === readme) return process.stdout.write('README.md: settings up to date\n');
      writeFileSync(README, updated);
      process.stdout.write('README.md: settings rewritten from the schemas\n');
    },
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
