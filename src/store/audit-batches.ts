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
 * - Pure: no I/O.
 */

import type { Chained, ChainedRecord, EncodedEvent } from '../audit/chain.ts';
import type { Insertable } from 'kysely';
import type { AuditBatchesTable } from './schema.ts';
import type { AuditRecord } from './store.ts';

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
  /** JSON: the records as `BatchedRecord` tuples, in seq order. */
  readonly body: string;
}

/** The batch as its row in `audit_batches`. */
export function batchRow(b: AuditBatch): Insertable<AuditBatchesTable> {
  return { first_seq: b.firstSeq, last_seq: b.lastSeq, first_at: b.firstAt, last_at: b.lastAt, last_hash: b.lastHash, body: b.body };
}

/** A record in a batch's JSON: its fields in this order, the details as an object. */
type BatchedRecord = [
  seq: number,
  at: number,
  actor: string,
  action: string,
  subject: string,
  outcome: AuditRecord['outcome'],
  details: Record<string, unknown>,
  prevHash: string | null,
  hash: string | null,
];

/** A record's fields as a store holds them: the details as JSON text. */
export type StoredFields = Omit<ChainedRecord, 'details'> & {
  readonly detailsJson: string;
  readonly prevHash: string | null;
  readonly hash: string | null;
};

/** Records numbered and chained by `chainAfter`, in batches of at most `AUDIT_BATCH_RECORDS`. */
export function batchAudits(chained: readonly Chained<EncodedEvent>[]): AuditBatch[] {
  return batchFields(
    chained.map(({ event: e, seq, prevHash, hash }) => ({
      seq,
      at: e.at,
      actor: e.actor,
      action: e.action,
      subject: e.subject,
      outcome: e.outcome,
      detailsJson: e.detailsJson,
      prevHash,
      hash,
    })),
  );
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

/** The records a batch's JSON holds; throws when it holds no list of records (a store edited by hand). */
export function unbatchAudits(firstSeq: number, body: string): AuditRecord[] {
  let tuples: unknown;
  try {
    tuples = JSON.parse(body);
  } catch (error) {
    throw new Error(`the batch of audit records from record ${firstSeq} on is not readable JSON`, { cause: error });
  }
  if (!Array.isArray(tuples) || !tuples.every(Array.isArray))
    throw new Error(`the batch of audit records from record ${firstSeq} on does not hold a list of records`);
  return (tuples as BatchedRecord[]).map(([seq, at, actor, action, subject, outcome, details, prevHash, hash]) => ({
    seq,
    at,
    actor,
    action,
    subject,
    outcome,
    details,
    prevHash,
    hash,
  }));
}
