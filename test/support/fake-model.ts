import type { AgentContext } from '../../src/phases/phase';
import type { PhaseName } from '../../src/domain/phases';
import type { LanguageModel, ModelRequest, ModelResponse } from '../../src/llm/model';
import { CANNED } from './canned-outputs';

/**
 * The model's answer that gives the canned output: what each phase's answer schema asks for, the
 * fields code computes left out. For retrieval, one that cites the first passage given.
 */
export function cannedAnswer(task: string, ctx: Pick<AgentContext, 'need' | 'passages'>): unknown {
  switch (task as PhaseName) {
    case 'establishGoals':
      return {
        ...CANNED.establishGoals,
        criteria: CANNED.establishGoals.criteria.map(({ name, importance, description }) => ({
          name,
          importance,
          description,
        })),
      };
    case 'identifyInformationNeeds':
      return {
        ...CANNED.identifyInformationNeeds,
        needs: CANNED.identifyInformationNeeds.needs.map(({ question, why }) => ({
          question,
          why,
        })),
      };
    case 'retrieveInformation': {
      const need = ctx.need!;
      const first = ctx.passages?.[0];
      return first
        ? {
            need_id: need.id,
            answered: true,
            answer: `From ${first.source}: ${first.text.slice(0, 80)}`,
            confidence: 'medium',
            citations: [first.ref],
          }
        : {
            need_id: need.id,
            answered: false,
            answer: 'Nothing found.',
            confidence: 'none',
            citations: [],
          };
    }
    case 'generateAlternatives':
      return {
        ...CANNED.generateAlternatives,
        alternatives: CANNED.generateAlternatives.alternatives.map(
          ({ weighted_score: _, ...alternative }) => alternative,
        ),
      };
    case 'compileResult': {
      const { alternatives_considered: _, ...answer } = CANNED.compileResult;
      return answer;
    }
    default:
      return CANNED[task as PhaseName];
  }
}

/**
 * A model that records every request and answers with canned outputs, or with what a script
 * returns for a given call (to inject invalid output or errors).
 */
export class FakeModel implements LanguageModel {
  readonly name = 'fake-model';
  readonly requests: ModelRequest[] = [];
  constructor(
    private readonly script: (request: ModelRequest, call: number) => string | undefined = () =>
      undefined,
  ) {}

  calls(task: string): ModelRequest[] {
    return this.requests.filter((r) => r.task === task);
  }

  generate(request: ModelRequest): Promise<ModelResponse> {
    this.requests.push(request);
    return new Promise((resolve) => {
      const text =
        this.script(request, this.calls(request.task).length) ??
        JSON.stringify(cannedAnswer(request.task, request.hints as AgentContext));
      resolve({ text, model: this.name, usage: { input_tokens: 10, output_tokens: 5 } });
    });
  }
}
