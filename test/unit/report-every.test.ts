import { describe, expect, it } from 'vitest';
import { reportEvery } from '../../src/process/report-every';

describe('reportEvery', () => {
  it('passes on the first error, then one an interval, counting those it held back', () => {
    let clock = 0;
    const reported: [unknown, number][] = [];
    const report = reportEvery(
      5000,
      (err, more) => reported.push([err, more]),
      () => clock,
    );
    report('a');
    clock = 1000;
    report('b');
    clock = 4999;
    report('c');
    clock = 5000;
    report('d');
    clock = 9000;
    report('e');
    clock = 20_000;
    report('f');
    expect(reported).toEqual([
      ['a', 0],
      ['d', 2],
      ['f', 1],
    ]);
  });
});
