import { GenerateAlternativesOutput } from '../domain/outputs';
import { bullets, earlier, question, type Agent } from './context';

export const generateAlternatives: Agent<typeof GenerateAlternativesOutput> = {
  phase: 'generateAlternatives',
  schema: GenerateAlternativesOutput,
  system:
    'You generate distinct options for a decision (including doing nothing or deferring where ' +
    'that is a real option) and score each from 1 (poor) to 5 (excellent) on every criterion, ' +
    'using the evidence gathered. Use the criteria names exactly as given.',
  prompt: (ctx) => {
    const scope = earlier(ctx, 'defineScope');
    const goals = earlier(ctx, 'establishGoals');
    const info = earlier(ctx, 'retrieveInformation');
    const evidence = info.answers.map(
      (a) => `${a.need_id} ${a.question}\n  ${a.answered ? a.answer : 'Unanswered.'}`,
    );
    return [
      question(ctx),
      `Constraints:\n${bullets(scope.constraints)}`,
      `Criteria (score every one):\n${bullets(goals.criteria.map((c) => `${c.name} (weight ${c.weight}): ${c.description}`))}`,
      `Evidence:\n${bullets(evidence)}`,
      'Propose 3 to 6 alternatives with pros, cons and a score per criterion.',
    ].join('\n\n');
  },
  check: (output, ctx) => {
    const criteria = earlier(ctx, 'establishGoals').criteria.map((c) => c.name);
    const problems: string[] = [];
    for (const alt of output.alternatives) {
      const missing = criteria.filter((name) => !(name in alt.scores));
      if (missing.length) problems.push(`"${alt.name}" has no score for: ${missing.join(', ')}`);
    }
    const names = output.alternatives.map((a) => a.name.toLowerCase());
    if (new Set(names).size !== names.length) problems.push('alternative names must be unique');
    return problems;
  },
  finish: (output, ctx) => {
    const criteria = earlier(ctx, 'establishGoals').criteria;
    const totalWeight = criteria.reduce((sum, c) => sum + c.weight, 0);
    return {
      ...output,
      alternatives: output.alternatives.map((alt) => ({
        ...alt,
        weighted_score:
          Math.round(
            (criteria.reduce(
              (sum, c) => sum + (c.weight * ((alt.scores[c.name] ?? 1) - 1)) / 4,
              0,
            ) /
              totalWeight) *
              1000,
          ) / 1000,
      })),
    };
  },
};
