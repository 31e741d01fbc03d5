import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeBackend } from '../../wire/pg/decode.ts';
import { encodeBackend } from '../../wire/pg/encode.ts';
import { columnNames, functionCallCommand, prepareCommand, queryCommand, rowsOfTag, rowValues } from './commands.ts';

describe('rowsOfTag', () => {
  const cases: [string, number | undefined][] = [
    ['SELECT 5', 5],
    ['INSERT 0 3', 3],
    ['UPDATE 0', 0],
    ['DELETE 12', 12],
    ['MERGE 4', 4],
    ['COPY 10', 10],
    ['FETCH 100', 100],
    ['MOVE 2', 2],
    ['BEGIN', undefined],
    ['COMMIT', undefined],
    ['CREATE TABLE', undefined],
    ['DROP TABLE', undefined],
    ['SET', undefined],
    ['', undefined],
  ];
  for (const [tag, rows] of cases) {
    it(`${JSON.stringify(tag)} → ${rows}`, () => assert.equal(rowsOfTag(tag), rows));
  }

  it('a row count beyond 2^53 is undefined rather than wrong', () => {
    assert.equal(rowsOfTag('SELECT 18446744073709551615'), undefined);
  });
});

describe('commands', () => {
  it('a query carries its text', () => {
    assert.deepEqual(queryCommand('select 1; select 2'), { kind: 'query', text: 'select 1; select 2' });
  });
  it('a prepared statement carries its text and name', () => {
    assert.deepEqual(prepareCommand('s1', 'select $1'), { kind: 'prepare', text: 'select $1', statementName: 's1' });
    assert.deepEqual(prepareCommand('', 'select 1'), { kind: 'prepare', text: 'select 1', statementName: '' });
  });
  it('a fast-path call is described', () => {
    assert.deepEqual(functionCallCommand(1598, 2), { kind: 'function-call', text: 'fast-path call of function 1598 with 2 argument(s)' });
  });
});

/** The body of an encoded backend message (type byte and length cut off). */
const body = (message: Parameters<typeof encodeBackend>[0]) => encodeBackend(message).subarray(5);

/** A value as the recording keeps it, read by the codec: UTF-8 text, or `\x` and hex (result-sample.ts). */
function asRecorded(value: Buffer | null): string | null {
  if (value === null) return null;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(value);
  } catch {
    return `\\x${value.subarray(0, 32).toString('hex')}${value.length > 32 ? '…' : ''}`;
  }
}

const values = fc.array(fc.option(fc.oneof(fc.string({ unit: 'grapheme' }), fc.uint8Array({ maxLength: 40 })), { nil: null }), {
  maxLength: 8,
});
const toBuffers = (vs: readonly (string | Uint8Array | null)[]) => vs.map((v) => (v === null ? null : Buffer.from(v)));

describe('rowValues and columnNames: what the recording reads of a result', () => {
  it('read a DataRow as the codec does, each value as text (or hex when not UTF-8), NULL as null', () => {
    fc.assert(
      fc.property(values, (vs) => {
        const row = body({ type: 'DataRow', values: toBuffers(vs) });
        const decoded = decodeBackend({ type: 0x44, body: row, raw: row });
        assert.equal(decoded.type, 'DataRow');
        assert.deepEqual(rowValues(row), (decoded as { values: (Buffer | null)[] }).values.map(asRecorded));
      }),
    );
    assert.deepEqual(rowValues(body({ type: 'DataRow', values: [Buffer.from('café'), null, Buffer.from([0xff, 0xfe])] })), [
      'café',
      null,
      '\\xfffe',
    ]);
  });

  it('read the column names of a RowDescription', () => {
    const field = (name: string) => ({ name, tableOid: 0, columnAttr: 0, typeOid: 25, typeSize: -1, typeModifier: -1, format: 0 as const });
    fc.assert(
      fc.property(
        fc.array(
          fc.string({ unit: 'grapheme' }).filter((n) => !n.includes('\0')),
          { maxLength: 6 },
        ),
        (names) => {
          assert.deepEqual(columnNames(body({ type: 'RowDescription', fields: names.map(field) })), names);
        },
      ),
    );
  });

  it('give undefined for a message cut short or with bytes after its end, and never throw on any bytes', () => {
    fc.assert(
      fc.property(values, fc.nat(), (vs, cut) => {
        const row = body({ type: 'DataRow', values: toBuffers(vs) });
        if (vs.length > 0) assert.equal(rowValues(row.subarray(0, 2 + (cut % (row.length - 2)))), undefined);
        assert.equal(rowValues(Buffer.concat([row, Buffer.from([0])])), undefined);
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const b = Buffer.from(bytes);
        const read = rowValues(b);
        assert.ok(read === undefined || Array.isArray(read));
        const names = columnNames(b);
        assert.ok(names === undefined || Array.isArray(names));
      }),
    );
  });
});
