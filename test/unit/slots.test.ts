import { describe, expect, it } from 'vitest';
import { Slots } from '../../src/process/slots';

describe('Slots', () => {
  it('holds each key to its limit, apart from the others', () => {
    const slots = new Slots();
    const a = [slots.tryTake('a', 2), slots.tryTake('a', 2)];
    expect(a.every((release) => typeof release === 'function')).toBe(true);
    expect(slots.tryTake('a', 2)).toBeNull();
    expect(slots.tryTake('b', 2)).not.toBeNull();
  });

  it('gives a slot back once, however often it is released', () => {
    const slots = new Slots();
    const first = slots.tryTake('a', 2)!;
    slots.tryTake('a', 2);
    first();
    first();
    // A second release of the same slot does not free the other one held.
    expect(slots.tryTake('a', 2)).not.toBeNull();
    expect(slots.tryTake('a', 2)).toBeNull();
  });
});
