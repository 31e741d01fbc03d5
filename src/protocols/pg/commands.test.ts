import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { functionCallCommand, prepareCommand, queryCommand, rowsOfTag } from './commands.ts';

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
