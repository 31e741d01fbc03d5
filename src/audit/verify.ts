/**
 * Verification of the whole audit log: every record's hash and link in sequence order, then every
 * signed checkpoint against the trusted keys and the records it names. What `drawbridge audit
 * verify` runs, and the API.
 *
 * Guarantees: reads the log as stored, batch by batch (memory does not grow with its length), every
 * record a store holds and none left out (`Store.listAuditBatches`); names the first record where
 * the chain breaks, or the first checkpoint that does not hold; trusts only the keys it is given
 * (never a key found in the store). With `threads` above one, parts of the log are verified side by
 * side, each on a thread with a connection of its own, and the report is the one a single pass over
 * the whole gives: a part takes the record before it as verified, and the parts are joined in order
 * (audit/chain.ts `ChainVerifier.adopt`), where that record and the part's first are checked as one
 * pass checks them.
 */

import type { KeyObject } from 'node:crypto';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { openStore, unbatchAudits, type AuditBatchQuery, type AuditQuery, type AuditRecord, type Store } from '../store/index.ts';
import { ChainVerifier, checkpointProblem, type ChainBreak, type ChainProgress } from './chain.ts';

const PAGE = 1000;

/** Batches a part's verification reads at a time. */
const PAGE_BATCHES = 64;

/**
 * A log shorter than this is verified in one pass: starting the parts' threads, each opening the
 * store, takes 0.2 to 0.3 s, about what two parts save over half a million records on two cores.
 */
export const PARALLEL_FROM_RECORDS = 500_000;

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

export interface VerifyOptions {
  /**
   * How many parts to verify side by side (default 1: one pass on this thread). More needs `url`:
   * each part's thread opens the store itself. A log shorter than PARALLEL_FROM_RECORDS is
   * verified in one pass whatever this says.
   */
  readonly threads?: number;
  /** The store's URL (`store:` of the config), for the threads. */
  readonly url?: string;
  /** Whether parts run on threads (default) or one after the other here: the tests join parts both ways. */
  readonly partsOnThreads?: boolean;
  /**
   * One pass too on a thread of its own (needs `url`), not on the caller's: for the gateway, whose
   * thread serves every session and would otherwise stop for each page of the log it reads.
   */
  readonly offThread?: boolean;
  /** The least records a log needs to be split (default PARALLEL_FROM_RECORDS). */
  readonly splitFrom?: number;
}

/** Pages `auditRecords` reads between turns of the event loop. */
const PAGES_A_TURN = 4;

/**
 * Every record the query matches, oldest first, read a page at a time, with a turn of the event
 * loop every PAGES_A_TURN pages: a SQLite store answers at once, and a gateway exporting its log
 * serves its sessions meanwhile.
 */
