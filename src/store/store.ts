/**
 * The state store: grants, sessions and recorded statements, behind one interface with two
 * backends (embedded SQLite, shared PostgreSQL) and one query layer (Kysely).
 *
 * Guarantees: migrations run at open, once, even when several gateways open the same
 * PostgreSQL store together; a statement batch is one transaction (all rows or none);
 * a credential is only ever stored as its SHA-256, and a second grant with the same hash
 * is refused with `StoreConflictError`. Times are epoch milliseconds supplied by the
 * caller (its Clock); the store never reads the time itself.
 */

import { randomUUID } from 'node:crypto';
import { Migrator, type Kysely, type Selectable } from 'kysely';
import { MIGRATION_LOCK_TABLE, MIGRATION_TABLE, migrationProvider } from './migrations.ts';
import type { Database, GrantsTable, SessionsTable, StatementsTable } from './schema.ts';
import { openSqlite, sqliteStatementWriter } from './sqlite.ts';

export type StoreKind = 'sqlite' | 'postgres';
export type StatementOutcome = 'ok' | 'error' | 'denied' | 'cancelled';

export interface GrantRecord {
  readonly id: string;
  readonly principal: string;
  readonly connection: string;
  /** Hex SHA-256 of the credential. */
  readonly tokenHash: string;
  /** Base64. */
  readonly scramSalt: string;
  readonly scramIterations: number;
  /** Base64. */
  readonly scramStoredKey: string;
  /** Base64. */
  readonly scramServerKey: string;
  readonly reason: string | undefined;
  readonly grantedBy: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly revokedAt: number | undefined;
  readonly revokedBy: string | undefined;
  readonly revokeReason: string | undefined;
}

export interface Revocation {
  readonly by: string;
  readonly reason?: string | undefined;
}

export interface GrantQuery {
  readonly principal?: string;
  readonly connection?: string;
  /** Only grants neither revoked nor expired at this time. */
  readonly liveAt?: number;
  /** Default 100. */
  readonly limit?: number;
}

export type AuditOutcome = 'success' | 'failure';

export interface NewAuditEvent {
  readonly at: number;
  /** Who acted: a principal name, `local-admin`, `gateway`. */
  readonly actor: string;
  /** What happened, as `noun.verb`: `grant.issued`, `grant.revoked`, `login.failed`, ... */
  readonly action: string;
  /** What it happened to: a grant id, a principal, a session id. */
  readonly subject: string;
  readonly outcome: AuditOutcome;
  readonly details: Readonly<Record<string, unknown>>;
}

export interface AuditRecord extends NewAuditEvent {
  readonly seq: number;
}

export interface AuditQuery {
  readonly since?: number;
  readonly action?: string;
  readonly subject?: string;
  /** Default 100. */
  readonly limit?: number;
}

export interface NewGrant {
  /** Generated (`grt_…`) when absent. */
  readonly id?: string;
  readonly principal: string;
  readonly connection: string;
  readonly tokenHash: string;
  readonly scramSalt: string;
  readonly scramIterations: number;
  readonly scramStoredKey: string;
  readonly scramServerKey: string;
  readonly reason?: string | undefined;
  readonly grantedBy: string;
  readonly createdAt: number;
  readonly expiresAt: number;
}

export interface SessionRecord {
  readonly id: string;
  readonly protocol: string;
  readonly principal: string;
  readonly connection: string;
  readonly grantId: string;
  readonly clientAddress: string;
  readonly startedAt: number;
  readonly endedAt: number | undefined;
  readonly endReason: string | undefined;
}

export interface NewSession {
  /** Generated (`ses_…`) when absent. */
  readonly id?: string;
  readonly protocol: string;
  readonly principal: string;
  readonly connection: string;
  readonly grantId: string;
  readonly clientAddress: string;
  readonly startedAt: number;
}

export interface StatementRecord {
  readonly sessionId: string;
  /** Position within the session, from the recorder. */
  readonly seq: number;
  readonly text: string;
  readonly startedAt: number;
  readonly durationMs: number;
  readonly rows: number | undefined;
  readonly outcome: StatementOutcome;
  readonly errorCode: string | undefined;
  readonly errorMessage: string | undefined;
}

export interface NewStatement {
  readonly sessionId: string;
  readonly seq: number;
  readonly text: string;
  readonly startedAt: number;
  readonly durationMs: number;
  readonly rows?: number | undefined;
  readonly outcome: StatementOutcome;
  readonly errorCode?: string | undefined;
  readonly errorMessage?: string | undefined;
}

