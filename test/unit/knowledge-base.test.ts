import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { KnowledgeBase, splitDocument } from '../../src/knowledge/knowledge-base';

describe('knowledge base', () => {
  let kb: KnowledgeBase;
  beforeAll(async () => {
    kb = await KnowledgeBase.load(resolve(__dirname, '../../knowledge'));
  });

  it('splits a document into one passage per section', () => {
    const passages = splitDocument(
      'doc.md',
      '# Title\nIntro.\n\n## Cost\nIt costs money.\n\n## Risks\nIt may fail.',
    );
    expect(passages.map((p) => [p.id, p.heading, p.text])).toEqual([
      ['doc.md#title', 'Title', 'Intro.'],
      ['doc.md#cost', 'Cost', 'It costs money.'],
      ['doc.md#risks', 'Risks', 'It may fail.'],
    ]);
  });

  it('indexes every section of the sample documents', () => {
    expect(kb.size).toBeGreaterThanOrEqual(15);
  });

  it.each([
    ['What would a managed Postgres cost for billing?', 'managed-postgres-evaluation.md#cost'],
    [
      'How fast does a managed database fail over, and what is the recovery point?',
      'managed-postgres-evaluation.md#reliability-and-recovery',
    ],
    [
      'What went wrong when the billing primary failed?',
      'incident-reviews.md#2025-03-billing-database-primary-failure',
    ],
    ['How long does hiring a platform engineer take?', 'engineering-team.md#hiring'],
    ['When are changes to billing frozen?', 'decision-guidelines.md#change-freezes'],
  ])('ranks the passage that answers "%s" in the top two', (query, id) => {
    expect(kb.search(query, 2).map((h) => h.id)).toContain(id);
  });

  it('returns hits best first with their source', () => {
    const hits = kb.search('managed postgres migration effort weeks');
    expect(hits[0]).toMatchObject({
      id: 'managed-postgres-evaluation.md#migration-effort',
      source: 'managed-postgres-evaluation.md',
    });
    expect(hits.map((h) => h.score)).toEqual([...hits.map((h) => h.score)].sort((a, b) => b - a));
  });

  it('finds nothing for a question the documents do not touch', () => {
    expect(kb.search('quantum chromodynamics lattice simulations')).toEqual([]);
    expect(kb.search('what is the and of it?')).toEqual([]);
  });
});
