import { DefineScopeOutput } from '../domain/outputs';
import { bullets, earlier, question, type Agent } from './context';

export const defineScope: Agent<typeof DefineScopeOutput> = {
  phase: 'defineScope',
  schema: DefineScopeOutput,
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
};
