import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ROLES } from '../../src/config';
import { secretSettings } from '../../src/config/settings';
import { BEGIN, END, README, settingsSection, updateReadme } from '../../tools/settings-docs';

const section = (text: string) => text.slice(text.indexOf(BEGIN), text.indexOf(END) + END.length);

describe("the README's settings", () => {
  it('are the tables the schemas generate (npm run docs:settings rewrites them)', async () => {
    const readme = readFileSync(README, 'utf8');
    expect(section(readme), 'run npm run docs:settings').toBe(section(await updateReadme(readme)));
  });

  it('document every setting of every role, each shared one from one declaration', () => {
    // settingsSection refuses a setting without documentation, one declared twice, and a shared
    // group (src/config/shared.ts) that only one role reads.
    expect(() => settingsSection()).not.toThrow();
    for (const { schema } of ROLES) {
      for (const name of Object.keys(schema.shape))
        expect(settingsSection()).toContain(`\`${name}\``);
    }
  });

  it('name the secrets that may come from NAME_FILE, as the roles read them', () => {
    const secrets = new Set(ROLES.flatMap(({ schema }) => secretSettings(schema)));
    expect([...secrets].sort()).toEqual([
      'API_KEYS',
      'API_KEY_SECRET',
      'LLM_API_KEY',
      'METRICS_TOKEN',
      'REDIS_CLUSTER_NODES',
      'REDIS_URL',
      'WEBHOOK_PREVIOUS_SECRET',
      'WEBHOOK_SECRET',
    ]);
    const text = section(readFileSync(README, 'utf8'));
    for (const name of secrets) expect(text).toMatch(new RegExp(`\`${name}\`[^|]*NAME_FILE`));
  });
});
