import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import MiniSearch from 'minisearch';
import { isSearchTerm, searchTerms } from '../domain/text';

export interface Passage {
  /** Stable id: the file's path under the knowledge folder, the section, and the chunk. */
  id: string;
  source: string;
  heading: string;
  text: string;
}

export interface SearchHit extends Passage {
  score: number;
}

const MAX_PASSAGE_CHARS = 1200;

/** Splits a Markdown or text document into passages: one per section, long ones by paragraph. */
export function splitDocument(source: string, content: string): Passage[] {
  const passages: Passage[] = [];
  let heading = source;
  let buffer: string[] = [];
  const counts = new Map<string, number>();
  const flush = () => {
    const paragraphs = buffer
      .join('\n')
      .split(/\n\s*\n/)
      .map((p) => p.trim())
      .filter(Boolean);
    buffer = [];
    let chunk = '';
    const emit = () => {
      if (!chunk) return;
      const n = (counts.get(heading) ?? 0) + 1;
      counts.set(heading, n);
      const slug = heading
        .toLowerCase()
        .replace(/[^\p{L}\p{N}]+/gu, '-')
        .replace(/^-|-$/g, '');
      passages.push({
        id: `${source}#${slug}${n > 1 ? `-${n}` : ''}`,
        source,
        heading,
        text: chunk,
      });
      chunk = '';
    };
    for (const paragraph of paragraphs) {
      if (chunk && chunk.length + paragraph.length > MAX_PASSAGE_CHARS) emit();
      chunk = chunk ? `${chunk}\n\n${paragraph}` : paragraph;
    }
    emit();
  };
  for (const line of content.split(/\r?\n/)) {
    const match = /^#{1,6}\s+(.*)$/.exec(line);
    if (match) {
      flush();
      heading = match[1]!.trim();
    } else {
      buffer.push(line);
    }
  }
  flush();
  return passages;
}

/** A folder of Markdown/text documents, indexed for BM25-ranked full-text search (MiniSearch). */
export class KnowledgeBase {
  private readonly index: MiniSearch<Passage>;
  private readonly passages = new Map<string, Passage>();

  constructor(passages: Passage[]) {
    this.index = new MiniSearch<Passage>({
      fields: ['heading', 'text'],
      storeFields: ['id'],
      processTerm: (term) => {
        const t = term.toLowerCase();
        return isSearchTerm(t) ? t : null;
      },
      searchOptions: { boost: { heading: 1.5 }, prefix: true, fuzzy: 0.15, combineWith: 'OR' },
    });
    this.index.addAll(passages);
    for (const p of passages) this.passages.set(p.id, p);
  }

  /** Reads every .md, .markdown and .txt file below `dir`. */
  static async load(dir: string): Promise<KnowledgeBase> {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    const files = entries
      .filter((e) => e.isFile() && /\.(md|markdown|txt)$/i.test(e.name))
      .map((e) => join(e.parentPath, e.name))
      .sort();
    const passages: Passage[] = [];
    for (const file of files) {
      passages.push(...splitDocument(relative(dir, file), await readFile(file, 'utf8')));
    }
    return new KnowledgeBase(passages);
  }

  get size(): number {
    return this.passages.size;
  }

  /** The best passages for the query, best first; empty when no passage shares a term with it. */
  search(query: string, limit = 4): SearchHit[] {
    if (searchTerms(query).length === 0) return [];
    const hits = this.index.search(query);
    // Fuzzy and prefix matching find something for almost any query; far weaker hits are noise.
    const floor = (hits[0]?.score ?? 0) * 0.25;
    return hits
      .filter((hit) => hit.score >= floor)
      .slice(0, limit)
      .map((hit) => ({ ...this.passages.get(hit.id as string)!, score: hit.score }));
  }
}
