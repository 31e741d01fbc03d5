/**
 * The scale-out backend: PostgreSQL through a `pg` Pool that belongs to the store.
 *
 * BIGINT (times in epoch milliseconds, counts) is parsed to a JavaScript number by this
 * pool's own type parsers; pg's global parsers are left alone, because other code in the
 * process (target connections, tests) uses `pg` too. Epoch milliseconds fit a double exactly.
 */

import pg from 'pg';
import { Kysely, PostgresDialect, sql } from 'kysely';
import type { Database } from './schema.ts';
import { batchStatements, seqTaken, type StatementBatch, type StatementFields } from './statement-batches.ts';

const INT8_OID = 20;

const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary'): unknown {
    if (oid === INT8_OID && format !== 'binary') return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format ?? 'text');
  },
} as pg.CustomTypesConfig;

export interface PostgresBackend {
  readonly db: Kysely<Database>;
  readonly pool: pg.Pool;
}

export function openPostgres(url: string): PostgresBackend {
  const pool = new pg.Pool({ connectionString: url, types, max: 10, application_name: 'drawbridge' });
  // An idle client that loses its server is dropped by the pool and replaced on next use;
  // queries in flight report their own errors. Without a listener the process would exit.
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return { db, pool };
}

/** Runs `fn` while holding a session advisory lock, so that replicas starting together migrate one at a time. */
export async function withAdvisoryLock<T>(pool: pg.Pool, key: number, fn: () => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('select pg_advisory_lock($1)', [key]);
    try {
      return await fn();
    } finally {
      // If unlocking fails the connection is suspect: destroy it, which also ends the lock.
      await client.query('select pg_advisory_unlock($1)', [key]).catch((err: Error) => {
        broken = err;
      });
    }
  } catch (err) {
    broken ??= err instanceof Error ? err : new Error(String(err));
    throw err;
  } finally {
    client.release(broken);
  }
}

/**
 * Statement batches (store/statement-batches.ts) as one INSERT of column arrays, one fixed statement
 * whatever their number, in one transaction with the check that none overlaps a batch its session
 * already has.
 */
export function postgresStatementWriter(db: Kysely<Database>): (fields: StatementFields) => Promise<void> {
  return (fields) =>
    db.transaction().execute(async (trx) => {
      const batches = batchStatements(fields);
      const column = <K extends keyof StatementBatch>(key: K) => batches.map((b) => b[key]);
      const [sessions, first, last] = [column('sessionId'), column('firstSeq'), column('lastSeq')];
      const { rows } = await sql<{ session_id: string; first: number; last: number }>`
        select n.session_id, n.first, n.last from unnest(${sessions}::text[], ${first}::int[], ${last}::int[]) as n(session_id, first, last)
        where exists (select 1 from statement_batches b where b.session_id = n.session_id and b.first_seq <= n.last and b.last_seq >= n.first)
        limit 1`.execute(trx);
      const taken = rows[0];
      if (taken !== undefined) throw seqTaken(taken.session_id, taken.first, taken.last);
      await sql`insert into statement_batches (session_id, first_seq, last_seq, first_at, last_at, statements, refused, failed, bytes, body)
        select * from unnest(${sessions}::text[], ${first}::int[], ${last}::int[], ${column('firstAt')}::bigint[],
          ${column('lastAt')}::bigint[], ${column('statements')}::int[], ${column('refused')}::int[], ${column('failed')}::int[],
          ${column('bytes')}::bigint[], ${column('body')}::text[])`.execute(trx);
    });
}
