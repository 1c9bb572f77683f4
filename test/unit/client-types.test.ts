import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { openApiDocument } from '../../src/api/document';
import { DECISION_EVENT_TYPES } from '../../src/domain/decision';
import { LIVE_EVENT_TYPES } from '../../src/domain/live';
import { SCHEMA, clientTypes } from '../../tools/client-types';

describe("the client's generated types (src/client/schema.ts)", () => {
  it("are what the API's OpenAPI document generates today", async () => {
    expect(
      readFileSync(SCHEMA, 'utf8'),
      "src/client/schema.ts differs from what the API's document generates: run npm run client:types",
    ).toBe(await clientTypes());
  });

  it("come from the document the API serves, each event type's data among its schemas", async () => {
    const document = (await openApiDocument()) as {
      paths: Record<string, unknown>;
      components: { schemas: Record<string, unknown> };
    };
    expect(document.paths).toHaveProperty(['/decisions/{process_id}/events']);
    const events = Object.keys(document.components.schemas)
      .filter((name) => name.startsWith('EventData.'))
      .map((name) => name.slice('EventData.'.length));
    expect(events.sort()).toEqual([...DECISION_EVENT_TYPES, ...LIVE_EVENT_TYPES].sort());
  });
});
