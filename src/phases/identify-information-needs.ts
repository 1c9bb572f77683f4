import { z } from 'zod';
import { item, list, MAX_ITEMS, paragraph, stored } from './bounds';
import { defineScope } from './define-scope';
import { establishGoals } from './establish-goals';
import { subjectOf, topicsOf } from './offline-rules';
import { bullets, earlier, phase, question, read } from './phase';

const Answer = z.strictObject({
  summary: paragraph,
  needs: list(z.strictObject({ question: item, why: item }), 1, MAX_ITEMS.needs),
});

export const InformationNeed = z.object({
  id: stored.text.describe('Given by code: N1, N2, …'),
  question: stored.text,
  why: stored.text,
});
export type InformationNeed = z.infer<typeof InformationNeed>;

export const identifyInformationNeeds = phase({
  name: 'identifyInformationNeeds',
  title: 'Information needs',
  description: 'The questions that must be answered before deciding.',
  reads: [read(defineScope, ['in_scope']), read(establishGoals, ['goals', 'criteria'])],
  output: z.object({
    summary: stored.text,
    needs: stored.list(InformationNeed, 1),
  }),
  system:
    'You decide what must be known before a decision can be made well. Ask specific, answerable ' +
    'questions that a knowledge base of internal documents could answer.',
  prompt: (ctx) => {
    const scope = earlier(ctx, defineScope);
    const goals = earlier(ctx, establishGoals);
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
  offline: ({ query }) => {
    const subject = subjectOf(query);
    const topic = topicsOf(query)[0] ?? 'this area';
    return {
      summary: `Four questions must be answered before deciding whether to ${subject}.`,
      needs: [
        { question: `What would it cost to ${subject}?`, why: 'Cost is a criterion.' },
        {
          question: `What are the risks and failure modes if we ${subject}?`,
          why: 'Risk carries the most weight.',
        },
        {
          question: `What problems has the current approach to ${topic} caused?`,
          why: 'The baseline to compare against.',
        },
        {
          question: `How much effort and time would it take to ${subject}?`,
          why: 'Time to value is a criterion.',
        },
      ],
    };
  },
});
