import { describe, expect, it } from 'vitest';
import { createDeterministicAgents, keywordsOf, subjectOf } from '../../src/agents/deterministic';
import type { PhaseOutputs } from '../../src/domain/decision';
import { PHASE_NAMES } from '../../src/domain/phases';

describe('deterministic agents', () => {
  it('take the subject and key terms from the question', () => {
    expect(subjectOf('Should we move billing to a managed Postgres?')).toBe(
      'move billing to a managed Postgres',
    );
    expect(subjectOf('Hire two engineers')).toBe('Hire two engineers');
    expect(keywordsOf('Should we move billing to a managed Postgres?')).toEqual([
      'move',
      'billing',
      'managed',
      'postgres',
    ]);
  });

  it('answer every phase in order from the question and the earlier outputs', async () => {
    const agents = createDeterministicAgents();
    const query = 'Should we adopt Kubernetes for the batch jobs?';
    const outputs: PhaseOutputs = {};
    for (const phase of PHASE_NAMES) {
      const answer = await agents[phase]({ decision_id: 'd', query, outputs: { ...outputs } });
      outputs[phase] = answer.output;
    }
    expect(JSON.stringify(outputs.identifyTrigger)).toContain(
      'adopt Kubernetes for the batch jobs',
    );
    expect(JSON.stringify(outputs.compileResult)).toContain(query);
  });

  it('refuse to run a phase whose inputs are missing', async () => {
    const agents = createDeterministicAgents();
    await expect(
      agents.compileResult({ decision_id: 'd', query: 'Q?', outputs: {} }),
    ).rejects.toThrow('the updateDraft output is missing');
  });
});
