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
import { chainAfter, GENESIS_HASH } from '../audit/chain.ts';
import type { AuditRecord, NewAuditEvent, NewStatement } from './store.ts';

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

function openDatabase(path: string): DatabaseSync {
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

const SQLITE_BUSY = 5;

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

/**
 * Runs `write` in one IMMEDIATE transaction on the raw connection, around the query builder for the
 * hottest writes, while holding Kysely's single connection so that no other transaction interleaves.
 */
function rawWrite<T>(backend: SqliteBackend, write: () => T): Promise<T> {
  return backend.db.connection().execute(async () => {
    backend.raw.exec('begin immediate');
    try {
      const result = write();
      backend.raw.exec('commit');
      return result;
    } catch (error) {
      backend.raw.exec('rollback');
      throw error;
    }
  });
}

/** Statement batches are the store's hottest write (one row per statement of every session): one prepared INSERT per row. */
export function sqliteStatementWriter(backend: SqliteBackend): (rows: readonly NewStatement[]) => Promise<void> {
  let insert: StatementSync | undefined;
  return (rows) =>
    rawWrite(backend, () => {
      insert ??= backend.raw.prepare(
        'insert into statements (session_id, seq, text, started_at, duration_ms, rows, outcome, error_code, error_message, result) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      );
      for (const r of rows) {
        insert.run(
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
    });
}

/**
 * Appends to the audit chain, which every session's statements and every refusal go through.
 * BEGIN IMMEDIATE holds SQLite's one write lock, so the head read is the head the records follow,
 * whichever process appends next.
 */
export function sqliteAuditWriter(backend: SqliteBackend): (events: readonly NewAuditEvent[]) => Promise<AuditRecord[]> {
  let head: StatementSync | undefined;
  let insert: StatementSync | undefined;
  return (events) =>
    rawWrite(backend, () => {
      head ??= backend.raw.prepare('select seq, hash from audit_events order by seq desc limit 1');
      insert ??= backend.raw.prepare(
        'insert into audit_events (seq, at, actor, action, subject, outcome, details, prev_hash, hash) values (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      );
      const last = head.get() as { seq: number | bigint; hash: string | null } | undefined;
      const chained = chainAfter(last && { seq: Number(last.seq), hash: last.hash ?? GENESIS_HASH }, events);
      for (const { record: r, detailsJson } of chained) {
        insert.run(r.seq, r.at, r.actor, r.action, r.subject, r.outcome, detailsJson, r.prevHash, r.hash);
      }
      return chained.map((c) => c.record);
    });
}
