import { readFileSync } from 'node:fs';
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { DecisionEventType as ClientEventType } from '../../src/client';
import { DECISION_EVENT_TYPES, type DecisionEventType } from '../../src/domain/decision';
import { LIVE_EVENT_TYPES, type LiveEventType } from '../../src/domain/live';
import { SCHEMA, clientTypes } from '../../tools/client-types';
import { liveDocument } from '../../tools/openapi';

describe("the client's generated types (src/client/schema.ts)", () => {
  it("are what the API's OpenAPI document generates today", async () => {
    expect(
      readFileSync(SCHEMA, 'utf8'),
      "src/client/schema.ts differs from what the API's document generates: run npm run client:types",
    ).toBe(await clientTypes());
  });

  it("come from the document the API serves, each event type's data among its schemas", async () => {
    const document = (await liveDocument()) as {
      paths: Record<string, unknown>;
      components: { schemas: Record<string, unknown> };
    };
    expect(document.paths).toHaveProperty(['/decisions/{process_id}/events']);
    const events = Object.keys(document.components.schemas)
      .filter((name) => name.startsWith('EventData.'))
      .map((name) => name.slice('EventData.'.length));
    expect(events.sort()).toEqual([...DECISION_EVENT_TYPES, ...LIVE_EVENT_TYPES].sort());
  });

  it("type the events by the domain's event types, durable and live", () => {
    // A type-level check: `npm run typecheck` fails when the two differ.
    expectTypeOf<ClientEventType>().toEqualTypeOf<DecisionEventType | LiveEventType>();
  });
});
