/**
 * Query results as an agent reads them best: a compact text table (`|` between columns, one
 * line per row), each value cut at MAX_CELL characters and the whole at MAX_TEXT, saying what
 * was left out. NULL is written `NULL`; a value's line breaks and `|` are escaped, so that one
 * row is one line.
 */

import type { QueryOutcome } from './queries.ts';

const MAX_CELL = 200;
const MAX_TEXT = 64 * 1024;

export function renderTable(result: Extract<QueryOutcome, { status: 'done' }>): string {
  const count = result.rowCount ?? result.rows.length;
  if (result.columns.length === 0) return `${result.command || 'OK'}${result.rowCount === null ? '' : ` ${count}`}`;
  const lines = [result.columns.map(cell).join(' | ')];
  let size = lines[0]!.length;
  let shown = 0;
  for (const row of result.rows) {
    const line = row.map((v) => (v === null ? 'NULL' : cell(v))).join(' | ');
    if (size + line.length + 1 > MAX_TEXT) break;
    lines.push(line);
    size += line.length + 1;
    shown++;
  }
  const more = result.truncated || shown < result.rows.length;
  const footer = more
    ? `(${shown} rows shown; there are more — narrow the query or raise max_rows)`
    : `(${shown} row${shown === 1 ? '' : 's'})`;
  return `${lines.join('\n')}\n${footer}`;
}

function cell(value: string): string {
  const escaped = value.replace(/\\/g, '\\\\').replace(/\r?\n/g, '\\n').replace(/\|/g, '\\|');
  return escaped.length > MAX_CELL ? `${escaped.slice(0, MAX_CELL)}…(${escaped.length} chars)` : escaped;
}
