import { AnalyzeRootCauseOutput } from '../domain/outputs';
import { bullets, earlier, question, type Agent } from './context';

export const analyzeRootCause: Agent<typeof AnalyzeRootCauseOutput> = {
  phase: 'analyzeRootCause',
  schema: AnalyzeRootCauseOutput,
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
};