export async function* auditRecords(store: Store, query: Omit<AuditQuery, 'afterSeq' | 'limit'> = {}): AsyncGenerator<AuditRecord> {
  for (let after = 0, pages = 1; ; pages++) {
    const page = await store.listAudit({ ...query, afterSeq: after, limit: PAGE });
    yield* page;
    if (page.length < PAGE) return;
    after = page.at(-1)!.seq;
    if (pages % PAGES_A_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
  }
}

export async function verifyAuditLog(
  store: Store,
  trusted: ReadonlyMap<string, KeyObject>,
  options: VerifyOptions = {},
): Promise<AuditVerification> {
  const checkpoints = await store.listAuditCheckpoints();
  const wanted = checkpoints.map((c) => c.seq);
  const head = await store.auditHead();
  const threads = Math.max(1, Math.floor(options.threads ?? 1));
  const split = threads > 1 && head !== undefined && head.seq >= (options.splitFrom ?? PARALLEL_FROM_RECORDS);
  const ranges = split ? parts(head.seq, threads) : [{}];
  const url = options.url;
  const onThreads = url !== undefined && head !== undefined && (split ? options.partsOnThreads !== false : options.offThread === true);
  const results = await Promise.all(
    ranges.map((range) =>
      onThreads
        ? verifyPartOnThread({ verifyAuditPart: true, url, range, wanted, head }).catch(() => verifyPart(store, range, wanted))
        : verifyPart(store, range, wanted),
    ),
  );

  // The parts joined in order: each part's first record is checked against the one before it.
  const chain = new ChainVerifier();
  const hashes = new Map<number, string>();
  const checked = new Set(wanted);
  for (const part of results) {
    if (part.first !== undefined && chain.push(part.first)) {
      if (checked.has(part.first.seq)) hashes.set(part.first.seq, part.first.hash!);
      if (part.rest !== undefined) chain.adopt(part.rest);
      for (const [seq, hash] of part.hashes) hashes.set(seq, hash);
    }
    if (chain.broken) break;
    // A part that could not be read to its end fails the verification, as one pass would.
    if (part.error !== undefined) throw new Error(part.error);
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

/** Which batches a part holds: those whose first seq is in [fromSeq, beforeSeq). */
type PartRange = Pick<AuditBatchQuery, 'fromSeq' | 'beforeSeq'>;

/** `count` parts of about as many records each of a log whose last record is `last`; every batch is in exactly one. */
function parts(last: number, count: number): PartRange[] {
  const starts = Array.from({ length: count - 1 }, (_, k) => 1 + Math.floor(((k + 1) * last) / count));
  return [{ beforeSeq: starts[0] }, ...starts.map((fromSeq, k) => ({ fromSeq, beforeSeq: starts[k + 1] }))];
}

/** What verifying one part found; plain data, as it crosses from a part's thread. */
interface PartResult {
  /** The part's first record, to be checked where the part before it ends; none when the part holds none. */
  readonly first?: AuditRecord;
  /** The records after the first, verified from it. */
  readonly rest?: ChainProgress;
  /** The hashes of its verified records (after the first) that checkpoints name. */
  readonly hashes: readonly (readonly [number, string])[];
  /** Why the part could not be read to its end. */
  readonly error?: string;
}

/** Verifies the records of a part after its first, reading it a page of batches at a time. */
async function verifyPart(store: Store, range: PartRange, wanted: readonly number[]): Promise<PartResult> {
  const checked = new Set(wanted);
  const hashes: [number, string][] = [];
  let first: AuditRecord | undefined;
  let chain: ChainVerifier | undefined;
  const result = (error?: string): PartResult => ({ first, rest: chain?.progress, hashes, error });
  try {
    for (let after: number | undefined; ;) {
      const page = await store.listAuditBatches({ ...range, afterFirstSeq: after, limit: PAGE_BATCHES });
      for (const batch of page) {
        for (const r of unbatchAudits(batch.firstSeq, batch.body)) {
          if (first === undefined) {
            first = r;
            // A first record without a hash breaks the chain where it is joined.
            if (r.hash === null) return result();
            chain = new ChainVerifier({ seq: r.seq, hash: r.hash });
            continue;
          }
          if (!chain!.push(r)) return result();
          if (checked.has(r.seq)) hashes.push([r.seq, r.hash!]);
        }
      }
      if (page.length < PAGE_BATCHES) return result();
      after = page.at(-1)!.firstSeq;
    }
  } catch (error) {
    return result(error instanceof Error ? error.message : String(error));
  }
}

/** What a part's thread is given. */
interface PartJob {
  readonly verifyAuditPart: true;
  readonly url: string;
  readonly range: PartRange;
  readonly wanted: readonly number[];
  /** The head of the log where the verification started: the thread's store must hold it, or it is another store. */
  readonly head: { readonly seq: number; readonly hash: string };
}

/**
 * Verifies a part on a thread of its own, with a connection of its own; rejects when the thread
 * cannot do it, or opens a store that does not hold the head the verification started from (a
 * store in memory, a URL that names another): the part is then verified here.
 */
function verifyPartOnThread(job: PartJob): Promise<PartResult> {
  return new Promise((resolve, reject) => {
    const thread = new Worker(new URL(import.meta.url), { workerData: job });
    thread.once('message', (reply: PartResult | { readonly failed: string }) =>
      'failed' in reply ? reject(new Error(reply.failed)) : resolve(reply),
    );
    thread.once('error', reject);
    thread.once('exit', (code) => reject(new Error(`a verification thread exited (code ${code}) without its result`)));
  });
}

// ---------------------------------------------------------------------------------------------
// A part's thread

if (!isMainThread && parentPort && (workerData as Partial<PartJob> | undefined)?.verifyAuditPart === true) {
  const { url, range, wanted, head } = workerData as PartJob;
  const port = parentPort;
  // Not a top-level await: this module is imported by the gateway too. A failure after the result
  // was sent (closing the store) goes unheard: the result is taken once.
  void (async () => {
    try {
      const store = await openStore(url);
      try {
        const [mark] = await store.listAudit({ afterSeq: head.seq - 1, limit: 1 });
        if (mark?.seq !== head.seq || mark.hash !== head.hash)
          throw new Error(`the store this thread opened does not hold record ${head.seq} as verified`);
        port.postMessage(await verifyPart(store, range, wanted));
      } finally {
        await store.close();
      }
    } catch (error) {
      port.postMessage({ failed: error instanceof Error ? error.message : String(error) });
    }
  })();
}
