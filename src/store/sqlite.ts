/**
 * The embedded backend: SQLite through `node:sqlite`, adapted to Kysely's SqliteDialect.
 *
 * Guarantees: the database folder is created private (0700) and the file 0600, because it
 * holds grant verifiers and session records; WAL with synchronous=NORMAL (a crash may lose
 * the last commits, never corrupt the file); a busy timeout so that an administrative
 * command writing to the same file waits instead of failing.
 *
 * Limits: one connection per store; Kysely serializes queries on it. Processes sharing the
 * file (the gateway and an administrative command) wait for each other's write
 * transactions; two stores on one file inside one process would block each other, since
 * node:sqlite waits synchronously — open one store per process.
 */

import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { Kysely, SqliteDialect, type SqliteDatabase, type SqliteStatement } from 'kysely';
import type { Database } from './schema.ts';
import { AUDIT_HEAD_SQL, auditFields, auditHead, chainInBatches, type AuditFields, type AuditHeadRow } from './audit-batches.ts';
import type { AuditRecord, NewAuditEvent } from './store.ts';
import { batchStatements, seqTaken, type StatementFields } from './statement-batches.ts';

export const SQLITE_BUSY_TIMEOUT_MS = 5000;

export interface SqliteBackend {
  readonly db: Kysely<Database>;
  /** The same connection, for the few hot writes that go around the query builder. */
  readonly raw: DatabaseSync;
}

/** `path` is a file path or `:memory:`. */
export function openSqlite(path: string): SqliteBackend {
  const raw = openDatabase(path);
  return { db: new Kysely<Database>({ dialect: new SqliteDialect({ database: kyselyAdapter(raw) }) }), raw };
}

