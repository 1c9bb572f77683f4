import { z } from 'zod';
import { MAX_ITEMS, type PhaseOutputMap } from '../domain/outputs';
import { item, list, paragraph } from './answers';
import { bullets, earlier, question, type Agent } from './context';

const Answer = z.strictObject({
  summary: paragraph,
  needs: list(z.strictObject({ question: item, why: item }), 1, MAX_ITEMS.needs),
});

export const identifyInformationNeeds: Agent<
  typeof Answer,
  PhaseOutputMap['identifyInformationNeeds']
> = {
  phase: 'identifyInformationNeeds',
  system:
    'You decide what must be known before a decision can be made well. Ask specific, answerable ' +
    'questions that a knowledge base of internal documents could answer.',
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
  answer: () => Answer,
  // Ids are code's: N1, N2, … in the order given.
  finish: (answer) => ({
    ...answer,
    needs: answer.needs.map((n, i) => ({ id: `N${i + 1}`, question: n.question, why: n.why })),
  }),
};
