import { z } from 'zod';
import { item, list, paragraph } from './answers';
import { bullets, earlier, question, type Agent } from './context';

const Answer = z.strictObject({
  summary: paragraph,
  root_cause: paragraph.describe('The underlying problem behind the trigger'),
  contributing_factors: list(item, 1),
});

export const analyzeRootCause: Agent<typeof Answer> = {
  phase: 'analyzeRootCause',
  system:
    'You analyse root causes. Look past the trigger to the underlying problem the decision must ' +
    'solve, and list the factors that contribute to it.',
  prompt: (ctx) => {
    const trigger = earlier(ctx, 'identifyTrigger');
    return [
      question(ctx),
      `Trigger: ${trigger.trigger} (urgency: ${trigger.urgency})`,
      `Stakeholders:\n${bullets(trigger.stakeholders)}`,
      'What is the underlying problem behind this trigger, and what contributes to it?',
    ].join('\n\n');
  },
  answer: () => Answer,
  finish: (answer) => answer,
};
