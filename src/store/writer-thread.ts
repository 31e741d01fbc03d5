/**
 * The store's hottest writes (store/sqlite.ts `HotWrites`: the audit chain, the statements of
 * every session) and its checkpoints, on a thread of their own with a connection of their own,
 * for the gateway: its one thread serves every session, and a SQLite call holds it until the call
 * returns. With this thread, a session waits neither for the chain's hashes and the inserts, nor
 * for a commit, nor for SQLite copying its write-ahead log into the database (which the commit
 * that crosses 1,000 pages of log would otherwise do, fsyncs included); the other core works
 * meanwhile.
 *
 * Guarantees:
 * - Writes are done in the order they are asked for, each one IMMEDIATE transaction, and a write's
 *   promise settles once it is committed (or has failed): what `HotWrites` promises on the store's
 *   own connection. SQLite's lock orders them against the store's other writers (its own
 *   connection, other processes).
 * - A PASSIVE checkpoint every `CHECKPOINT_EVERY_MS`, which no writer waits for; the store's own
 *   connection checkpoints no more.
 * - Fail-safe: when the thread cannot start or dies, the writes in flight fail (the audit log
 *   fails closed on them), later ones run on the store's own connection again, which checkpoints
 *   again as SQLite does by default, and `onFailure` says why.
 *
 * The thread's side is the bottom of this file; it runs when the module is loaded in a worker.
 */

import type { DatabaseSync } from 'node:sqlite';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { auditFields, type AuditFields } from './audit-batches.ts';
import type { AuditRecord } from './store.ts';
import { hotWrites, immediate, openDatabase, type HotWrites } from './sqlite.ts';
import type { StatementFields } from './statement-batches.ts';

/** How often the log is copied into the database. */
export const CHECKPOINT_EVERY_MS = 1000;

/** SQLite's own: the pages of log after which a commit checkpoints, when no thread does. */
const AUTOCHECKPOINT_PAGES = 1000;

export interface WriterThread extends HotWrites {
  /** Ends the thread once what was asked of it is done, and closes its connection. */
  stop(): Promise<void>;
}

interface Start {
  readonly path: string;
  readonly everyMs: number;
}

/**
 * What crosses to the thread (by structured clone): flat lists of strings and numbers, which cost
 * either thread less than a list of objects would, in JSON or cloned. Audit events go as
 * `AuditFields` (store/audit-batches.ts), their details already encoded but a statement's, which
 * the thread encodes; statements as the recorder gathered them, `StatementFields`
 * (store/statement-batches.ts), which the thread puts in batches.
 */
type Request =
  | { readonly id: number; readonly op: 'statements'; readonly fields: StatementFields }
  | {
      readonly id: number;
      readonly op: 'audits';
      readonly fields: AuditFields;
      /** Send the records written back. */
      readonly records: boolean;
    };

/** A request before it is given its id. */
type Unnumbered<R> = R extends unknown ? Omit<R, 'id'> : never;

interface Reply {
  readonly id: number;
  /** `AuditRecord[]` as JSON text, for audits. */
  readonly records?: string;
  readonly failed?: FailedWrite;
}

/** An error as it crosses threads: what callers look at (`conflicts` reads SQLite's codes). */
interface FailedWrite {
  readonly message: string;
  readonly code?: unknown;
  readonly errcode?: unknown;
  readonly errstr?: unknown;
}

/**
 * Starts the thread for the store file at `path`, which `db` (the store's own connection) has open;
 * `fallback` is the hot writes on `db`, for when the thread is gone.
 */
export function startWriterThread(db: DatabaseSync, path: string, fallback: HotWrites, onFailure: (error: unknown) => void): WriterThread {
  let worker: Worker | undefined;
  const pending = new Map<number, { resolve(records: string | undefined): void; reject(error: unknown): void }>();
  let nextId = 1;

  /** The store's own connection takes over: it checkpoints again, and `onFailure` hears why. */
  const takeOver = (error: unknown) => {
    if (db.isOpen) db.exec(`PRAGMA wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
    onFailure(error);
  };
  const fail = (error: unknown) => {
    if (worker === undefined) return;
    worker = undefined;
    for (const p of pending.values())
      p.reject(new Error('the store writer thread ended before it told whether this write was committed', { cause: error }));
    pending.clear();
    takeOver(error);
  };

  db.exec('PRAGMA wal_autocheckpoint = 0');
  let thread: Worker;
  try {
    thread = new Worker(new URL(import.meta.url), { workerData: { path, everyMs: CHECKPOINT_EVERY_MS } satisfies Start });
  } catch (error) {
    takeOver(error);
    return { ...fallback, stop: async () => {} };
  }
  worker = thread;
  // Never what keeps the process alive.
  thread.unref();
  let stopping = false;
  const exited = new Promise<void>((resolve) => thread.once('exit', () => resolve()));
  thread.on('error', fail);
  thread.on('exit', (code) => {
    if (!stopping) fail(new Error(`the store writer thread exited (code ${code})`));
  });
  thread.on('message', (reply: Reply) => {
    const p = pending.get(reply.id);
    pending.delete(reply.id);
    if (reply.failed) p?.reject(Object.assign(new Error(reply.failed.message), reply.failed));
    else p?.resolve(reply.records);
  });

  /** Resolves once the write is committed, with its records (audits); undefined when the thread is gone. */
  const ask = (request: Unnumbered<Request>): Promise<string | undefined> | undefined => {
    if (worker === undefined || stopping) return undefined;
    const id = nextId++;
    const done = new Promise<string | undefined>((resolve, reject) => pending.set(id, { resolve, reject }));
    worker.postMessage({ ...request, id } as Request);
    return done;
  };

  return {
    async statements(fields) {
      const reply = ask({ op: 'statements', fields });
      if (reply === undefined) return fallback.statements(fields);
      await reply;
    },
    async audits(events, records = true) {
      const reply = ask({ op: 'audits', fields: auditFields(events), records });
      if (reply === undefined) return fallback.audits(events, records);
      const written = await reply;
      return written === undefined ? [] : (JSON.parse(written) as AuditRecord[]);
    },
    async stop() {
      if (worker === undefined) return;
      stopping = true;
      worker.ref(); // the process waits for the thread to end now
      worker.postMessage('stop');
      await exited;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The thread

if (!isMainThread && parentPort && (workerData as Partial<Start> | undefined)?.path !== undefined) {
  const { path, everyMs } = workerData as Start;
  const port = parentPort;
  const db = openDatabase(path);
  db.exec('PRAGMA wal_autocheckpoint = 0');
  const writes = hotWrites(db);
  const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
  // A checkpoint that throws ends the thread: the store checkpoints by itself again.
  const timer = setInterval(() => checkpoint.get(), everyMs);
  port.on('message', (request: Request | 'stop') => {
    if (request === 'stop') {
      clearInterval(timer);
      db.close();
      port.close();
      return;
    }
    try {
      if (request.op === 'statements') {
        immediate(db, () => writes.statements(request.fields));
        port.postMessage({ id: request.id } satisfies Reply);
      } else {
        const records = immediate(db, () => writes.audits(request.fields, request.records));
        port.postMessage({ id: request.id, records: request.records ? JSON.stringify(records) : undefined } satisfies Reply);
      }
    } catch (error) {
      const e = error as Partial<FailedWrite>;
      port.postMessage({
        id: request.id,
        failed: { message: String(e.message ?? error), code: e.code, errcode: e.errcode, errstr: e.errstr },
      } satisfies Reply);
    }
  });
}
