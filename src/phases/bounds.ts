import { z } from 'zod';

// Building blocks of the phases' schemas. A stored output (the contract between phases) checks
// shapes only, so decisions stored before the bounds existed still read; an answer schema (what
// one model call must return) bounds every string and list, is strict (no extra keys) and makes
// every property required, the form strict structured outputs accept.

/** Longest text, in characters, of each kind of field a model writes. */
export const MAX_CHARS = {
  /** Names that later phases repeat: criteria, alternatives, stakeholders. */
  name: 80,
  /** One list entry: a factor, a constraint, a pro, a risk. */
  item: 240,
  /** A short paragraph: a summary, a description, a trigger. */
  paragraph: 600,
  /** A long paragraph: a rationale, an answer from the knowledge base. */
  long: 1500,
} as const;

/** Most entries in a list of each kind. */
export const MAX_ITEMS = {
  list: 8,
  goals: 6,
  criteria: 8,
  needs: 6,
  alternatives: 6,
  prosCons: 5,
  risks: 6,
  /** Passages one information need is answered from (and so may cite). */
  passages: 6,
} as const;

/** Stored outputs: shapes, no sizes. */
export const stored = {
  text: z.string().trim().min(1),
  list: <T extends z.ZodType>(item: T, min: number) => z.array(item).min(min),
};

/** Answers: every string and list bounded. */
export const boundedText = (max: number) => z.string().trim().min(1).max(max);

export const name = boundedText(MAX_CHARS.name);
export const item = boundedText(MAX_CHARS.item);
export const paragraph = boundedText(MAX_CHARS.paragraph);
export const long = boundedText(MAX_CHARS.long);
export const list = <T extends z.ZodType>(of: T, min: number, max: number = MAX_ITEMS.list) =>
  z.array(of).min(min).max(max);
export const risk = z.strictObject({ risk: item, mitigation: item });

/** One of the given names, exactly (a non-empty list: earlier phases guarantee it). */
export function oneOf(values: readonly string[]) {
  return z.enum(values as [string, ...string[]]);
}

/** A risk as stored. */
export const StoredRisk = z.object({ risk: stored.text, mitigation: stored.text });
