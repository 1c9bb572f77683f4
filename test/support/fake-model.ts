import type { AgentContext } from '../../src/agents/context';
import type { RetrievalAnswer } from '../../src/domain/outputs';
import type { PhaseName } from '../../src/domain/phases';
import type { LanguageModel, ModelRequest, ModelResponse } from '../../src/llm/model';
import { CANNED } from './canned-outputs';

/** The canned answer for a phase; for retrieval, one that cites the first passage given. */
export function cannedAnswer(task: string, ctx: Pick<AgentContext, 'need' | 'passages'>): unknown {
  if (task !== 'retrieveInformation') return CANNED[task as PhaseName];
  const need = ctx.need!;
  const first = ctx.passages?.[0];
  const answer: RetrievalAnswer = first
    ? {
        need_id: need.id,
        question: need.question,
        answered: true,
        answer: `From ${first.source}: ${first.text.slice(0, 80)}`,
        confidence: 'medium',
        citations: [{ passage_id: first.ref, source: first.source }],
      }
    : {
        need_id: need.id,
        question: need.question,
        answered: false,
        answer: 'Nothing found.',
        confidence: 'none',
        citations: [],
      };
  return answer;
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
        JSON.stringify(cannedAnswer(request.task, request.context));
      resolve({ text, model: this.name, usage: { input_tokens: 10, output_tokens: 5 } });
    });
  }
}
