/**
 * Verification of the whole audit log: every record's hash and link in sequence order, then every
 * signed checkpoint against the trusted keys and the records it names. What `drawbridge audit
 * verify` runs, and the API.
 *
 * Guarantees: reads the log in pages (memory does not grow with its length); names the first
 * record where the chain breaks, or the first checkpoint that does not hold; trusts only the keys
 * it is given (never a key found in the store).
 */

import type { KeyObject } from 'node:crypto';
import type { AuditQuery, AuditRecord, Store } from '../store/index.ts';
import { ChainVerifier, checkpointProblem, type ChainBreak } from './chain.ts';

const PAGE = 1000;

export interface AuditVerification {
  readonly ok: boolean;
  /** Records read (up to and including the one that broke the chain). */
  readonly records: number;
  /** The last record that verified. */
  readonly head: { readonly seq: number; readonly hash: string };
  readonly checkpoints: number;
  /** The newest checkpoint that holds: records up to it cannot have been cut off. */
  readonly lastCheckpoint: { readonly seq: number; readonly at: number } | undefined;
  /** The first problem, naming the record. */
  readonly problem:
    (ChainBreak & { readonly kind: 'chain' }) | { readonly kind: 'checkpoint'; readonly seq: number; readonly message: string } | undefined;
}

/** Every record the query matches, oldest first, read a page at a time. */
export async function* auditRecords(store: Store, query: Omit<AuditQuery, 'afterSeq' | 'limit'> = {}): AsyncGenerator<AuditRecord> {
  for (let after = 0; ;) {
    const page = await store.listAudit({ ...query, afterSeq: after, limit: PAGE });
    yield* page;
    if (page.length < PAGE) return;
    after = page.at(-1)!.seq;
  }
}

export async function verifyAuditLog(store: Store, trusted: ReadonlyMap<string, KeyObject>): Promise<AuditVerification> {
  const checkpoints = await store.listAuditCheckpoints();
  const wanted = new Set(checkpoints.map((c) => c.seq));
  const hashes = new Map<number, string>();
  const chain = new ChainVerifier();
  for await (const record of auditRecords(store)) {
    if (!chain.push(record)) break;
    if (wanted.has(record.seq)) hashes.set(record.seq, record.hash!);
  }
  const base = { records: chain.records, head: chain.head, checkpoints: checkpoints.length };
  if (chain.broken) return { ...base, ok: false, lastCheckpoint: undefined, problem: { kind: 'chain', ...chain.broken } };
  let lastCheckpoint: AuditVerification['lastCheckpoint'];
  for (const c of checkpoints) {
    const message = checkpointProblem(c, trusted, (seq) => hashes.get(seq), chain.head.seq);
    if (message !== undefined) return { ...base, ok: false, lastCheckpoint, problem: { kind: 'checkpoint', seq: c.seq, message } };
    lastCheckpoint = { seq: c.seq, at: c.at };
  }
  return { ...base, ok: true, lastCheckpoint, problem: undefined };
}
