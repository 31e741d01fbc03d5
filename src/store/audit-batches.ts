/**
 * How the audit log is stored: in batches, one row for each run of consecutive records a writer
 * appends in one transaction (`audit_batches`), at most `AUDIT_BATCH_RECORDS` to a row, the records
 * as one JSON text. A gateway that puts thousands of statements a second on record costs the store a
 * few rows a second instead of two B-tree inserts per record (the record and its time index), which
 * was most of what the store's writer spent per record.
 *
 * Guarantees:
 * - A batch holds consecutive records in seq order; what writers append never overlaps and leaves
 *   no gap (verification finds, and names, whatever else a store holds: audit/chain.ts).
 * - Beside the JSON: the first and last seq, the earliest and latest time (so a reader opens only
 *   the batches a time range touches) and the last record's hash (the head, for the next append).
 * - A record reads back as it was appended: its details are kept as the canonical JSON the hash covers.
 * - An append's records are chained as audit/chain.ts defines it (`recordHash`), in the same pass
 *   that writes their JSON (`chainInBatches`); the tests hold the two to each other.
 * - Pure: no I/O.
 */

import { canonicalJson, GENESIS_HASH, hashJson, numberJson, type ChainedRecord } from '../audit/chain.ts';
import type { Insertable } from 'kysely';
import type { AuditBatchesTable } from './schema.ts';
import type { AuditRecord, NewAuditEvent } from './store.ts';

/** The most records one row holds: a reader opens a whole row to read one of them. */
export const AUDIT_BATCH_RECORDS = 256;

export interface AuditBatch {
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** The earliest and the latest time of its records. */
  readonly firstAt: number;
  readonly lastAt: number;
  /** The hash of its last record (null for a record written before the chain). */
  readonly lastHash: string | null;
  /**
   * JSON: the records in seq order, as `BatchedRecord` tuples, or (`chainInBatches`) the first as one
   * and the others as `ChainedRecordTuple`s.
   */
  readonly body: string;
}

/** The batch as its row in `audit_batches`. */
export function batchRow(b: AuditBatch): Insertable<AuditBatchesTable> {
  return { first_seq: b.firstSeq, last_seq: b.lastSeq, first_at: b.firstAt, last_at: b.lastAt, last_hash: b.lastHash, body: b.body };
}

/** What a record in a batch's JSON begins with: its fields in this order, the details as an object. */
type RecordTuple = [
  seq: number,
  at: number,
  actor: string,
  action: string,
  subject: string,
  outcome: AuditRecord['outcome'],
  details: Record<string, unknown>,
];

/** A record in a batch's JSON, whole. */
type BatchedRecord = [...RecordTuple, prevHash: string | null, hash: string | null];

/**
 * A record after the first of a batch written by `chainInBatches`: without its prevHash, which is
 * the hash of the record before it in the batch (a fifth of a record's JSON, written twice).
 * Reading puts it back (`unbatchAudits`); the hash covers it as before.
 */
type ChainedRecordTuple = [...RecordTuple, hash: string];

/** A record's fields as a store holds them: the details as JSON text. */
export type StoredFields = Omit<ChainedRecord, 'details'> & {
  readonly detailsJson: string;
  readonly prevHash: string | null;
  readonly hash: string | null;
};

/**
 * The details of a statement's record (`command.allowed`), which a gateway appends for every
 * statement it sends to a target: `auditFields` hands them over as their three fields, and their
 * canonical JSON is written where the batch is (`chainInBatches`: on the store's writer thread,
 * when it has one), not on the thread that serves the sessions. Any other reader sees a plain
 * record of these three keys, in canonical order.
 */
export class StatementDetails {
  readonly [key: string]: unknown;
  readonly connection: string;
  readonly seq: number;
  readonly statement: string;

  constructor(connection: string, seq: number, statement: string) {
    this.connection = connection;
    this.seq = seq;
    this.statement = statement;
  }
}

/**
 * Events as a writer hands them over: one flat list, `AUDIT_FIELDS` to an event (at, actor, action,
 * subject, outcome, then the details as canonical JSON, 0 and null; or, for `StatementDetails`,
 * their connection, seq and statement), which costs less to build, to send to the store's writer
 * thread and to read than a list of objects would.
 */
