import { z } from 'zod';
import { list, name, paragraph } from './answers';
import { question, type Agent } from './context';

const Answer = z.strictObject({
  summary: paragraph,
  trigger: paragraph.describe('What prompted the decision now'),
  urgency: z.enum(['low', 'medium', 'high', 'critical']),
  stakeholders: list(name, 1),
});

export const identifyTrigger: Agent<typeof Answer> = {
  phase: 'identifyTrigger',
  system:
    'You are the first analyst of a decision process. Identify what prompted the decision now, ' +
    'how urgent it is, and who has a stake in it. Stay close to the question; do not decide.',
  prompt: (ctx) =>
    `${question(ctx)}\n\nName the trigger (what happened or changed that makes this decision ` +
    'necessary now), its urgency (low, medium, high or critical) and the stakeholders.',
  answer: () => Answer,
  finish: (answer) => answer,
};
