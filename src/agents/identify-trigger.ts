import { IdentifyTriggerOutput } from '../domain/outputs';
import { question, type Agent } from './context';

export const identifyTrigger: Agent<typeof IdentifyTriggerOutput> = {
  phase: 'identifyTrigger',
  schema: IdentifyTriggerOutput,
  system:
    'You are the first analyst of a decision process. Identify what prompted the decision now, ' +
    'how urgent it is, and who has a stake in it. Stay close to the question; do not decide.',
  prompt: (ctx) =>
    `${question(ctx)}\n\nName the trigger (what happened or changed that makes this decision ` +
    'necessary now), its urgency (low, medium, high or critical) and the stakeholders.',
};
