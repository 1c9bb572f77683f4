import { z } from 'zod';
import { item, list, paragraph, stored } from './bounds';
import { identifyTrigger } from './identify-trigger';
import { topicsOf } from './offline-rules';
import { bullets, earlier, maybe, phase, question, read } from './phase';

const Answer = z.strictObject({
  summary: paragraph,
  root_cause: paragraph.describe('The underlying problem behind the trigger'),
  contributing_factors: list(item, 1),
});

export const analyzeRootCause = phase({
  name: 'analyzeRootCause',
  title: 'Root cause analysis',
  description: 'The underlying problem behind the trigger.',
  reads: [read(identifyTrigger, ['trigger', 'urgency', 'stakeholders'])],
  output: z.object({
    summary: stored.text,
    root_cause: stored.text.describe('The underlying problem behind the trigger'),
    contributing_factors: stored.list(stored.text, 1),
  }),
  system:
    'You analyse root causes. Look past the trigger to the underlying problem the decision must ' +
    'solve, and list the factors that contribute to it.',
  prompt: (ctx) => {
    const trigger = earlier(ctx, identifyTrigger);
    return [
      question(ctx),
      `Trigger: ${trigger.trigger} (urgency: ${trigger.urgency})`,
      `Stakeholders:\n${bullets(trigger.stakeholders)}`,
      'What is the underlying problem behind this trigger, and what contributes to it?',
    ].join('\n\n');
  },
  answer: () => Answer,
  finish: (answer) => answer,
  offline: (ctx) => {
    const [first = 'this area', ...rest] = topicsOf(ctx.query);
    return {
      summary: `The way ${first} is handled today no longer fits what the team needs.`,
      root_cause: `The current approach to ${first} was chosen for needs that have since changed.`,
      contributing_factors: [
        `Trigger: ${maybe(ctx, identifyTrigger)?.trigger ?? ctx.query}`,
        ...rest.slice(0, 3).map((k) => `Constraints and expectations around ${k}`),
      ],
    };
  },
});
