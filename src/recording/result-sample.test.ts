import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ResultSample, valueText } from './result-sample.ts';

/** Rows as a protocol would keep them: here, the values' bytes in hex as JSON, read back by `read`. */
const row = (...values: (string | null)[]) =>
  Buffer.from(JSON.stringify(values.map((v) => (v === null ? null : Buffer.from(v).toString('hex')))));
const read = (bytes: Buffer) =>
  (JSON.parse(bytes.toString()) as (string | null)[]).map((v) => {
    if (v === null) return null;
    const value = Buffer.from(v, 'hex');
    return valueText(value, 0, value.length);
  });

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

describe('valueText', () => {
  const text = (bytes: Buffer) => valueText(Buffer.concat([Buffer.from('ab'), bytes, Buffer.from('cd')]), 2, 2 + bytes.length);

  it('reads the bytes between start and end as UTF-8, ASCII or not', () => {
    assert.equal(text(Buffer.from('plain ascii')), 'plain ascii');
    assert.equal(text(Buffer.from('café ☕ 𝄞')), 'café ☕ 𝄞');
    assert.equal(text(Buffer.alloc(0)), '');
  });

  it('keeps bytes that are not UTF-8 as \\x and the first 32 of them in hex', () => {
    assert.equal(text(Buffer.from([0x41, 0xc3])), '\\x41c3'); // a character cut in two
    assert.equal(text(Buffer.from([0xff, ...Buffer.alloc(40, 0x61)])), `\\xff${'61'.repeat(31)}…`);
  });
});
