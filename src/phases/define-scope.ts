import { z } from 'zod';
import { analyzeRootCause } from './analyze-root-cause';
import { item, list, paragraph, stored } from './bounds';
import { identifyTrigger } from './identify-trigger';
import { subjectOf } from './offline-rules';
import { bullets, earlier, maybe, phase, question, read } from './phase';

const Answer = z.strictObject({
  summary: paragraph,
  in_scope: list(item, 1),
  out_of_scope: list(item, 0),
  constraints: list(item, 0),
});

export const defineScope = phase({
  name: 'defineScope',
  title: 'Scope definition',
  description: 'What is in and out of scope, and the constraints.',
  reads: [
    read(identifyTrigger, ['trigger']),
    read(analyzeRootCause, ['root_cause', 'contributing_factors']),
  ],
  output: z.object({
    summary: stored.text,
    in_scope: stored.list(stored.text, 1),
    out_of_scope: stored.list(stored.text, 0),
    constraints: stored.list(stored.text, 0),
  }),
  system:
    'You define the scope of a decision: what it covers, what it explicitly does not, and the ' +
    'constraints any option must respect.',
  prompt: (ctx) => {
    const trigger = earlier(ctx, identifyTrigger);
    const cause = earlier(ctx, analyzeRootCause);
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
  offline: (ctx) => {
    const subject = subjectOf(ctx.query);
    return {
      summary: `The decision covers whether and how to ${subject}.`,
      in_scope: [`Whether to ${subject}`, 'How a change would be rolled out and rolled back'],
      out_of_scope: ['Systems and teams the question does not touch'],
      constraints: [
        'Existing commitments to customers must hold during any change',
        `Root cause to address: ${maybe(ctx, analyzeRootCause)?.root_cause ?? subject}`,
      ],
    };
  },
});