export interface SessionQuery {
  readonly principal?: string;
  readonly connection?: string;
  /** Default 100. */
  readonly limit?: number;
}

export interface Store {
  readonly kind: StoreKind;
  insertGrant(g: NewGrant): Promise<GrantRecord>;
  getGrant(id: string): Promise<GrantRecord | undefined>;
  findGrantByTokenHash(hash: string): Promise<GrantRecord | undefined>;
  /** Grants of `principal` on `connection` that are not revoked and have `expiresAt > now`. */
  listLiveGrants(principal: string, connection: string, now: number): Promise<GrantRecord[]>;
  /** True when this call revoked it; false when it does not exist or was already revoked. */
  revokeGrant(id: string, at: number, revocation?: Revocation): Promise<boolean>;
  /** Revokes every grant of `principal` not yet revoked nor expired; returns their ids. */
  revokeGrantsOf(principal: string, at: number, revocation: Revocation): Promise<string[]>;
  /** Grants revoked at `since` or later, oldest revocation first: what running gateways poll for. */
  listRevokedSince(since: number): Promise<GrantRecord[]>;
  /** Newest first. */
  listGrants(q: GrantQuery): Promise<GrantRecord[]>;
  appendAudit(event: NewAuditEvent): Promise<AuditRecord>;
  /** Oldest first, by sequence. */
  listAudit(q: AuditQuery): Promise<AuditRecord[]>;
  startSession(s: NewSession): Promise<SessionRecord>;
  /** True when this call ended it; false when it does not exist or had already ended. */
  endSession(id: string, at: number, reason: string): Promise<boolean>;
  getSession(id: string): Promise<SessionRecord | undefined>;
  /** Newest first. */
  listSessions(q: SessionQuery): Promise<SessionRecord[]>;
  /** One transaction: every row or none. */
  insertStatements(rows: readonly NewStatement[]): Promise<void>;
  /** Ordered by seq. */
  listStatements(sessionId: string): Promise<StatementRecord[]>;
  close(): Promise<void>;
}

/** A write that would break a uniqueness rule (same credential hash, same id, same session seq). */
export class StoreConflictError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreConflictError';
  }
}

/** Arbitrary but fixed: the advisory lock key under which PostgreSQL stores migrate. */
const MIGRATION_LOCK_KEY = 0x44_52_42_47; // "DRBG"

/** `sqlite:<path>`, `sqlite::memory:`, `postgres://…` or `postgresql://…`. */
export async function openStore(url: string): Promise<Store> {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length);
    if (path === '') throw new Error('store URL sqlite: needs a path, e.g. sqlite:./.drawbridge/state.db');
    const backend = openSqlite(path);
    try {
      await migrateSqlite(backend.db);
    } catch (err) {
      await backend.db.destroy();
      throw err;
    }
    return new KyselyStore('sqlite', backend.db, sqliteStatementWriter(backend));
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    // Loaded on demand: the embedded default has no use for the PostgreSQL driver.
    const { openPostgres, postgresStatementWriter, withAdvisoryLock } = await import('./postgres.ts');
    const { db, pool } = openPostgres(url);
    try {
      await withAdvisoryLock(pool, MIGRATION_LOCK_KEY, () => migrate(db));
    } catch (err) {
      await db.destroy();
      throw err;
    }
    return new KyselyStore('postgres', db, postgresStatementWriter(db));
  }
  // Never echo the URL: it may carry a password.
  const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(url)?.[0] ?? '(none)';
  throw new Error(`unsupported store URL scheme ${scheme}; expected sqlite:<path> or postgres://…`);
}

/**
 * Two processes opening a new SQLite store at once (the gateway and an administrative command)
 * may both try to create the tables; the loser's transaction rolls back, and on a second look
 * it finds the winner's migration done.
 */
async function migrateSqlite(db: Kysely<Database>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await migrate(db);
    } catch (error) {
      if (attempt >= 5 || !/already exists/.test(String((error as Error).message))) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
    }
  }
}

