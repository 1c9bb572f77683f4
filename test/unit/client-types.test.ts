import { readFileSync } from 'node:fs';
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { DecisionEventType as ClientEventType } from '../../src/client';
import type { DecisionEventType } from '../../src/domain/decision';
import type { LiveEventType } from '../../src/domain/live';
import { SCHEMA, clientTypes } from '../../tools/client-types';

describe("the client's generated types (src/client/schema.ts)", () => {
  it("are what the API's OpenAPI document generates today", async () => {
    expect(
      readFileSync(SCHEMA, 'utf8'),
      "src/client/schema.ts differs from what the API's document generates: run npm run client:types",
    ).toBe(await clientTypes());
  });

  it("type the events by the domain's event types, durable and live", () => {
    // A type-level check: `npm run typecheck` fails when the two differ.
    expectTypeOf<ClientEventType>().toEqualTypeOf<DecisionEventType | LiveEventType>();
  });
});
