import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ResultSample } from './result-sample.ts';

const row = (...values: (string | null)[]) => values.map((v) => (v === null ? null : Buffer.from(v)));

describe('ResultSample', () => {
  it('keeps the columns and rows, NULL as null, until the size, then counts the rest as cut', () => {
    const sample = new ResultSample(10);
    sample.columns(['id', 'note']);
    sample.row(row('1', 'abc'));
    sample.row(row('2', null));
    sample.row(row('3', 'defgh')); // reaches 10 bytes: kept
    assert.equal(sample.wantsRows, false);
    sample.row(row('4', 'never kept'));
    assert.deepEqual(sample.record(), {
      columns: ['id', 'note'],
      rows: [
        ['1', 'abc'],
        ['2', null],
        ['3', 'defgh'],
      ],
      truncated: true,
    });
  });

  it('keeps only the first result set, and bytes that are not UTF-8 as hex', () => {
    const sample = new ResultSample();
    sample.columns(['b']);
    sample.row([Buffer.from([0xff, 0xfe, 0x00])]);
    sample.columns(['other']);
    sample.row(row('x'));
    assert.deepEqual(sample.record(), { columns: ['b'], rows: [['\\xfffe00']], truncated: true });
  });

  it('records nothing for a statement that returned nothing', () => {
    assert.equal(new ResultSample().record(), undefined);
  });
});
