import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ResultSample } from './result-sample.ts';

/** Rows as a protocol would keep them: here, the values as JSON, read back by `read`. */
const row = (...values: (string | null)[]) =>
  Buffer.from(JSON.stringify(values.map((v) => (v === null ? null : Buffer.from(v).toString('hex')))));
const read = (bytes: Uint8Array) =>
  (JSON.parse(Buffer.from(bytes).toString()) as (string | null)[]).map((v) => (v === null ? null : Buffer.from(v, 'hex')));

describe('ResultSample', () => {
  it('keeps the columns and rows, NULL as null, until the size, then counts the rest as cut', () => {
    const sample = new ResultSample(20);
    sample.columns(['id', 'note']);
    sample.row(row('1', 'abc'), read); // 15 bytes as kept
    sample.row(row('2', null), read); // begun under 20: kept (26)
    sample.row(row('3', 'defgh'), read); // past the size: cut
    assert.deepEqual(sample.record(), {
      columns: ['id', 'note'],
      rows: [
        ['1', 'abc'],
        ['2', null],
      ],
      truncated: true,
    });
  });

  it('keeps only the first result set, and bytes that are not UTF-8 as hex', () => {
    const sample = new ResultSample();
    sample.columns(['b']);
    sample.row(Buffer.from(JSON.stringify(['fffe00'])), read);
    sample.columns(['other']);
    sample.row(row('x'), read);
    assert.deepEqual(sample.record(), { columns: ['b'], rows: [['\\xfffe00']], truncated: true });
  });

  it('records nothing for a statement that returned nothing', () => {
    assert.equal(new ResultSample().record(), undefined);
  });
});
