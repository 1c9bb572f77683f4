import { EstablishGoalsOutput } from '../domain/outputs';
import { bullets, earlier, question, type Agent } from './context';

export const establishGoals: Agent<typeof EstablishGoalsOutput> = {
  phase: 'establishGoals',
  schema: EstablishGoalsOutput,
  system:
    'You set measurable goals for a decision and the criteria its options will be scored on. ' +
    'Give each criterion a weight between 0 and 1; the weights must add up to 1.',
  prompt: (ctx) => {
    const cause = earlier(ctx, 'analyzeRootCause');
    const scope = earlier(ctx, 'defineScope');
    return [
      question(ctx),
      `Root cause: ${cause.root_cause}`,
      `In scope:\n${bullets(scope.in_scope)}`,
      `Constraints:\n${bullets(scope.constraints)}`,
      'State measurable goals (each with a metric) and 2 to 8 weighted criteria.',
    ].join('\n\n');
  },
  check: (output) => {
    const total = output.criteria.reduce((sum, c) => sum + c.weight, 0);
    const names = output.criteria.map((c) => c.name.toLowerCase());
    const problems: string[] = [];
    if (Math.abs(total - 1) > 0.02) {
      problems.push(`criteria weights add up to ${total.toFixed(2)}; they must add up to 1`);
    }
    if (new Set(names).size !== names.length) problems.push('criteria names must be unique');
    return problems;
  },
};