/** A connection to the store file at `path` (or `:memory:`), set up as every connection of the store is. */
export function openDatabase(path: string): DatabaseSync {
  if (path !== ':memory:') {
    const full = resolve(path);
    mkdirSync(dirname(full), { recursive: true, mode: 0o700 });
    // Create the file ourselves so that it is born private; SQLite gives -wal and -shm the same mode.
    closeSync(openSync(full, 'a', 0o600));
  }
  const db = new DatabaseSync(path);
  db.exec(`PRAGMA busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
  if (path !== ':memory:') untilUnlocked(() => db.exec('PRAGMA journal_mode = WAL'));
  db.exec('PRAGMA synchronous = NORMAL');
  db.exec('PRAGMA foreign_keys = ON');
  return db;
}

/**
 * Runs `step`, again while SQLite says the database is locked, up to the busy timeout. Switching a
 * new file to WAL needs it to itself, and SQLite does not wait for that (busy_timeout does not
 * apply): a second process opening the file while the first writes its tables would fail.
 */
function untilUnlocked(step: () => void): void {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (const deadline = Date.now() + SQLITE_BUSY_TIMEOUT_MS; ;) {
    try {
      step();
      return;
    } catch (error) {
      if ((error as { errcode?: number }).errcode !== SQLITE_BUSY || Date.now() > deadline) throw error;
      Atomics.wait(pause, 0, 0, 20); // opening a store is synchronous: wait without the event loop
    }
  }
}

/** SQLite's result code for a lock another connection holds (after the busy timeout, where one applies). */
export const SQLITE_BUSY = 5;

function kyselyAdapter(db: DatabaseSync): SqliteDatabase {
  return {
    close: () => db.close(),
    prepare(sql: string): SqliteStatement {
      // Kysely opens transactions with a deferred BEGIN. A deferred transaction that reads
      // and then writes fails at once with SQLITE_BUSY when another process wrote meanwhile
      // (busy_timeout cannot help an upgrade); BEGIN IMMEDIATE takes the write lock up front
      // and waits for it. Every transaction in the store writes, so nothing is lost.
      const statement = db.prepare(sql === 'begin' ? 'begin immediate' : sql);
      const args = (parameters: ReadonlyArray<unknown>): SQLInputValue[] => parameters.map(toSqlite);
      return {
        // Anything that returns columns (SELECT, … RETURNING) is read with all().
        reader: statement.columns().length > 0,
        all: (parameters) => statement.all(...args(parameters)),
        run: (parameters) => statement.run(...args(parameters)),
        iterate: (parameters) => statement.iterate(...args(parameters)),
      };
    },
  };
}

function toSqlite(value: unknown): SQLInputValue {
  if (value === undefined || value === null) return null;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'string') return value;
  if (value instanceof Uint8Array) return value;
  throw new TypeError(`cannot bind a ${typeof value} to a SQLite parameter`);
}

/** The store's hottest writes, each one IMMEDIATE transaction on a connection of its own. */
export interface HotWrites {
  /** Records statements, a batch per session (store/statement-batches.ts); refused whole when a batch has a seq its session already has. */
  statements(fields: StatementFields): Promise<void>;
  /** Appends to the audit chain, which every session's statements and every refusal go through; the records written, unless `records` is false. */
  audits(events: readonly NewAuditEvent[], records?: boolean): Promise<AuditRecord[]>;
}

/**
 * The hot writes on the store's own connection, around the query builder, holding Kysely's single
 * connection so that no other transaction interleaves.
 */
export function sqliteHotWrites(backend: SqliteBackend): HotWrites {
  const writes = hotWrites(backend.raw);
  const inTransaction = <T>(write: () => T): Promise<T> => backend.db.connection().execute(async () => immediate(backend.raw, write));
  return {
    statements: (fields) => inTransaction(() => writes.statements(fields)),
    audits: (events, records) => inTransaction(() => writes.audits(auditFields(events), records)),
  };
}

/** BEGIN IMMEDIATE, COMMIT and ROLLBACK of a connection, prepared once: SQLite parses them no more. */
const transactions = new WeakMap<DatabaseSync, { begin: StatementSync; commit: StatementSync; rollback: StatementSync }>();

/** Runs `write` in one IMMEDIATE transaction on `db`: committed when it returns, rolled back when it throws. */
export function immediate<T>(db: DatabaseSync, write: () => T): T {
  let t = transactions.get(db);
  if (t === undefined) {
    t = { begin: db.prepare('begin immediate'), commit: db.prepare('commit'), rollback: db.prepare('rollback') };
    transactions.set(db, t);
  }
  t.begin.run();
  try {
    const result = write();
    t.commit.run();
    return result;
  } catch (error) {
    t.rollback.run();
    throw error;
  }
}

/**
 * The hot writes' statements on `db`, to run inside a transaction: one prepared INSERT per batch
 * (of a session's statements, or of consecutive audit records). A statement batch is checked
 * against the session's batch that starts at or before its last seq: batches never overlap, so
 * that one is the only one it could overlap. The audit append reads the head under BEGIN
 * IMMEDIATE, which holds SQLite's one write lock, so the records follow the head whichever process
 * or thread appends next.
 */
export function hotWrites(db: DatabaseSync): {
  /** Records the statements, given as `StatementFields`, in batches it makes. */
  statements(fields: StatementFields): void;
  /** Appends the events, given as `AuditFields`. */
  audits(fields: AuditFields, records?: boolean): AuditRecord[];
} {
  let before: StatementSync | undefined;
  let insertBatch: StatementSync | undefined;
  let head: StatementSync | undefined;
  let insertAudit: StatementSync | undefined;
  return {
    statements(fields) {
      const batches = batchStatements(fields);
      before ??= db.prepare(
        'select last_seq from statement_batches where session_id = ? and first_seq <= ? order by first_seq desc limit 1',
      );
      insertBatch ??= db.prepare(
        'insert into statement_batches (session_id, first_seq, last_seq, first_at, last_at, statements, refused, failed, bytes, body) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      );
      for (const b of batches) {
        const previous = before.get(b.sessionId, b.lastSeq) as { last_seq: number | bigint } | undefined;
        if (previous !== undefined && Number(previous.last_seq) >= b.firstSeq) throw seqTaken(b.sessionId, b.firstSeq, b.lastSeq);
        insertBatch.run(b.sessionId, b.firstSeq, b.lastSeq, b.firstAt, b.lastAt, b.statements, b.refused, b.failed, b.bytes, b.body);
      }
    },
    audits(fields, records = true) {
      head ??= db.prepare(AUDIT_HEAD_SQL);
      insertAudit ??= db.prepare(
        'insert into audit_batches (first_seq, last_seq, first_at, last_at, last_hash, body) values (?, ?, ?, ?, ?, ?)',
      );
      const appended = chainInBatches(auditHead(head.get() as AuditHeadRow | undefined), fields, records);
      for (const b of appended.batches) insertAudit.run(b.firstSeq, b.lastSeq, b.firstAt, b.lastAt, b.lastHash, b.body);
      return appended.records;
    },
  };
}
