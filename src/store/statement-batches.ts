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
 * A statement as a batch holds it: its JSON, and what the batch counts beside it. The recorder
 * encodes each statement as it is handed one (recording/recorder.ts), while what it holds is at
 * hand, and keeps that until it writes them (not the statement's objects, its result's included);
 * a batch is then these JSON texts joined.
 */
export interface EncodedStatement {
  readonly sessionId: string;
  readonly seq: number;
  readonly startedAt: number;
  readonly outcome: StatementOutcome;
  /** JSON: the statement as a `BatchedStatement`. */
  readonly json: string;
}

export function encodeStatement(r: NewStatement): EncodedStatement {
  const tuple: BatchedStatement = [
    r.seq,
    r.text,
    r.startedAt,
    r.durationMs,
    r.rows ?? null,
    r.outcome,
    r.errorCode ?? null,
    r.errorMessage ?? null,
    r.result ?? null,
  ];
  return { sessionId: r.sessionId, seq: r.seq, startedAt: r.startedAt, outcome: r.outcome, json: JSON.stringify(tuple) };
}

/** The statements (encoded or not) in batches, one per session, in the order the sessions first appear. */
export function batchStatements(rows: readonly (NewStatement | EncodedStatement)[]): StatementBatch[] {
  const bySession = new Map<string, EncodedStatement[]>();
  for (const row of rows) {
    const encoded = 'json' in row ? row : encodeStatement(row);
    const list = bySession.get(row.sessionId);
    if (list === undefined) bySession.set(row.sessionId, [encoded]);
    else list.push(encoded);
  }
  const batches: StatementBatch[] = [];
  for (const [sessionId, list] of bySession) {
    // The recorder hands them in the order they finished, which is nearly always seq order.
    for (let i = 1; i < list.length; i++) {
      if (list[i]!.seq <= list[i - 1]!.seq) {
        list.sort((a, b) => a.seq - b.seq);
        break;
      }
    }
    let firstAt = Infinity;
    let lastAt = -Infinity;
    let refused = 0;
    let failed = 0;
    let body = '[';
    for (let i = 0; i < list.length; i++) {
      const r = list[i]!;
      if (i > 0 && r.seq === list[i - 1]!.seq) throw seqTaken(sessionId, r.seq);
      if (r.startedAt < firstAt) firstAt = r.startedAt;
      if (r.startedAt > lastAt) lastAt = r.startedAt;
      if (r.outcome === 'denied') refused++;
      else if (r.outcome === 'error') failed++;
      body += i === 0 ? r.json : `,${r.json}`;
    }
    body += ']';
    batches.push({
      sessionId,
      firstSeq: list[0]!.seq,
      lastSeq: list[list.length - 1]!.seq,
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
