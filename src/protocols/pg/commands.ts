/**
 * PostgreSQL messages that carry a statement, as protocol-neutral `Command`s for the guard and
 * the recorder. Every other message either carries no statement (Sync, Flush, Describe, Close)
 * or refers to one that was already decided on (Bind and Execute use a prepared statement).
 * And what the recorder reads of the answers: row counts, column names, the text of row values.
 */

import type { Command } from '../../core/index.ts';
import { valueText } from '../../recording/result-sample.ts';

export function queryCommand(sql: string): Command {
  return { kind: 'query', text: sql };
}

export function prepareCommand(name: string, sql: string): Command {
  return { kind: 'prepare', text: sql, statementName: name };
}

export function functionCallCommand(functionOid: number, argCount: number): Command {
  return { kind: 'function-call', text: `fast-path call of function ${functionOid} with ${argCount} argument(s)` };
}

/** Row count of a CommandComplete tag such as `SELECT 5`, `INSERT 0 3`, `COPY 10`; undefined when it has none. */
export function rowsOfTag(tag: string): number | undefined {
  const last = tag.lastIndexOf(' ');
  if (last < 0) return undefined;
  const rows = Number(tag.slice(last + 1));
  return Number.isSafeInteger(rows) ? rows : undefined;
}

/**
 * The text of the values of a DataRow body (int16 count, then each value: int32 length, -1 for
 * NULL, and its bytes), for the recording; undefined when malformed. Read here, not by the codec
 * (wire/pg/decode.ts): the recording wants text, not a Buffer per value.
 */
export function rowValues(row: Buffer): (string | null)[] | undefined {
  if (row.length < 2) return undefined;
  const count = row.readUInt16BE(0);
  const values: (string | null)[] = [];
  let off = 2;
  for (let i = 0; i < count; i++) {
    if (off + 4 > row.length) return undefined;
    const length = row.readInt32BE(off);
    off += 4;
    if (length === -1) values.push(null);
    else if (length < 0 || off + length > row.length) return undefined;
    else values.push(valueText(row, off, (off += length)));
  }
  return off === row.length ? values : undefined;
}

/**
 * The column names of a RowDescription body (int16 count, then each field: its name, NUL, and 18
 * bytes), for the recording; undefined when malformed. The masker reads the types (pg/mask.ts).
 */
export function columnNames(body: Buffer): string[] | undefined {
  if (body.length < 2) return undefined;
  const count = body.readUInt16BE(0);
  const names: string[] = [];
  let off = 2;
  for (let i = 0; i < count; i++) {
    const nameEnd = body.indexOf(0, off);
    if (nameEnd < 0 || nameEnd + 19 > body.length) return undefined;
    names.push(valueText(body, off, nameEnd));
    off = nameEnd + 19;
  }
  return off === body.length ? names : undefined;
}
