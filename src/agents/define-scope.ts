import { z } from 'zod';
import { item, list, paragraph } from './answers';
import { bullets, earlier, question, type Agent } from './context';

const Answer = z.strictObject({
  summary: paragraph,
  in_scope: list(item, 1),
  out_of_scope: list(item, 0),
  constraints: list(item, 0),
});

export const defineScope: Agent<typeof Answer> = {
  phase: 'defineScope',
  system:
    'You define the scope of a decision: what it covers, what it explicitly does not, and the ' +
    'constraints any option must respect.',
  prompt: (ctx) => {
    const trigger = earlier(ctx, 'identifyTrigger');
    const cause = earlier(ctx, 'analyzeRootCause');
    return [
      question(ctx),
      `Trigger: ${trigger.trigger}`,
      `Root cause: ${cause.root_cause}`,
      `Contributing factors:\n${bullets(cause.contributing_factors)}`,
      'Define what is in scope, what is out of scope, and the constraints.',
    ].join('\n\n');
  },
  answer: () => Answer,
  finish: (answer) => answer,
};
