import { searchTerms } from '../domain/text';

// What the offline model's rules read a question with: its own words, no model.

/** "Should we move billing to a managed Postgres?" → "move billing to a managed Postgres". */
export function subjectOf(query: string): string {
  const trimmed = query.trim().replace(/[?.!\s]+$/u, '');
  const stripped = trimmed.replace(
    /^(should|shall|can|could|would|must|do|does|is|are|will)\s+(we|i|our team|the team|they|it|you)\s+/iu,
    '',
  );
  return stripped || trimmed;
}

/** The question's content words, in order, without repeats. */
function keywordsOf(text: string, limit = 6): string[] {
  return [...new Set(searchTerms(text).filter((t) => t.length > 2))].slice(0, limit);
}

const LEADING_VERB =
  /^(move|migrate|adopt|hire|buy|build|switch|replace|use|introduce|launch|keep|drop|deprecate|rewrite|outsource|expand|open|close|raise|cut|invest|start|stop|run|go|change|upgrade|consolidate|split|merge)\s+(in|to|into|on)?\s*/i;

/** The question's content words after its leading verb: what the decision is about. */
export function topicsOf(query: string): string[] {
  return keywordsOf(subjectOf(query).replace(LEADING_VERB, ''));
}

/** A text's sentences of more than a few words. */
export function sentences(text: string): string[] {
  return text
    .replace(/\s+/g, ' ')
    .split(/(?<=[.!?])\s+(?=[A-Z0-9"“(])/u)
    .map((s) => s.trim())
    .filter((s) => s.length > 20);
}

/** How many of `terms` a text contains. */
export function overlap(text: string, terms: Set<string>): number {
  return searchTerms(text).filter((t) => terms.has(t)).length;
}
