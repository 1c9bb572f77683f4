import { setTimeout } from 'node:timers/promises';
import type { AgentContext, PromptPassage } from './context';
import type { PhaseOutputMap, RetrievalAnswer } from '../domain/outputs';
import type { PhaseName } from '../domain/phases';
import { searchTerms } from '../knowledge/knowledge-base';
import type { JsonSchema } from '../llm/json-schema';
import type { LanguageModel, ModelRequest, ModelResponse } from '../llm/model';

export const OFFLINE_MODEL = 'offline-heuristic-v1';

/** "Should we move billing to a managed Postgres?" → "move billing to a managed Postgres". */
export function subjectOf(query: string): string {
  const trimmed = query.trim().replace(/[?.!\s]+$/u, '');
  const stripped = trimmed.replace(
    /^(should|shall|can|could|would|must|do|does|is|are|will)\s+(we|i|our team|the team|they|it|you)\s+/iu,
    '',
  );
  return stripped || trimmed;
}

/** The question's content words, in order, without repeats. */
export function keywordsOf(text: string, limit = 6): string[] {
  return [...new Set(searchTerms(text).filter((t) => t.length > 2))].slice(0, limit);
}

const LEADING_VERB =
  /^(move|migrate|adopt|hire|buy|build|switch|replace|use|introduce|launch|keep|drop|deprecate|rewrite|outsource|expand|open|close|raise|cut|invest|start|stop|run|go|change|upgrade|consolidate|split|merge)\s+(in|to|into|on)?\s*/i;

/** The question's content words after its leading verb: what the decision is about. */
export function topicsOf(query: string): string[] {
  return keywordsOf(subjectOf(query).replace(LEADING_VERB, ''));
}

