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
import type { NewStatement } from './store.ts';

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

/** Statement batches as one INSERT of column arrays: one fixed statement whatever the batch size. */
export function postgresStatementWriter(db: Kysely<Database>): (rows: readonly NewStatement[]) => Promise<void> {
  return async (rows) => {
    const column = <K extends keyof NewStatement>(key: K) => rows.map((r) => r[key] ?? null);
    const results = rows.map((r) => (r.result === undefined ? null : JSON.stringify(r.result)));
    await sql`insert into statements (session_id, seq, text, started_at, duration_ms, rows, outcome, error_code, error_message, result)
      select * from unnest(${column('sessionId')}::text[], ${column('seq')}::int[], ${column('text')}::text[],
        ${column('startedAt')}::bigint[], ${column('durationMs')}::float8[], ${column('rows')}::bigint[],
        ${column('outcome')}::text[], ${column('errorCode')}::text[], ${column('errorMessage')}::text[], ${results}::text[])`.execute(db);
  };
}
