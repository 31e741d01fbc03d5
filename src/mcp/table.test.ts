import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { renderTable } from './table.ts';

const done = (columns: string[], rows: (string | null)[][], extra: { rowCount?: number | null; truncated?: boolean; command?: string } = {}) => ({
  status: 'done' as const,
  command: extra.command ?? 'SELECT',
  columns,
  rows,
  rowCount: extra.rowCount === undefined ? rows.length : extra.rowCount,
  truncated: extra.truncated ?? false,
});

describe('renderTable', () => {
  it('writes a header, one line per row, NULL, and the count', () => {
    assert.equal(renderTable(done(['id', 'email'], [['1', 'a***@example.com'], ['2', null]])), 'id | email\n1 | a***@example.com\n2 | NULL\n(2 rows)');
    assert.equal(renderTable(done(['n'], [['1']])), 'n\n1\n(1 row)');
    assert.equal(renderTable(done(['n'], [])), 'n\n(0 rows)');
  });

  it('a command without rows is its tag and count', () => {
    assert.equal(renderTable(done([], [], { command: 'UPDATE', rowCount: 3 })), 'UPDATE 3');
    assert.equal(renderTable(done([], [], { command: '', rowCount: null })), 'OK');
  });

  it('keeps one row on one line: line breaks, pipes and backslashes are escaped', () => {
    assert.equal(renderTable(done(['t'], [['a|b\nc\\d\r\ne']])), 't\na\\|b\\nc\\\\d\\ne\n(1 row)');
  });

  it('cuts a long value and says how long it was', () => {
    const line = renderTable(done(['t'], [['x'.repeat(500)]])).split('\n')[1]!;
    assert.equal(line, `${'x'.repeat(200)}…(500 chars)`);
  });

  it('says when there are more rows than were read', () => {
    assert.match(renderTable(done(['n'], [['1'], ['2']], { rowCount: null, truncated: true })), /\n\(2 rows shown; there are more — narrow the query or raise max_rows\)$/);
  });

  it('never exceeds 64 KiB, never splits a row, and says what it left out (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.option(fc.string({ maxLength: 300 })), { minLength: 2, maxLength: 2 }), { maxLength: 600 }), (rows) => {
        const text = renderTable(done(['a', 'b'], rows));
        const lines = text.split('\n');
        assert.ok(text.length <= 64 * 1024 + 200);
        const shown = lines.length - 2;
        assert.ok(shown <= rows.length);
        for (const line of lines.slice(1, -1)) assert.equal(line.split(/(?<!\\)\|/).length, 2, line);
        if (shown < rows.length) assert.match(lines.at(-1)!, /rows shown; there are more/);
        else assert.equal(lines.at(-1), `(${rows.length} row${rows.length === 1 ? '' : 's'})`);
      }),
      { numRuns: 50 },
    );
  });
});
