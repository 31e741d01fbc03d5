/**
 * How recorded statements are stored: in batches, one row per session for each write of the
 * recorder (`statement_batches`), its statements as one JSON text. A session that runs thousands
 * of statements a second costs the store a few rows a second instead of one B-tree insert per
 * statement, which is what the store's writer spent most of its time on.
 *
 * Guarantees:
 * - A batch holds one session's statements in seq order, each seq once; the batches of a session
 *   never overlap (`firstSeq`..`lastSeq`): a write that would record a seq again is refused whole
 *   (`SEQ_TAKEN`, the store's conflict error).
 * - The counts a reader aggregates without opening the JSON are kept beside it: statements,
 *   refused (`denied`), failed (`error`), the first and last start, and the bytes.
 * - Pure: no I/O.
 */

import type { RecordedResult } from '../recording/result-sample.ts';
import type { NewStatement, StatementOutcome, StatementRecord } from './store.ts';

/**
 * What a recording's size counts for each batch besides the UTF-8 bytes of its JSON (which hold
 * every field of its statements, results included): its row's ids, seqs, times and counts.
 */
export const BATCH_ROW_BYTES = 64;

/** Thrown (by `code`) when a batch would record a seq its session already has. */
export const SEQ_TAKEN = 'DRAWBRIDGE_STATEMENT_SEQ_TAKEN';

export interface StatementBatch {
  readonly sessionId: string;
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** The earliest and the latest start of its statements. */
  readonly firstAt: number;
  readonly lastAt: number;
  readonly statements: number;
  readonly refused: number;
  readonly failed: number;
  /** `Buffer.byteLength(body)` plus `BATCH_ROW_BYTES`. */
  readonly bytes: number;
  /** JSON: the statements as `BatchedStatement` tuples, in seq order. */
  readonly body: string;
}

/** A statement in a batch's JSON: its fields in this order, absent ones null. */
type BatchedStatement = [
  seq: number,
  text: string,
  startedAt: number,
  durationMs: number,
  rows: number | null,
  outcome: StatementOutcome,
  errorCode: string | null,
  errorMessage: string | null,
  result: RecordedResult | null,
];

/**
 * Statements as a writer hands them over: one flat list, `STATEMENT_FIELDS` to a statement (its
 * session id, then its `BatchedStatement` fields in order, absent ones null, the result as its
 * JSON). The recorder adds each statement as it ends (`pushStatement`: no object, and no JSON but
 * its result's, on the gateway's thread) and the batches are made where they are written
 * (`batchStatements`: on the store's writer thread, when it has one).
 */
export type StatementFields = (string | number | null)[];

export const STATEMENT_FIELDS = 10;

export function pushStatement(fields: StatementFields, r: NewStatement): void {
  fields.push(
    r.sessionId,
    r.seq,
    r.text,
    r.startedAt,
    r.durationMs,
    r.rows ?? null,
    r.outcome,
    r.errorCode ?? null,
    r.errorMessage ?? null,
    r.result === undefined ? null : JSON.stringify(r.result),
  );
}

/** The statements as `StatementFields`. */
export function statementFields(rows: readonly NewStatement[]): StatementFields {
  const fields: StatementFields = [];
  for (const r of rows) pushStatement(fields, r);
  return fields;
}

/** The statements in batches, one per session, in the order the sessions first appear. */
export function batchStatements(fields: StatementFields): StatementBatch[] {
  // Where each session's statements start in `fields`.
  const bySession = new Map<string, number[]>();
  for (let i = 0; i < fields.length; i += STATEMENT_FIELDS) {
    const sessionId = fields[i] as string;
    const list = bySession.get(sessionId);
    if (list === undefined) bySession.set(sessionId, [i]);
    else list.push(i);
  }
  const seq = (i: number) => fields[i + 1] as number;
  const batches: StatementBatch[] = [];
  for (const [sessionId, list] of bySession) {
    // The recorder hands them in the order they finished, which is nearly always seq order.
    for (let k = 1; k < list.length; k++) {
      if (seq(list[k]!) <= seq(list[k - 1]!)) {
        list.sort((a, b) => seq(a) - seq(b));
        break;
      }
    }
    let firstAt = Infinity;
    let lastAt = -Infinity;
    let refused = 0;
    let failed = 0;
    let body = '[';
    for (let k = 0; k < list.length; k++) {
      const i = list[k]!;
      if (k > 0 && seq(i) === seq(list[k - 1]!)) throw seqTaken(sessionId, seq(i));
      const startedAt = fields[i + 3] as number;
      const outcome = fields[i + 6] as StatementOutcome;
      if (startedAt < firstAt) firstAt = startedAt;
      if (startedAt > lastAt) lastAt = startedAt;
      if (outcome === 'denied') refused++;
      else if (outcome === 'error') failed++;
      // A `BatchedStatement`: JSON.stringify of its fields, the result put in as the JSON it is.
      const head = JSON.stringify([seq(i), fields[i + 2], startedAt, fields[i + 4], fields[i + 5], outcome, fields[i + 7], fields[i + 8]]);
      body += `${k === 0 ? '' : ','}${head.slice(0, -1)},${fields[i + 9] ?? 'null'}]`;
    }
    body += ']';
    batches.push({
      sessionId,
      firstSeq: seq(list[0]!),
      lastSeq: seq(list[list.length - 1]!),
      firstAt,
      lastAt,
      statements: list.length,
      refused,
      failed,
      bytes: Buffer.byteLength(body) + BATCH_ROW_BYTES,
      body,
    });
  }
  return batches;
}

/** The statements a batch's JSON holds; throws when it holds no list (a store edited by hand). */
export function unbatchStatements(sessionId: string, body: string): StatementRecord[] {
  const tuples: unknown = JSON.parse(body);
  if (!Array.isArray(tuples)) throw new Error(`a statement batch of session ${sessionId} does not hold a list of statements`);
  return (tuples as BatchedStatement[]).map(([seq, text, startedAt, durationMs, rows, outcome, errorCode, errorMessage, result]) => ({
    sessionId,
    seq,
    text,
    startedAt,
    durationMs,
    rows: rows ?? undefined,
    outcome,
    errorCode: errorCode ?? undefined,
    errorMessage: errorMessage ?? undefined,
    result: result ?? undefined,
  }));
}

/** The error a write gives for seqs its session already has (the store reads it as a conflict). */
export function seqTaken(sessionId: string, from: number, to = from): Error {
  const seqs = from === to ? `statement ${from}` : `a statement among ${from}..${to}`;
  return Object.assign(new Error(`session ${sessionId} already has ${seqs}`), { code: SEQ_TAKEN });
}
