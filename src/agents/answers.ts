import { z } from 'zod';
import { boundedList, boundedText, MAX_CHARS, MAX_ITEMS, Risk } from '../domain/outputs';

// Building blocks of the per-call answer schemas. Objects are strict (no extra keys) and every
// property is required, the form strict structured outputs accept.

export const name = boundedText(MAX_CHARS.name);
export const item = boundedText(MAX_CHARS.item);
export const paragraph = boundedText(MAX_CHARS.paragraph);
export const long = boundedText(MAX_CHARS.long);
export const list = <T extends z.ZodType>(of: T, min: number, max: number = MAX_ITEMS.list) =>
  boundedList(of, min, max);
export const risk = z.strictObject(Risk.shape);

/** One of the given names, exactly (a non-empty list: earlier phases guarantee it). */
export function oneOf(values: readonly string[]) {
  return z.enum(values as [string, ...string[]]);
}