export type AuditFields = readonly (string | number | null)[];

export const AUDIT_FIELDS = 8;

/** The events as `AuditFields`, their details encoded once (audit/chain.ts `canonicalJson`), a statement's where it is written. */
export function auditFields(events: readonly NewAuditEvent[]): (string | number | null)[] {
  const fields: (string | number | null)[] = [];
  for (const e of events) {
    const d = e.details;
    if (d instanceof StatementDetails) fields.push(e.at, e.actor, e.action, e.subject, e.outcome, d.connection, d.seq, d.statement);
    else fields.push(e.at, e.actor, e.action, e.subject, e.outcome, canonicalJson(d), 0, null);
  }
  return fields;
}

/** The canonical JSON (audit/chain.ts) of `StatementDetails`, its connection's given as JSON: its keys are in order and flat. */
export function statementDetailsJson(connectionJson: string, seq: number, statement: string): string {
  return `{"connection":${connectionJson},"seq":${numberJson(seq)},"statement":${JSON.stringify(statement)}}`;
}

/**
 * The head of the log, for an append (`chainInBatches`, with `auditHead`): the last record's seq and
 * hash, read under the log's write lock. One text for both stores (SQLite prepares it once).
 */
export const AUDIT_HEAD_SQL = 'select last_seq, last_hash from audit_batches order by first_seq desc limit 1';

/** A row of AUDIT_HEAD_SQL (a bigint may come as a number, a bigint or a string); undefined for an empty log. */
export interface AuditHeadRow {
  readonly last_seq: number | bigint | string;
  readonly last_hash: string | null;
}

/** The head an append chains to, from the row AUDIT_HEAD_SQL read (a batch from before the chain has no hash). */
export function auditHead(row: AuditHeadRow | undefined): { seq: number; hash: string } | undefined {
  return row && { seq: Number(row.last_seq), hash: row.last_hash ?? GENESIS_HASH };
}

/** What appending events writes: their batches, and the records as reading them back gives them (when asked for). */
export interface Appended {
  readonly batches: AuditBatch[];
  readonly records: AuditRecord[];
}

/**
 * Numbers the events after `head` (the last record; undefined for an empty log), chains each to
 * the one before (audit/chain.ts) and puts them in batches of at most `AUDIT_BATCH_RECORDS`: what
 * a store writes, in one transaction, holding the log's write lock. One pass: each field is
 * written as JSON once, for the hash and for the batch.
 */
export function chainInBatches(
  head: { readonly seq: number; readonly hash: string } | undefined,
  fields: AuditFields,
  records: boolean,
): Appended {
  const batches: AuditBatch[] = [];
  const written: AuditRecord[] = [];
  // Most events of a transaction share their actor, action, subject and outcome.
  const actors = lastJson();
  const actions = lastJson();
  const subjects = lastJson();
  const outcomes = lastJson();
  const connections = lastJson();
  let seq = head?.seq ?? 0;
  let prevHash = head?.hash ?? GENESIS_HASH;
  let prevJson = JSON.stringify(prevHash);
  const step = AUDIT_FIELDS * AUDIT_BATCH_RECORDS;
  for (let start = 0; start < fields.length; start += step) {
    const end = Math.min(start + step, fields.length);
    let firstAt = Infinity;
    let lastAt = -Infinity;
    let body = '[';
    for (let i = start; i < end; i += AUDIT_FIELDS) {
      const at = fields[i] as number;
      const actor = fields[i + 1] as string;
      const action = fields[i + 2] as string;
      const subject = fields[i + 3] as string;
      const outcome = fields[i + 4] as AuditRecord['outcome'];
      const statement = fields[i + 7] as string | null;
      const details =
        statement === null
          ? (fields[i + 5] as string)
          : statementDetailsJson(connections(fields[i + 5] as string), fields[i + 6] as number, statement);
      if (at < firstAt) firstAt = at;
      if (at > lastAt) lastAt = at;
      const seqJson = String(++seq);
      const atJson = numberJson(at);
      const actorJson = actors(actor);
      const actionJson = actions(action);
      const subjectJson = subjects(subject);
      const outcomeJson = outcomes(outcome);
      const hash = hashJson(seqJson, atJson, actorJson, actionJson, subjectJson, outcomeJson, details, prevJson);
      const hashJsonText = `"${hash}"`; // hex: nothing to escape
      // The first a `BatchedRecord`, the others `ChainedRecordTuple`s; the details go in as the
      // canonical JSON they are, not parsed and written again.
      body += `${i === start ? '[' : ',['}${seqJson},${atJson},${actorJson},${actionJson},${subjectJson},${outcomeJson},${details},${i === start ? `${prevJson},` : ''}${hashJsonText}]`;
      if (records) {
        written.push({ seq, at, actor, action, subject, outcome, details: JSON.parse(details) as Record<string, unknown>, prevHash, hash });
      }
      prevHash = hash;
      prevJson = hashJsonText;
    }
    batches.push({ firstSeq: seq - (end - start) / AUDIT_FIELDS + 1, lastSeq: seq, firstAt, lastAt, lastHash: prevHash, body: `${body}]` });
  }
  return { batches, records: written };
}

