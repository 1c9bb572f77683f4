import { IdentifyInformationNeedsOutput } from '../domain/outputs';
import { bullets, earlier, question, type Agent } from './context';

export const identifyInformationNeeds: Agent<typeof IdentifyInformationNeedsOutput> = {
  phase: 'identifyInformationNeeds',
  schema: IdentifyInformationNeedsOutput,
  system:
    'You decide what must be known before a decision can be made well. Ask specific, answerable ' +
    'questions that a knowledge base of internal documents could answer. Give each an id N1, N2, ….',
  prompt: (ctx) => {
    const scope = earlier(ctx, 'defineScope');
    const goals = earlier(ctx, 'establishGoals');
    return [
      question(ctx),
      `In scope:\n${bullets(scope.in_scope)}`,
      `Goals:\n${bullets(goals.goals.map((g) => `${g.goal} (metric: ${g.metric})`))}`,
      `Criteria:\n${bullets(goals.criteria.map((c) => `${c.name} (weight ${c.weight})`))}`,
      'List 1 to 6 information needs: the questions to answer before choosing.',
    ].join('\n\n');
  },
  check: (output) => {
    const ids = output.needs.map((n) => n.id);
    return new Set(ids).size === ids.length ? [] : ['information need ids must be unique'];
  },
};