async function migrate(db: Kysely<Database>): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: migrationProvider,
    migrationTableName: MIGRATION_TABLE,
    migrationLockTableName: MIGRATION_LOCK_TABLE,
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    throw new Error(`store migration ${failed ?? ''} failed: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
}

function newId(prefix: string): string {
  return `${prefix}_${randomUUID().replaceAll('-', '')}`;
}

function isUniqueViolation(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; errcode?: unknown; message?: unknown };
  if (e.code === '23505') return true; // PostgreSQL unique_violation
  // SQLITE_CONSTRAINT_UNIQUE (2067) and SQLITE_CONSTRAINT_PRIMARYKEY (1555)
  return e.errcode === 2067 || e.errcode === 1555;
}

async function conflicts<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isUniqueViolation(err)) throw new StoreConflictError(what, { cause: err });
    throw err;
  }
}

const orUndefined = <T>(v: T | null): T | undefined => (v === null ? undefined : v);

function toGrant(r: Selectable<GrantsTable>): GrantRecord {
  return {
    id: r.id,
    principal: r.principal,
    connection: r.connection,
    tokenHash: r.token_hash,
    scramSalt: r.scram_salt,
    scramIterations: Number(r.scram_iterations),
    scramStoredKey: r.scram_stored_key,
    scramServerKey: r.scram_server_key,
    reason: orUndefined(r.reason),
    grantedBy: r.granted_by,
    createdAt: Number(r.created_at),
    expiresAt: Number(r.expires_at),
    revokedAt: r.revoked_at === null ? undefined : Number(r.revoked_at),
    revokedBy: orUndefined(r.revoked_by),
    revokeReason: orUndefined(r.revoke_reason),
  };
}

function toSession(r: Selectable<SessionsTable>): SessionRecord {
  return {
    id: r.id,
    protocol: r.protocol,
    principal: r.principal,
    connection: r.connection,
    grantId: r.grant_id,
    clientAddress: r.client_address,
    startedAt: Number(r.started_at),
    endedAt: r.ended_at === null ? undefined : Number(r.ended_at),
    endReason: orUndefined(r.end_reason),
  };
}

function toStatement(r: Selectable<StatementsTable>): StatementRecord {
  return {
    sessionId: r.session_id,
    seq: Number(r.seq),
    text: r.text,
    startedAt: Number(r.started_at),
    durationMs: Number(r.duration_ms),
    rows: r.rows === null ? undefined : Number(r.rows),
    outcome: r.outcome,
    errorCode: orUndefined(r.error_code),
    errorMessage: orUndefined(r.error_message),
  };
}

class KyselyStore implements Store {
  readonly kind: StoreKind;
  readonly #db: Kysely<Database>;
  readonly #writeStatements: (rows: readonly NewStatement[]) => Promise<void>;

  constructor(kind: StoreKind, db: Kysely<Database>, writeStatements: (rows: readonly NewStatement[]) => Promise<void>) {
    this.kind = kind;
    this.#db = db;
    this.#writeStatements = writeStatements;
  }

  async insertGrant(g: NewGrant): Promise<GrantRecord> {
    const row = {
      id: g.id ?? newId('grt'),
      principal: g.principal,
      connection: g.connection,
      token_hash: g.tokenHash,
      scram_salt: g.scramSalt,
      scram_iterations: g.scramIterations,
      scram_stored_key: g.scramStoredKey,
      scram_server_key: g.scramServerKey,
      reason: g.reason ?? null,
      granted_by: g.grantedBy,
      created_at: g.createdAt,
      expires_at: g.expiresAt,
      revoked_at: null,
      revoked_by: null,
      revoke_reason: null,
    };
    await conflicts('a grant with this id or credential hash already exists', () => this.#db.insertInto('grants').values(row).execute());
    return toGrant(row);
  }

  async getGrant(id: string): Promise<GrantRecord | undefined> {
    const r = await this.#db.selectFrom('grants').selectAll().where('id', '=', id).executeTakeFirst();
    return r && toGrant(r);
  }

  async findGrantByTokenHash(hash: string): Promise<GrantRecord | undefined> {
    const r = await this.#db.selectFrom('grants').selectAll().where('token_hash', '=', hash).executeTakeFirst();
    return r && toGrant(r);
  }

  async listLiveGrants(principal: string, connection: string, now: number): Promise<GrantRecord[]> {
    const rows = await this.#db
      .selectFrom('grants')
      .selectAll()
      .where('principal', '=', principal)
      .where('connection', '=', connection)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toGrant);
  }

  async revokeGrant(id: string, at: number, revocation?: Revocation): Promise<boolean> {
    const r = await this.#db
      .updateTable('grants')
      .set({ revoked_at: at, revoked_by: revocation?.by ?? null, revoke_reason: revocation?.reason ?? null })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  async revokeGrantsOf(principal: string, at: number, revocation: Revocation): Promise<string[]> {
    const rows = await this.#db
      .updateTable('grants')
      .set({ revoked_at: at, revoked_by: revocation.by, revoke_reason: revocation.reason ?? null })
      .where('principal', '=', principal)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', at)
      .returning('id')
      .execute();
    return rows.map((r) => r.id);
  }

  async listRevokedSince(since: number): Promise<GrantRecord[]> {
    const rows = await this.#db
      .selectFrom('grants')
      .selectAll()
      .where('revoked_at', '>=', since)
      .orderBy('revoked_at')
      .orderBy('id')
      .execute();
    return rows.map(toGrant);
  }

  async listGrants(q: GrantQuery): Promise<GrantRecord[]> {
    let query = this.#db.selectFrom('grants').selectAll();
    if (q.principal !== undefined) query = query.where('principal', '=', q.principal);
    if (q.connection !== undefined) query = query.where('connection', '=', q.connection);
    if (q.liveAt !== undefined) query = query.where('revoked_at', 'is', null).where('expires_at', '>', q.liveAt);
    const rows = await query
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(Math.max(0, Math.floor(q.limit ?? 100)))
      .execute();
    return rows.map(toGrant);
  }

  async appendAudit(event: NewAuditEvent): Promise<AuditRecord> {
    const row = await this.#db
      .insertInto('audit_events')
      .values({
        at: event.at,
        actor: event.actor,
        action: event.action,
        subject: event.subject,
        outcome: event.outcome,
        details: JSON.stringify(event.details),
        prev_hash: null,
        hash: null,
      })
      .returning('seq')
      .executeTakeFirstOrThrow();
    return { ...event, seq: Number(row.seq) };
  }

  async listAudit(q: AuditQuery): Promise<AuditRecord[]> {
    let query = this.#db.selectFrom('audit_events').selectAll();
    if (q.since !== undefined) query = query.where('at', '>=', q.since);
    if (q.action !== undefined) query = query.where('action', '=', q.action);
    if (q.subject !== undefined) query = query.where('subject', '=', q.subject);
    const rows = await query
      .orderBy('seq')
      .limit(Math.max(0, Math.floor(q.limit ?? 100)))
      .execute();
    return rows.map((r) => ({
      seq: Number(r.seq),
      at: Number(r.at),
      actor: r.actor,
      action: r.action,
      subject: r.subject,
      outcome: r.outcome,
      details: JSON.parse(r.details) as Record<string, unknown>,
    }));
  }

  async startSession(s: NewSession): Promise<SessionRecord> {
    const row = {
      id: s.id ?? newId('ses'),
      protocol: s.protocol,
      principal: s.principal,
      connection: s.connection,
      grant_id: s.grantId,
      client_address: s.clientAddress,
      started_at: s.startedAt,
      ended_at: null,
      end_reason: null,
    };
    await conflicts('a session with this id already exists', () => this.#db.insertInto('sessions').values(row).execute());
    return toSession(row);
  }

  async endSession(id: string, at: number, reason: string): Promise<boolean> {
    const r = await this.#db
      .updateTable('sessions')
      .set({ ended_at: at, end_reason: reason })
      .where('id', '=', id)
      .where('ended_at', 'is', null)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  async getSession(id: string): Promise<SessionRecord | undefined> {
    const r = await this.#db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst();
    return r && toSession(r);
  }

  async listSessions(q: SessionQuery): Promise<SessionRecord[]> {
    let query = this.#db.selectFrom('sessions').selectAll();
    if (q.principal !== undefined) query = query.where('principal', '=', q.principal);
    if (q.connection !== undefined) query = query.where('connection', '=', q.connection);
    const rows = await query
      .orderBy('started_at', 'desc')
      .orderBy('id', 'desc')
      .limit(Math.max(0, Math.floor(q.limit ?? 100)))
      .execute();
    return rows.map(toSession);
  }

  async insertStatements(rows: readonly NewStatement[]): Promise<void> {
    if (rows.length === 0) return;
    await conflicts('a statement with this session seq already exists', () => this.#writeStatements(rows));
  }

  async listStatements(sessionId: string): Promise<StatementRecord[]> {
    const rows = await this.#db.selectFrom('statements').selectAll().where('session_id', '=', sessionId).orderBy('seq').execute();
    return rows.map(toStatement);
  }

  async close(): Promise<void> {
    await this.#db.destroy();
  }
}