/** Word pieces of a text: the offline model's stand-in for a tokenizer's count. */
export function countTokens(text: string): number {
  return text.match(/[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu)?.length ?? 0;
}

const STAKEHOLDERS: [RegExp, string][] = [
  [/bill|invoice|payment|cost|budget|price|finance/i, 'Finance'],
  [/postgres|database|mysql|redis|data|storage|sql/i, 'Platform and database engineers'],
  [/kubernetes|cloud|infra|server|deploy|aws|gcp|azure/i, 'Infrastructure team'],
  [/hire|hiring|team|engineer|staff|recruit/i, 'Engineering managers'],
  [/customer|user|client|support/i, 'Customer support'],
  [/security|compliance|privacy|gdpr|soc/i, 'Security and compliance'],
];

const URGENT = /\b(outage|incident|down|urgent|asap|immediately|breach|critical)\b/i;
const SOON = /\b(now|soon|this (quarter|month|year)|deadline|before)\b/i;

function sentences(text: string): string[] {
  return text
    .replace(/\s+/g, ' ')
    .split(/(?<=[.!?])\s+(?=[A-Z0-9"“(])/u)
    .map((s) => s.trim())
    .filter((s) => s.length > 20);
}

function overlap(a: string, terms: Set<string>): number {
  return searchTerms(a).filter((t) => terms.has(t)).length;
}

/**
 * The answer cut to the limits of the schema it was asked for (strings to their maxLength, lists
 * to their maxItems), as a model that follows its schema writes it: long questions are quoted in
 * many fields.
 */
export function fitToSchema(value: unknown, schema: JsonSchema): unknown {
  if (typeof value === 'string' && typeof schema.maxLength === 'number') {
    return value.length <= schema.maxLength
      ? value
      : `${value.slice(0, schema.maxLength - 1).trimEnd()}…`;
  }
  if (Array.isArray(value)) {
    const items = schema.items as JsonSchema | undefined;
    const kept = typeof schema.maxItems === 'number' ? value.slice(0, schema.maxItems) : value;
    return items ? kept.map((v) => fitToSchema(v, items)) : kept;
  }
  if (value && typeof value === 'object') {
    const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, properties[k] ? fitToSchema(v, properties[k]) : v]),
    );
  }
  return value;
}

/** The offline model's answer to a retrieval call: the answer schema's shape, refs as citations. */
interface RetrievalReply {
  need_id: string;
  answered: boolean;
  answer: string;
  confidence: RetrievalAnswer['confidence'];
  citations: string[];
}

function answerFromPassages(ctx: AgentContext): RetrievalReply {
  const need = ctx.need!;
  const terms = new Set(searchTerms(need.question));
  const scored = (ctx.passages ?? [])
    .map((p) => ({ p, best: bestSentences(p, terms) }))
    .filter((x) => x.best.score > 0)
    .sort((a, b) => b.best.score - a.best.score);
  if (scored.length === 0) {
    return {
      need_id: need.id,
      answered: false,
      answer: 'The passages found do not address this question.',
      confidence: 'none',
      citations: [],
    };
  }
  const used = scored.slice(0, 2);
  return {
    need_id: need.id,
    answered: true,
    answer: used.map((u) => `${u.best.text} [${u.p.ref}]`).join(' '),
    confidence: used.length > 1 && used[0]!.best.score >= 2 ? 'high' : 'medium',
    citations: used.map((u) => u.p.ref),
  };
}

function bestSentences(p: PromptPassage, terms: Set<string>): { text: string; score: number } {
  const ranked = sentences(p.text)
    .map((s) => ({ s, score: overlap(s, terms) }))
    .sort((a, b) => b.score - a.score);
  const top = ranked.slice(0, 2).filter((r) => r.score > 0);
  return { text: top.map((r) => r.s).join(' '), score: top.reduce((n, r) => n + r.score, 0) };
}

type Compose = { [P in PhaseName]: (ctx: AgentContext) => unknown };

/** Question-specific rules per phase, reading the same structured context the prompts are built from. */
const compose: Compose = {
  identifyTrigger: ({ query }): PhaseOutputMap['identifyTrigger'] => {
    const subject = subjectOf(query);
    const stakeholders = STAKEHOLDERS.filter(([re]) => re.test(query)).map(([, who]) => who);
    return {
      summary: `A decision is needed on whether to ${subject}.`,
      trigger: `The team has to choose whether to ${subject}, and the current approach is in question.`,
      urgency: URGENT.test(query) ? 'high' : SOON.test(query) ? 'medium' : 'low',
      stakeholders: [...stakeholders, 'The decision owner'],
    };
  },
  analyzeRootCause: ({ query, outputs }): PhaseOutputMap['analyzeRootCause'] => {
    const [first = 'this area', ...rest] = topicsOf(query);
    return {
      summary: `The way ${first} is handled today no longer fits what the team needs.`,
      root_cause: `The current approach to ${first} was chosen for needs that have since changed.`,
      contributing_factors: [
        `Trigger: ${outputs.identifyTrigger?.trigger ?? query}`,
        ...rest.slice(0, 3).map((k) => `Constraints and expectations around ${k}`),
      ],
    };
  },
  defineScope: ({ query, outputs }): PhaseOutputMap['defineScope'] => {
    const subject = subjectOf(query);
    return {
      summary: `The decision covers whether and how to ${subject}.`,
      in_scope: [`Whether to ${subject}`, 'How a change would be rolled out and rolled back'],
      out_of_scope: ['Systems and teams the question does not touch'],
      constraints: [
        'Existing commitments to customers must hold during any change',
        `Root cause to address: ${outputs.analyzeRootCause?.root_cause ?? subject}`,
      ],
    };
  },
  establishGoals: ({ query }) => {
    const topic = topicsOf(query)[0] ?? 'the outcome';
    return {
      summary: `Choose the option that best balances risk, cost, time to value and impact on ${topic}.`,
      goals: [
        { goal: 'Reduce operational risk', metric: 'incidents per quarter' },
        { goal: 'Keep total cost within budget', metric: 'monthly cost against budget' },
        { goal: `Improve ${topic}`, metric: `a measured ${topic} indicator agreed up front` },
      ],
      criteria: [
        { name: 'Risk', importance: 5, description: 'How safe the option is; 5 is safest' },
        { name: 'Cost', importance: 4, description: 'Total cost; 5 is cheapest' },
        { name: 'Time to value', importance: 3, description: 'How soon it pays off; 5 is soonest' },
        {
          name: `Impact on ${topic}`,
          importance: 3,
          description: `How much it improves ${topic}`,
        },
      ],
    };
  },
  identifyInformationNeeds: ({ query }) => {
    const subject = subjectOf(query);
    const topic = topicsOf(query)[0] ?? 'this area';
    return {
      summary: `Four questions must be answered before deciding whether to ${subject}.`,
      needs: [
        { question: `What would it cost to ${subject}?`, why: 'Cost is a criterion.' },
        {
          question: `What are the risks and failure modes if we ${subject}?`,
          why: 'Risk carries the most weight.',
        },
        {
          question: `What problems has the current approach to ${topic} caused?`,
          why: 'The baseline to compare against.',
        },
        {
          question: `How much effort and time would it take to ${subject}?`,
          why: 'Time to value is a criterion.',
        },
      ],
    };
  },
  retrieveInformation: answerFromPassages,
  generateAlternatives: ({ query, outputs }): PhaseOutputMap['generateAlternatives'] => {
    const subject = subjectOf(query);
    const criteria = outputs.establishGoals?.criteria ?? [];
    const answers = outputs.retrieveInformation?.answers ?? [];
    const evidence = answers.filter((a) => a.answered).length;
    const riskSignals = answers.filter((a) =>
      /risk|outage|incident|downtime|fail|lock-?in/i.test(a.answer),
    ).length;
    // Column per option: Proceed, Pilot, Defer. Evidence of risk makes proceeding at once riskier.
    const base = {
      risk: [riskSignals > 0 ? 2 : 3, 4, 3],
      cost: [2, 3, 5],
      time: [4, 3, 1],
      impact: [evidence > 0 ? 5 : 4, 3, 1],
    } satisfies Record<string, [number, number, number]>;
    const row = (name: string) =>
      /risk/i.test(name)
        ? base.risk
        : /cost/i.test(name)
          ? base.cost
          : /time/i.test(name)
            ? base.time
            : base.impact;
    const scores = (i: 0 | 1 | 2) =>
      Object.fromEntries(criteria.map((c) => [c.name, row(c.name)[i]]));
    return {
      summary: `Three ways forward on whether to ${subject}, scored on ${criteria.length} criteria with ${evidence} answered information needs.`,
      alternatives: [
        {
          name: 'Proceed now',
          description: `${subject[0]!.toUpperCase()}${subject.slice(1)} in one planned change.`,
          scores: scores(0),
          pros: ['Fastest route to the benefit'],
          cons: ['All risk taken at once'],
        },
        {
          name: 'Pilot first',
          description: `Try it on a limited part first, then decide on the rest.`,
          scores: scores(1),
          pros: ['Learns cheaply before committing', 'Limits the blast radius'],
          cons: ['Slower, and the pilot may not show every problem'],
        },
        {
          name: 'Defer',
          description: 'Keep the current approach and revisit next quarter with more data.',
          scores: scores(2),
          pros: ['No change cost now'],
          cons: ['The root cause stays unaddressed'],
        },
      ],
    };
  },
  draftDecision: ({ outputs }): PhaseOutputMap['draftDecision'] => {
    const alts = [...(outputs.generateAlternatives?.alternatives ?? [])].sort(
      (a, b) => (b.weighted_score ?? 0) - (a.weighted_score ?? 0),
    );
    const best = alts[0]!;
    const answers = outputs.retrieveInformation?.answers ?? [];
    const riskAnswer = answers.find((a) => a.answered && /risk/i.test(a.question));
    const riskSentence =
      riskAnswer &&
      sentences(riskAnswer.answer.replace(/\s*\[P\d+\]/g, '')).find((x) => /risk/i.test(x));
    const margin = (best.weighted_score ?? 0) - (alts[1]?.weighted_score ?? 0);
    return {
      summary: `Recommend "${best.name}" (weighted score ${best.weighted_score}).`,
      recommended: best.name,
      rationale: `"${best.name}" scores highest on the weighted criteria (${alts.map((a) => `${a.name} ${a.weighted_score}`).join(', ')}). ${best.pros.join('; ')}.`,
      risks: [
        {
          risk: riskSentence ?? best.cons[0] ?? 'Unforeseen problems',
          mitigation: 'Define a rollback plan and a success measure before starting.',
        },
      ],
      confidence: margin > 0.15 ? 'high' : margin > 0.05 ? 'medium' : 'low',
    };
  },
  updateDraft: ({ outputs, review }): PhaseOutputMap['updateDraft'] => {
    const draft = outputs.draftDecision!;
    const unanswered = (outputs.retrieveInformation?.answers ?? []).filter((a) => !a.answered);
    const critique = [
      ...(review?.kind === 'feedback' ? [`Reviewer feedback: ${review.feedback}`] : []),
      ...(review?.kind === 'approved' ? ['A reviewer approved the draft.'] : []),
      ...(review?.kind === 'timed_out'
        ? ['No reviewer answered in time; this is self-critique.']
        : []),
      'The draft names no success measure for the recommendation.',
      ...(unanswered.length
        ? [
            `Needs ${unanswered.map((a) => a.need_id).join(', ')} are unanswered; the rationale rests on less evidence.`,
          ]
        : []),
    ];
    return {
      summary: `${draft.recommended}, with a success measure and a review point added.`,
      critique,
      revised_recommendation: draft.recommended,
      revised_rationale: `${draft.rationale} Success is measured against the goals' metrics at a review point agreed before starting.`,
      changes: [
        ...(review?.kind === 'feedback' ? ['Revised to address the reviewer feedback'] : []),
        'Added a success measure and a review point',
        ...(unanswered.length ? ['Listed the unanswered needs as open questions'] : []),
      ],
    };
  },
  compileResult: ({ query, outputs }) => {
    const revised = outputs.updateDraft!;
    const alts = outputs.generateAlternatives?.alternatives ?? [];
    return {
      title: query,
      decision:
        `${revised.revised_recommendation}: ${alts.find((a) => a.name === revised.revised_recommendation)?.description ?? ''}`.trim(),
      summary: revised.summary,
      rationale: revised.revised_rationale,
      risks: outputs.draftDecision?.risks ?? [],
      next_steps: [
        'Agree the success measure and review date',
        'Name an owner for the change',
        'Prepare the rollback plan',
      ],
      open_questions: (outputs.retrieveInformation?.answers ?? [])
        .filter((a) => !a.answered)
        .map((a) => a.question),
    };
  },
};

/** The agent context a call carries as its hints: the offline model reads it, not the prompt. */
function agentContextOf(request: ModelRequest): AgentContext {
  const hints = request.hints as Partial<AgentContext> | undefined;
  if (typeof hints?.query !== 'string' || typeof hints.outputs !== 'object' || !hints.outputs) {
    throw new Error(
      `The offline model answers agents' calls only: the "${request.task}" request carries no agent context in its hints`,
    );
  }
  return hints as AgentContext;
}

/**
 * A deterministic stand-in for a language model: no network, no key. It answers each phase with
 * fixed rules over the question's own words, earlier outputs and retrieved passages. It does not
 * reason; it exists so the system runs out of the box and in tests. Token counts are word pieces.
 *
 * `delayMs` holds each answer back that long, as a remote model's latency would (benchmarks use
 * it); a call's abort signal ends the wait.
 */
export function createOfflineModel(options: { delayMs?: number } = {}): LanguageModel {
  const delayMs = options.delayMs ?? 0;
  return {
    name: OFFLINE_MODEL,
    async generate(request: ModelRequest): Promise<ModelResponse> {
      const rules = compose[request.task as PhaseName];
      if (!rules) throw new Error(`The offline model has no rules for "${request.task}"`);
      if (delayMs > 0) await setTimeout(delayMs, undefined, { signal: request.signal });
      const text = JSON.stringify(fitToSchema(rules(agentContextOf(request)), request.jsonSchema));
      const prompt = [request.system, ...request.messages.map((m) => m.content)].join('\n');
      return {
        text,
        model: OFFLINE_MODEL,
        usage: { input_tokens: countTokens(prompt), output_tokens: countTokens(text) },
      };
    },
  };
}
