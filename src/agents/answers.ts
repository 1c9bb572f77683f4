import { z } from 'zod';
import { MAX_CHARS, MAX_ITEMS } from '../domain/outputs';

// Building blocks of the per-call answer schemas. Every string and list is bounded; objects are
// strict (no extra keys) and every property is required, the form strict structured outputs accept.

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
