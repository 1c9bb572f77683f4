import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { decisionOwners, DecisionOwnerUnknown } from '../../src/webhooks/owner';

/** A client whose describe answers from `workflows` (memo, DecisionOwner), counting its calls. */
function fakeClient(
  workflows: Record<string, { memo?: Record<string, unknown>; attribute?: string } | Error>,
) {
  const calls: string[] = [];
  const client = {
    connection: { withDeadline: <T>(_deadline: number, fn: () => Promise<T>) => fn() },
    workflow: {
      getHandle: (id: string) => ({
        describe: () => {
          calls.push(id);
          const found = workflows[id];
          if (found instanceof Error) return Promise.reject(found);
          if (!found) return Promise.reject(new WorkflowNotFoundError('not found', id, undefined));
          return Promise.resolve({
            memo: found.memo,
            typedSearchAttributes: { get: () => found.attribute },
          });
        },
      }),
    },
  };
  return { client: client as unknown as Client, calls };
}

const projection = (records: Record<string, { owner: string | null }>) => ({
  get: (id: string) => Promise.resolve(records[id] ?? null),
});

describe('decisionOwners', () => {
  it('reads the owner from the decision workflow, once per decision', async () => {
    const { client, calls } = fakeClient({
      d1: { memo: { owner: 'billing' } },
      d2: { attribute: 'ops' },
      d3: { memo: {} },
    });
    const ownerOf = decisionOwners(client, projection({}));
    expect(await ownerOf('d1')).toBe('billing');
    expect(await ownerOf('d1')).toBe('billing');
    expect(await ownerOf('d2')).toBe('ops');
    // A decision from before owners signs as the API without auth does.
    expect(await ownerOf('d3')).toBe('anonymous');
    expect(calls).toEqual(['d1', 'd2', 'd3']);
  });

  it('falls back to the projection once Temporal no longer has the decision', async () => {
    const { client } = fakeClient({});
    const ownerOf = decisionOwners(
      client,
      projection({ gone: { owner: 'billing' }, old: { owner: null } }),
    );
    expect(await ownerOf('gone')).toBe('billing');
    expect(await ownerOf('old')).toBe('anonymous');
    await expect(ownerOf('nowhere')).rejects.toBeInstanceOf(DecisionOwnerUnknown);
  });

  it('passes on a Temporal that does not answer, and asks again next time', async () => {
    let down = true;
    const { client, calls } = fakeClient({});
    const flaky = {
      ...client,
      workflow: {
        getHandle: (id: string) => ({
          describe: () => {
            calls.push(id);
            return down
              ? Promise.reject(new Error('UNAVAILABLE'))
              : Promise.resolve({
                  memo: { owner: 'billing' },
                  typedSearchAttributes: { get: () => undefined },
                });
          },
        }),
      },
    } as unknown as Client;
    const ownerOf = decisionOwners(flaky, projection({ d1: { owner: 'someone-else' } }));
    await expect(ownerOf('d1')).rejects.toThrow('UNAVAILABLE');
    down = false;
    expect(await ownerOf('d1')).toBe('billing');
    expect(calls).toEqual(['d1', 'd1']);
  });

  it('keeps the most recent decisions only', async () => {
    const { client, calls } = fakeClient({
      a: { memo: { owner: 'x' } },
      b: { memo: { owner: 'y' } },
      c: { memo: { owner: 'z' } },
    });
    const ownerOf = decisionOwners(client, projection({}), 2);
    for (const id of ['a', 'b', 'c', 'a']) await ownerOf(id);
    expect(calls).toEqual(['a', 'b', 'c', 'a']);
  });
});
