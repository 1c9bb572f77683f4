// Words as the knowledge base indexes them and as the offline model reads a question: one
// tokenizer, so the two agree on what a term is.

const STOPWORDS = new Set(
  (
    'a about an and are as at be been being but by can could did do does for from had has have how ' +
    'i if in into is it its may might more most much must no not of on or our should so than that ' +
    'the their them then there these they this those to up us was we were what when where which ' +
    'while who whom why will with would you your'
  ).split(' '),
);

/** Whether the search index keeps a (lower-case) word. */
export function isSearchTerm(word: string): boolean {
  return word.length > 1 && !STOPWORDS.has(word);
}

/** Terms the index and the queries share: lower case, no stop words, no one-letter words. */
export function searchTerms(text: string): string[] {
  return (text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).filter(isSearchTerm);
}
