import type { RetrievalAnswer } from './outputs';

/** One line on how many information needs the knowledge base answered. */
export function summarizeAnswers(answers: readonly RetrievalAnswer[]): string {
  const answered = answers.filter((a) => a.answered).length;
  return `${answered} of ${answers.length} information needs answered from the knowledge base.`;
}
