/**
 * PostgreSQL messages that carry a statement, as protocol-neutral `Command`s for the guard and
 * the recorder. Every other message either carries no statement (Sync, Flush, Describe, Close)
 * or refers to one that was already decided on (Bind and Execute use a prepared statement).
 */

import type { Command } from '../../core/index.ts';

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
