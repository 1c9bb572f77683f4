import { z } from 'zod';
import { list, name, paragraph, stored } from './bounds';
import { subjectOf } from './offline-rules';
import { phase, question } from './phase';

const Answer = z.strictObject({
  summary: paragraph,
  trigger: paragraph.describe('What prompted the decision now'),
  urgency: z.enum(['low', 'medium', 'high', 'critical']),
  stakeholders: list(name, 1),
});

const STAKEHOLDERS: [RegExp, string][] = [
  [/bill|invoice|payment|cost|budget|price|finance/i, 'Finance'],
  [/postgres|database|mysql|redis|data|storage|sql/i, 'Platform and database engineers'],
  [/kubernetes|cloud|infra|server|deploy|aws|gcp|azure/i, 'Infrastructure team'],
  [/hire|hiring|team|engineer|staff|recruit/i, 'Engineering managers'],
  [/customer|user|client|support/i, 'Customer support'],
  [/security|compliance|privacy|gdpr|soc/i, 'Security and compliance'],
];

const URGENT = /\b(outage|incident|down|urgent|asap|immediately|breach|critical)\b/i;
const SOON = /\b(now|soon|this (quarter|month|year)|deadline|before)\b/i;

export const identifyTrigger = phase({
  name: 'identifyTrigger',
  title: 'Identify trigger',
  description: 'What prompted the decision, its urgency and its stakeholders.',
  reads: [],
  output: z.object({
    summary: stored.text,
    trigger: stored.text.describe('What prompted the decision now'),
    urgency: z.enum(['low', 'medium', 'high', 'critical']),
    stakeholders: stored.list(stored.text, 1),
  }),
  system:
    'You are the first analyst of a decision process. Identify what prompted the decision now, ' +
    'how urgent it is, and who has a stake in it. Stay close to the question; do not decide.',
  prompt: (ctx) =>
    `${question(ctx)}\n\nName the trigger (what happened or changed that makes this decision ` +
    'necessary now), its urgency (low, medium, high or critical) and the stakeholders.',
  answer: () => Answer,
  finish: (answer) => answer,
  offline: ({ query }) => {
    const subject = subjectOf(query);
    const stakeholders = STAKEHOLDERS.filter(([re]) => re.test(query)).map(([, who]) => who);
    return {
      summary: `A decision is needed on whether to ${subject}.`,
      trigger: `The team has to choose whether to ${subject}, and the current approach is in question.`,
      urgency: URGENT.test(query)
        ? ('high' as const)
        : SOON.test(query)
          ? ('medium' as const)
          : ('low' as const),
      stakeholders: [...stakeholders, 'The decision owner'],
    };
  },
});