/** JSON.stringify of a string, remembering the last one. */
function lastJson(): (value: string) => string {
  let last: string | undefined;
  let json = '';
  return (value) => {
    if (value !== last) {
      last = value;
      json = JSON.stringify(value);
    }
    return json;
  };
}

/** Consecutive records, in seq order, in batches of at most `AUDIT_BATCH_RECORDS`. */
export function batchFields(records: readonly StoredFields[]): AuditBatch[] {
  const batches: AuditBatch[] = [];
  for (let start = 0; start < records.length; start += AUDIT_BATCH_RECORDS) {
    const end = Math.min(start + AUDIT_BATCH_RECORDS, records.length);
    let firstAt = Infinity;
    let lastAt = -Infinity;
    let body = '[';
    for (let i = start; i < end; i++) {
      const r = records[i]!;
      if (r.at < firstAt) firstAt = r.at;
      if (r.at > lastAt) lastAt = r.at;
      // One JSON.stringify of the plain fields, its closing bracket cut off; the details go in as
      // the canonical JSON they are, not parsed and written again.
      const fields = JSON.stringify([r.seq, r.at, r.actor, r.action, r.subject, r.outcome]);
      body += `${i === start ? '' : ','}${fields.slice(0, -1)},${r.detailsJson},${JSON.stringify([r.prevHash, r.hash]).slice(1)}`;
    }
    const last = records[end - 1]!;
    batches.push({ firstSeq: records[start]!.seq, lastSeq: last.seq, firstAt, lastAt, lastHash: last.hash, body: `${body}]` });
  }
  return batches;
}

/**
 * The records a batch's JSON holds, each `ChainedRecordTuple` given back the hash of the record
 * before it as its prevHash; throws when it holds no list of records, or begins with a
 * `ChainedRecordTuple` (a store edited by hand).
 */
export function unbatchAudits(firstSeq: number, body: string): AuditRecord[] {
  let tuples: unknown;
  try {
    tuples = JSON.parse(body);
  } catch (error) {
    throw new Error(`the batch of audit records from record ${firstSeq} on is not readable JSON`, { cause: error });
  }
  if (!Array.isArray(tuples) || !tuples.every(Array.isArray))
    throw new Error(`the batch of audit records from record ${firstSeq} on does not hold a list of records`);
  if (tuples[0]?.length === 8)
    throw new Error(`the batch of audit records from record ${firstSeq} on does not say what its first record follows`);
  const records: AuditRecord[] = [];
  for (const tuple of tuples as (BatchedRecord | ChainedRecordTuple)[]) {
    const [seq, at, actor, action, subject, outcome, details] = tuple;
    const chained = tuple.length === 8;
    const prevHash = chained ? records[records.length - 1]!.hash : tuple[7];
    records.push({ seq, at, actor, action, subject, outcome, details, prevHash, hash: chained ? tuple[7] : tuple[8] });
  }
  return records;
}
