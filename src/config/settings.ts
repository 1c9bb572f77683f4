import { readFileSync } from 'node:fs';
import { z } from 'zod';

/** What the README says about a setting: its table is generated from these (npm run docs:settings). */
export interface SettingDoc {
  /** What the setting does, in one line. */
  meaning: string;
  /** The default as the README shows it, where the schema's own default does not say it well. */
  shownDefault?: string;
  /** May be given as NAME_FILE, the path of a file holding the value (Docker and Kubernetes secrets). */
  secret?: boolean;
}

/** Every setting's documentation, by its schema. */
export const settingDocs = z.registry<SettingDoc>();

/** A setting: its schema, documented. */
export function setting<S extends z.ZodType>(schema: S, doc: SettingDoc): S {
  settingDocs.add(schema, doc);
  return schema;
}

/** The settings of one role, each documented with `setting`. */
export type Settings = z.ZodObject<Record<string, z.ZodType>>;

export const port = z.coerce.number().int().min(0).max(65535);
export const flag = z.enum(['true', 'false']).transform((v) => v === 'true');

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** The environment's set variables: an empty one counts as unset. */
export function setVariables(env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
}

/** Parses settings with a schema; a bad value throws a ConfigError naming every problem. */
export function parseSettings<S extends z.ZodType>(schema: S, values: unknown): z.infer<S> {
  const parsed = schema.safeParse(values);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `  ${issue.path.join('.')}: ${issue.message}`,
    );
    throw new ConfigError(`Invalid configuration:\n${problems.join('\n')}`);
  }
  return parsed.data;
}

/** The settings of a schema that may be given as NAME_FILE. */
export function secretSettings(schema: Settings): string[] {
  return Object.entries(schema.shape)
    .filter(([, entry]) => settingDocs.get(entry)?.secret)
    .map(([name]) => name);
}

/**
 * Reads a role's settings from the environment, once at start-up: a bad value stops start-up
 * with every problem named. Only the schema's settings are read; the others are left alone.
 */
export function loadSettings<S extends Settings>(schema: S, env: NodeJS.ProcessEnv): z.infer<S> {
  const values = setVariables(env);
  // Secrets may come from files (Docker and Kubernetes secrets): NAME_FILE holds NAME.
  for (const name of secretSettings(schema)) {
    const file = values[`${name}_FILE`];
    if (!file) continue;
    try {
      const value = readFileSync(file, 'utf8').trim();
      // An empty file is an unset value, as an empty variable is.
      if (value) values[name] = value;
      else delete values[name];
    } catch (err) {
      throw new ConfigError(
        `Invalid configuration:\n  ${name}_FILE: cannot read ${file} (${(err as Error).message})`,
      );
    }
  }
  return parseSettings(schema, values);
}
