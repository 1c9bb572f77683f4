import type { PhaseOutputMap } from '../../src/domain/outputs';

export const CANNED_QUERY = 'Should we move billing to a managed Postgres?';

/** Schema-valid outputs of every phase for CANNED_QUERY, consistent with one another. */
export const CANNED: PhaseOutputMap = {
  identifyTrigger: {
    summary: 'Manual failover caused a 47-minute billing outage.',
    trigger: 'TRIGGER-MARK: the March billing database failover took 47 minutes',
    urgency: 'high',
    stakeholders: ['Finance', 'STAKEHOLDER-MARK Platform team'],
  },
  analyzeRootCause: {
    summary: 'Self-managed Postgres needs manual operations the team cannot staff.',
    root_cause: 'ROOT-CAUSE-MARK: a self-managed cluster with manual failover',
    contributing_factors: ['FACTOR-MARK: nightly backups only'],
  },
  defineScope: {
    summary: 'The billing database only.',
    in_scope: ['SCOPE-MARK: the billing database'],
    out_of_scope: ['The reporting database'],
    constraints: ['CONSTRAINT-MARK: no change during month-end close'],
  },
  establishGoals: {
    summary: 'Fewer outages at acceptable cost.',
    goals: [{ goal: 'GOAL-MARK: recover in minutes', metric: 'failover time' }],
    criteria: [
      { name: 'Reliability', importance: 3, weight: 0.6, description: 'How safe' },
      { name: 'Cost', importance: 2, weight: 0.4, description: 'How cheap' },
    ],
  },
  identifyInformationNeeds: {
    summary: 'Two questions.',
    needs: [
      { id: 'N1', question: 'What would a managed Postgres cost for billing?', why: 'Cost' },
      { id: 'N2', question: 'How fast does managed Postgres fail over?', why: 'Reliability' },
    ],
  },
  retrieveInformation: {
    summary: '2 of 2 information needs answered from the knowledge base.',
    answers: [
      {
        need_id: 'N1',
        question: 'What would a managed Postgres cost for billing?',
        answered: true,
        answer: 'EVIDENCE-MARK: about 4,900 USD a month.',
        confidence: 'high',
        citations: [{ passage_id: 'P1', source: 'managed-postgres-evaluation.md' }],
      },
      {
        need_id: 'N2',
        question: 'How fast does managed Postgres fail over?',
        answered: true,
        answer: 'Within 60 to 120 seconds.',
        confidence: 'high',
        citations: [{ passage_id: 'P1', source: 'managed-postgres-evaluation.md' }],
      },
    ],
  },
  generateAlternatives: {
    summary: 'Three options.',
    alternatives: [
      {
        name: 'Migrate',
        description: 'ALTERNATIVE-MARK: move billing to managed Postgres',
        scores: { Reliability: 5, Cost: 3 },
        pros: ['Automatic failover'],
        cons: ['Migration effort'],
        weighted_score: 0.8,
      },
      {
        name: 'Pilot',
        description: 'Move reporting first',
        scores: { Reliability: 4, Cost: 4 },
        pros: ['Low risk'],
        cons: ['Slower'],
        weighted_score: 0.75,
      },
      {
        name: 'Stay',
        description: 'Keep self-managed',
        scores: { Reliability: 2, Cost: 4 },
        pros: ['No change'],
        cons: ['Outages continue'],
        weighted_score: 0.45,
      },
    ],
  },
  draftDecision: {
    summary: 'Migrate.',
    recommended: 'Migrate',
    rationale: 'DRAFT-MARK: best reliability for the cost',
    risks: [{ risk: 'Cut-over fails', mitigation: 'Rehearse it' }],
    confidence: 'medium',
  },
  updateDraft: {
    summary: 'Migrate after a rehearsal.',
    critique: ['CRITIQUE-MARK: no rollback plan'],
    revised_recommendation: 'Migrate',
    revised_rationale: 'REVISED-MARK: best reliability, with a rehearsed cut-over',
    changes: ['Added a rehearsal'],
  },
  compileResult: {
    title: 'Move billing to managed Postgres',
    decision: 'Migrate billing to managed Postgres after a rehearsal.',
    summary: 'Migrate.',
    rationale: 'Best reliability for the cost.',
    alternatives_considered: [
      { name: 'Migrate', weighted_score: 0.8 },
      { name: 'Pilot', weighted_score: 0.75 },
      { name: 'Stay', weighted_score: 0.45 },
    ],
    risks: [{ risk: 'Cut-over fails', mitigation: 'Rehearse it' }],
    next_steps: ['Schedule the rehearsal'],
    open_questions: [],
  },
};
