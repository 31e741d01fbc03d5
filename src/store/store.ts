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
import { Migrator, sql, type Kysely, type Selectable, type Updateable } from 'kysely';
import type { Checkpoint } from '../audit/chain.ts';
import { AUDIT_HEAD_SQL, auditFields, auditHead, batchRow, chainInBatches, unbatchAudits, type AuditHeadRow } from './audit-batches.ts';
import type { RecordedResult } from '../recording/result-sample.ts';
import type { Plan, PlanStep } from '../core/index.ts';
import { MIGRATION_LOCK_TABLE, MIGRATION_TABLE, migrationProvider } from './migrations.ts';
import type {
  AccessRequestsTable,
  AccountsTable,
  ApprovalsTable,
  Database,
  GatewaySessionsTable,
  GrantsTable,
  ReviewDecisionsTable,
  ServiceAccountKeysTable,
  SessionsTable,
} from './schema.ts';
import { openSqlite, SQLITE_BUSY, sqliteHotWrites, type HotWrites, type SqliteBackend } from './sqlite.ts';
import { SEQ_TAKEN, statementFields, unbatchStatements, type StatementFields } from './statement-batches.ts';
import { startWriterThread } from './writer-thread.ts';

export type StoreKind = 'sqlite' | 'postgres';
export type StatementOutcome = 'ok' | 'error' | 'denied' | 'cancelled';

export interface GrantRecord {
  readonly id: string;
  readonly principal: string;
  readonly principalKind: AccountKind;
  readonly groups: readonly string[];
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
  /** A plan-scoped grant's plan. */
  readonly plan: Plan | undefined;
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
  /** Grants after this one in the order of the list (newest first): a page's cursor. */
  readonly before?: { readonly createdAt: number; readonly id: string };
  /** Default 100. */
  readonly limit?: number;
}

export interface AccessRequestQuery {
  readonly principal?: string;
  readonly connection?: string;
  readonly status?: AccessRequestRecord['status'];
  /** Requests after this one in the order of the list (newest first): a page's cursor. */
  readonly before?: { readonly requestedAt: number; readonly id: string };
  /** Default 100. */
  readonly limit?: number;
}

export interface AccountQuery {
  readonly kind?: AccountKind;
  /** Accounts whose name sorts after this one: a page's cursor. */
  readonly after?: string;
  /** Default: every account. */
  readonly limit?: number;
}

export type ApprovalKind = 'statement' | 'access';
export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled';

export interface NewApproval {
  readonly kind: ApprovalKind;
  readonly requester: string;
  readonly connection: string;
  readonly sessionId?: string | undefined;
  readonly requestId?: string | undefined;
  readonly statement?: string | undefined;
  readonly params?: readonly (string | null)[] | undefined;
  readonly policy?: string | undefined;
  readonly reason: string;
  readonly approvers: string;
  readonly preview?: Readonly<Record<string, unknown>> | undefined;
  /** Access approvals: how long the grant lasts. */
  readonly durationMs?: number | undefined;
  readonly createdAt: number;
  readonly expiresAt: number;
}

export interface ApprovalRecord extends NewApproval {
  /** Numbered from 1 without gaps per store: what people say ("approval #42"). */
  readonly id: number;
  readonly status: ApprovalStatus;
  readonly decidedAt: number | undefined;
  readonly decidedBy: string | undefined;
  readonly decisionReason: string | undefined;
}

export interface ApprovalQuery {
  readonly status?: ApprovalStatus;
  readonly requester?: string;
  readonly kind?: ApprovalKind;
  /** Approvals numbered below this one (the list is newest first): a page's cursor. */
  readonly beforeId?: number;
  readonly ids?: readonly number[];
  readonly limit?: number;
}

export interface AccessRequestRecord {
  readonly id: string;
  readonly principal: string;
  readonly connection: string;
  readonly durationMs: number;
  readonly reason: string;
  readonly requestedAt: number;
  readonly status: 'pending' | 'granted' | 'denied' | 'expired';
  readonly decidedBy: string | undefined;
  readonly decidedAt: number | undefined;
  /** Undefined for a granted request until its requester picks up the credential. */
  readonly grantId: string | undefined;
  /** The approval that decides it, when it needs one. */
  readonly approvalId: number | undefined;
  readonly decisionReason: string | undefined;
  /** The steps of the plan it came with. */
  readonly plan: readonly PlanStep[] | undefined;
}

export interface NewAccessRequest {
  readonly principal: string;
  readonly connection: string;
  readonly durationMs: number;
  readonly reason: string;
  readonly requestedAt: number;
  /** A plan's steps: its grant will allow what they cover and nothing else. */
  readonly plan?: readonly PlanStep[] | undefined;
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
  /** The chain (audit/chain.ts): the hash of the record before, and of this one. */
  readonly prevHash: string | null;
  readonly hash: string | null;
}

export interface AuditQuery {
  /** Records with a sequence number above this one. */
  readonly afterSeq?: number;
  readonly since?: number;
  /** Records before this time (exclusive). */
  readonly until?: number;
  readonly action?: string;
  readonly subject?: string;
  /** Default 100. */
  readonly limit?: number;
}

/** A page of the audit log's batches: those whose first seq is in [fromSeq, beforeSeq), after `afterFirstSeq`. */
export interface AuditBatchQuery {
  readonly fromSeq?: number;
  readonly beforeSeq?: number;
  /** Batches whose first seq is above this one: the last of the page before. */
  readonly afterFirstSeq?: number;
  readonly limit: number;
}

/** A batch of the audit log as a store holds it. */
export interface StoredAuditBatch {
  readonly firstSeq: number;
  readonly body: string;
}

/** A page of a session's statements, in seq order. */
export interface StatementQuery {
  /** Statements with a seq above this one. */
  readonly afterSeq?: number;
  /** At most this many; all of them when absent. */
  readonly limit?: number;
}

export interface NewGrant {
  /** Generated (`grt_…`) when absent. */
  readonly id?: string;
  readonly principal: string;
  readonly principalKind: AccountKind;
  readonly groups: readonly string[];
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
  readonly plan?: Plan | undefined;
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
  /** What it returned, as the client received it (masked), up to a size. */
  readonly result: RecordedResult | undefined;
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
  readonly result?: RecordedResult | undefined;
}

export interface SessionQuery {
  readonly principal?: string;
  readonly connection?: string;
  /** Sessions started at this time or later. */
  readonly since?: number;
  /** Sessions after this one in the order of the list (newest first): a page's cursor. */
  readonly before?: { readonly startedAt: number; readonly id: string };
  /** Default 100. */
  readonly limit?: number;
}

/**
 * What the recordings hold, in bytes, as retention counts them (recording/retention.ts): for each
 * batch of statements (store/statement-batches.ts), the UTF-8 bytes of its JSON, which holds every
 * field of its statements (text, error, recorded result), plus `BATCH_ROW_BYTES` for the rest of
 * its row. Session rows are not counted. It measures what the rows hold, not the database's files
 * (pages, free space, WAL, other tables), which are larger.
 */
export { BATCH_ROW_BYTES } from './statement-batches.ts';

export interface RecordingUsage {
  /** Every session, live ones included. */
  readonly sessions: number;
  readonly statements: number;
  /** Counted as `BATCH_ROW_BYTES` says. */
  readonly bytes: number;
}

/** An ended session and what its recording holds: what retention may delete. */
export interface EndedSession {
  readonly id: string;
  readonly startedAt: number;
  readonly endedAt: number;
  readonly statements: number;
  /** Counted as `BATCH_ROW_BYTES` says. */
  readonly bytes: number;
}

export interface EndedSessionQuery {
  /** Sessions that ended before this time (exclusive). */
  readonly endedBefore?: number;
  /** Sessions after this one in the order of the list (oldest end first): a page's cursor. */
  readonly after?: { readonly endedAt: number; readonly id: string };
  readonly limit: number;
}

/** What one `deleteRecordings` call deleted. */
export interface DeletedRecordings {
  readonly sessions: number;
  readonly statements: number;
  /** Counted as `BATCH_ROW_BYTES` says. */
  readonly bytes: number;
  /** Undefined when nothing was deleted. */
  readonly oldestStartedAt: number | undefined;
  readonly newestEndedAt: number | undefined;
}

/** The most session ids one `deleteRecordings` call takes: a batch holds the write lock briefly. */
export const MAX_DELETE_BATCH = 1000;

export type AccountKind = 'user' | 'service-account';

/** A gateway account as stored; roles are plain strings here (identity decides which it honours). */
export interface AccountRecord {
  readonly name: string;
  readonly kind: AccountKind;
  /** PHC scrypt string. */
  readonly passwordHash: string | undefined;
  readonly roles: readonly string[];
  readonly groups: readonly string[];
  readonly createdAt: number;
  readonly disabledAt: number | undefined;
  readonly lastUsedAt: number | undefined;
  readonly maxGrantMs: number | undefined;
  /** undefined: any connection. */
  readonly connections: readonly string[] | undefined;
}

export interface NewAccount {
  readonly name: string;
  readonly kind: AccountKind;
  readonly passwordHash?: string | undefined;
  readonly roles: readonly string[];
  readonly groups: readonly string[];
  readonly createdAt: number;
  readonly maxGrantMs?: number | undefined;
  readonly connections?: readonly string[] | undefined;
}

/** Fields to change; absent fields are left alone, `null` clears a nullable one. */
export interface AccountChanges {
  readonly passwordHash?: string | null;
  readonly roles?: readonly string[];
  readonly groups?: readonly string[];
  readonly disabledAt?: number | null;
  readonly lastUsedAt?: number | null;
  readonly maxGrantMs?: number | null;
  readonly connections?: readonly string[] | null;
}

export interface ServiceAccountKeyRecord {
  readonly id: string;
  readonly account: string;
  /** Hex SHA-256 of the key. */
  readonly keyHash: string;
  readonly createdAt: number;
  readonly revokedAt: number | undefined;
}

/** What a principal did on one connection from a time on (`Store.principalUsage`). */
export interface ConnectionUsage {
  readonly connection: string;
  readonly grants: number;
  readonly sessions: number;
  /** Every recorded statement, refused and failed ones included. */
  readonly statements: number;
  /** Statements refused by the gateway (outcome `denied`). */
  readonly refused: number;
  /** Statements the target answered with an error (outcome `error`). */
  readonly failed: number;
  /** The latest grant issued, session started or statement started on it in the window. */
  readonly lastUsedAt: number;
}

/** A principal's use of its access: in a window (`since` on) per connection, and the latest of each, ever. */
export interface PrincipalUsage {
  /** The connections with a grant issued, a session started or a statement run from `since` on, by name. */
  readonly connections: readonly ConnectionUsage[];
  /** Grants neither revoked nor expired at `now`. */
  readonly liveGrants: number;
  /** Sessions not ended (a gateway that died leaves its sessions open in the store). */
  readonly liveSessions: number;
  /** The newest grant and session start, whenever they were. */
  readonly lastGrant: GrantRecord | undefined;
  readonly lastSessionAt: number | undefined;
}

export interface NewServiceAccountKey {
  /** Generated (`sak_…`) when absent. */
  readonly id?: string;
  readonly account: string;
  readonly keyHash: string;
  readonly createdAt: number;
}

export interface GatewaySessionRecord {
  readonly id: string;
  readonly account: string;
  /** Hex SHA-256 of the session token. */
  readonly tokenHash: string;
  /** Hex SHA-256 of the refresh token. */
  readonly refreshHash: string;
  /** Id of the first session of the refresh chain. */
  readonly family: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly refreshExpiresAt: number;
  readonly revokedAt: number | undefined;
  readonly revokeReason: string | undefined;
  readonly via: string;
  readonly groups: readonly string[];
}

export interface NewGatewaySession {
  /** Generated (`gws_…`) when absent. */
  readonly id?: string;
  readonly account: string;
  readonly tokenHash: string;
  readonly refreshHash: string;
  /** Defaults to the session's own id (a new family). */
  readonly family?: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly refreshExpiresAt: number;
  readonly via: string;
  readonly groups: readonly string[];
}

/** A span of time: from `since` (inclusive) to `until` (exclusive), epoch milliseconds. */
export interface TimeWindow {
  readonly since: number;
  readonly until: number;
}

/** The grants issued in a window to a principal on a connection by one issuer (access review). */
export interface GrantActivity {
  readonly principal: string;
  readonly connection: string;
  readonly grantedBy: string;
  readonly issued: number;
  /** Of those, the ones no session ever used. */
  readonly unused: number;
  readonly lastIssuedAt: number;
}

/** A live grant and how many sessions used it (access review). */
export interface LiveGrantActivity {
  readonly grant: GrantRecord;
  readonly sessions: number;
}

/** The sessions a principal started on a connection in a window (access review). */
export interface SessionActivity {
  readonly principal: string;
  readonly connection: string;
  readonly sessions: number;
  /** Of those, the ones not ended yet. */
  readonly live: number;
  readonly lastStartedAt: number;
}

/** One recorded statement text of a principal on a connection, with its outcome, counted over a window (access review). */
export interface StatementActivity {
  readonly principal: string;
  readonly connection: string;
  /** As recorded: masked for masked sessions. */
  readonly text: string;
  readonly outcome: StatementOutcome;
  readonly count: number;
  readonly lastAt: number;
}

export type ReviewDecisionKind = 'certified' | 'revoked';

export interface NewReviewDecision {
  readonly principal: string;
  readonly connection: string;
  readonly decision: ReviewDecisionKind;
  readonly note: string;
  readonly decidedBy: string;
  readonly decidedAt: number;
  /** The grants a revoke ended. */
  readonly grantsRevoked: readonly string[];
}

export interface ReviewDecisionRecord extends NewReviewDecision {
  /** `rvd_…`. */
  readonly id: string;
}

export interface Store {
  readonly kind: StoreKind;
  /** `StoreConflictError` when the name is taken, also in another letter case. */
  insertAccount(a: NewAccount): Promise<AccountRecord>;
  /** Exact name. */
  getAccount(name: string): Promise<AccountRecord | undefined>;
  /** By name. */
  listAccounts(q?: AccountQuery): Promise<AccountRecord[]>;
  /** The account after the change, or undefined when there is no such account. */
  updateAccount(name: string, changes: AccountChanges): Promise<AccountRecord | undefined>;
  /**
   * One transaction: revokes every unrevoked key of the account (at `key.createdAt`) and
   * stores the new one, so an account has at most one working key.
   */
  replaceServiceAccountKey(key: NewServiceAccountKey): Promise<ServiceAccountKeyRecord>;
  /** Revoked keys too: the caller checks `revokedAt`. */
  findServiceAccountKeyByHash(hash: string): Promise<ServiceAccountKeyRecord | undefined>;
  /** Newest first. */
  listServiceAccountKeys(account: string): Promise<ServiceAccountKeyRecord[]>;
  /**
   * What `principal` did with its access from `since` on (grants issued, sessions started,
   * statements started, by connection), what is live at `now`, and its last grant and session.
   */
  principalUsage(principal: string, since: number, now: number): Promise<PrincipalUsage>;
  insertGatewaySession(s: NewGatewaySession): Promise<GatewaySessionRecord>;
  getGatewaySession(id: string): Promise<GatewaySessionRecord | undefined>;
  findGatewaySessionByTokenHash(hash: string): Promise<GatewaySessionRecord | undefined>;
  findGatewaySessionByRefreshHash(hash: string): Promise<GatewaySessionRecord | undefined>;
  /**
   * One transaction: revokes session `id` (reason `rotated`) and stores `next` in its family.
   * Undefined, storing nothing, when `id` was already revoked or does not exist: of two
   * refreshes racing with the same refresh token exactly one wins.
   */
  rotateGatewaySession(id: string, next: NewGatewaySession, at: number): Promise<GatewaySessionRecord | undefined>;
  /** True when this call revoked it. */
  revokeGatewaySession(id: string, at: number, reason: string): Promise<boolean>;
  /** Revokes every unrevoked session of the family; returns how many. */
  revokeGatewaySessionFamily(family: string, at: number, reason: string): Promise<number>;
  /** Revokes every session of `account` neither revoked nor past its refresh expiry; returns how many. */
  revokeGatewaySessionsOf(account: string, at: number, reason: string): Promise<number>;
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
  /**
   * Grants that expired (not revoked) at or before `now` whose expiry nobody has recorded yet;
   * marks them recorded, so that of several gateways on one store only one records each.
   */
  claimExpiredGrants(now: number, limit: number): Promise<GrantRecord[]>;
  /** A request for access that waits for a decision. */
  insertAccessRequest(request: NewAccessRequest): Promise<AccessRequestRecord>;
  /** Newest first. */
  listAccessRequests(q: AccessRequestQuery): Promise<AccessRequestRecord[]>;
  getAccessRequest(id: string): Promise<AccessRequestRecord | undefined>;
  /**
   * Names the grant issued for a granted request: true when this call did, false when the
   * request is not granted or already names one (its credential is picked up once).
   */
  setAccessRequestGrant(id: string, grantId: string): Promise<boolean>;
  appendAudit(event: NewAuditEvent): Promise<AuditRecord>;
  /**
   * Appends in one transaction, in order, each record chained to the one before it; appends of
   * every process on the store take turns (a lock), so the chain has one order. Resolves with the
   * records as written, or with none when the caller asks for none (`records: false`), which
   * spares copying them.
   */
  appendAudits(events: readonly NewAuditEvent[], options?: { readonly records?: boolean }): Promise<AuditRecord[]>;
  /** Oldest first, by sequence. */
  listAudit(q: AuditQuery): Promise<AuditRecord[]>;
  /**
   * The audit log as stored, a page at a time: its batches in the order of their first seq (their
   * records as JSON, store/audit-batches.ts `unbatchAudits`), none left out. What verification
   * reads, so that it sees every record a store holds, where `listAudit` keeps to those a query asks for.
   */
  listAuditBatches(q: AuditBatchQuery): Promise<StoredAuditBatch[]>;
  /** The last record's sequence number and hash; undefined for an empty log. */
  auditHead(): Promise<{ seq: number; hash: string } | undefined>;
  insertAuditCheckpoint(c: Checkpoint): Promise<void>;
  /** By sequence number. */
  listAuditCheckpoints(): Promise<Checkpoint[]>;
  startSession(s: NewSession): Promise<SessionRecord>;
  /** True when this call ended it; false when it does not exist or had already ended. */
  endSession(id: string, at: number, reason: string): Promise<boolean>;
  getSession(id: string): Promise<SessionRecord | undefined>;
  /** Newest first. */
  listSessions(q: SessionQuery): Promise<SessionRecord[]>;
  /**
   * One transaction: every statement or none. The statements may come laid out flat, as the
   * recorder gathers them (store/statement-batches.ts `StatementFields`).
   */
  insertStatements(statements: readonly NewStatement[] | StatementFields): Promise<void>;
  /**
   * Ordered by seq, a page at a time when asked (`StatementQuery`): a long session is read a few
   * batches at a time, and a page after a cursor starts at the batch that holds it.
   */
  listStatements(sessionId: string, q?: StatementQuery): Promise<StatementRecord[]>;
  /** Every recording, live sessions included: one aggregate over the rows of the statement batches (a full scan). */
  recordingUsage(): Promise<RecordingUsage>;
  /** Ended sessions, oldest end first (then by id), each with its statements and bytes. */
  listEndedSessions(q: EndedSessionQuery): Promise<EndedSession[]>;
  /**
   * One transaction: deletes those of these sessions that have ended, with their statements; a
   * live session is never deleted, an unknown id is skipped. At most `MAX_DELETE_BATCH` ids.
   * Audit events are never deleted.
   */
  deleteRecordings(ids: readonly string[]): Promise<DeletedRecordings>;
  /**
   * Numbers it after the last one (one transaction; concurrent writers retry). An access
   * approval (`requestId`) is linked from its access request in the same transaction.
   */
  insertApproval(a: NewApproval): Promise<ApprovalRecord>;
  getApproval(id: number): Promise<ApprovalRecord | undefined>;
  /** Newest first. */
  listApprovals(q: ApprovalQuery): Promise<ApprovalRecord[]>;
  /**
   * Decides a pending approval: true when this call did, false when it was no longer pending
   * (decided, expired or cancelled meanwhile), so that a decision is taken once. The access
   * request of an access approval is decided with it, in the same transaction: approved is
   * `granted`, denied is `denied` (with the reason), expired or cancelled is `expired`.
   */
  decideApproval(id: number, status: Exclude<ApprovalStatus, 'pending'>, at: number, by: string, reason: string | undefined): Promise<boolean>;
  /** Grants created in the window, counted per principal, connection and issuer. */
  grantActivity(window: TimeWindow): Promise<GrantActivity[]>;
  /** Grants neither revoked nor expired at `now`, each with the number of sessions that used it. */
  liveGrantActivity(now: number): Promise<LiveGrantActivity[]>;
  /** Sessions started in the window, counted per principal and connection. */
  sessionActivity(window: TimeWindow): Promise<SessionActivity[]>;
  /**
   * The statements of the sessions started in the window, counted per principal, connection,
   * text and outcome; at most `limit` such rows (the most frequent first).
   */
  statementActivity(window: TimeWindow, limit: number): Promise<StatementActivity[]>;
  insertReviewDecision(d: NewReviewDecision): Promise<ReviewDecisionRecord>;
  /** The last decision on each principal and connection that has one. */
  latestReviewDecisions(): Promise<ReviewDecisionRecord[]>;
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
/** Batches of the audit log a read opens at a time. */
const AUDIT_READ_BATCHES = 16;
/** The span of seqs a read of the audit log scans in one query (`listAudit`): 64 full batches. */
const AUDIT_SCAN_SEQS = 16_384;
/** Batches of a session's statements a read opens at a time (each up to 500 statements and their results). */
const STATEMENT_READ_BATCHES = 4;
/** Held (for the transaction) by every append to the audit chain on PostgreSQL. */
export const AUDIT_LOCK_KEY = 0x44_52_41_55; // "DRAU"

/** The bytes of the batches in a query's rows, as `BATCH_ROW_BYTES` says. */
const recordedBytes = sql<number | string>`coalesce(sum("bytes"), 0)`;

export interface StoreOptions {
  /**
   * SQLite: the hottest writes and the checkpoints on a thread of their own (store/writer-thread.ts),
   * for the gateway; `onWriterThreadFailure` hears why, when they are back on the store's own connection.
   */
  readonly writerThread?: boolean;
  readonly onWriterThreadFailure?: (error: unknown) => void;
}

/** `sqlite:<path>`, `sqlite::memory:`, `postgres://…` or `postgresql://…`. */
export async function openStore(url: string, options: StoreOptions = {}): Promise<Store> {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length);
    if (path === '') throw new Error('store URL sqlite: needs a path, e.g. sqlite:./.drawbridge/state.db');
    const backend = openSqlite(path);
    try {
      await migrateSqlite(backend);
    } catch (err) {
      await backend.db.destroy();
      throw err;
    }
    const own = sqliteHotWrites(backend);
    const thread =
      options.writerThread && path !== ':memory:'
        ? startWriterThread(backend.raw, path, own, options.onWriterThreadFailure ?? (() => {}))
        : undefined;
    const writes = thread ?? own;
    return new KyselyStore('sqlite', backend.db, {
      statements: writes.statements,
      audits: writes.audits,
      beforeClose: thread?.stop,
    });
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
    return new KyselyStore('postgres', db, { statements: postgresStatementWriter(db) });
  }
  // Never echo the URL: it may carry a password.
  const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(url)?.[0] ?? '(none)';
  throw new Error(`unsupported store URL scheme ${scheme}; expected sqlite:<path> or postgres://…`);
}

/**
 * Migrates a SQLite store in one IMMEDIATE transaction, which holds SQLite's one write lock from
 * the start: processes opening a store at once (the gateway and an administrative command, several
 * gateways) take turns, and each reads which migrations are done only once it holds the lock, so
 * none runs a migration another has run, or runs it on tables a later one has changed. Kysely's
 * migrator opens no transaction of its own on SQLite (its adapter says DDL is not transactional;
 * SQLite's is), so its statements all run in this one. A process that waits longer than the busy
 * timeout (a long migration of a large store) tries again.
 */
async function migrateSqlite(backend: SqliteBackend): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      backend.raw.exec('BEGIN IMMEDIATE');
    } catch (error) {
      if (attempt >= 5 || (error as { errcode?: number }).errcode !== SQLITE_BUSY) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
      continue;
    }
    try {
      await migrate(backend.db);
    } catch (error) {
      // SQLite rolls some failures back itself (a full disk).
      if (backend.raw.isTransaction) backend.raw.exec('ROLLBACK');
      throw error;
    }
    backend.raw.exec('COMMIT');
    return;
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
  if (e.code === '23505' || e.code === SEQ_TAKEN) return true; // PostgreSQL unique_violation; a statement recorded again
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

function toApproval(r: Selectable<ApprovalsTable>): ApprovalRecord {
  return {
    id: Number(r.id),
    kind: r.kind as ApprovalKind,
    status: r.status as ApprovalStatus,
    requester: r.requester,
    connection: r.connection,
    sessionId: orUndefined(r.session_id),
    requestId: orUndefined(r.request_id),
    statement: orUndefined(r.statement),
    params: r.params === null ? undefined : (JSON.parse(r.params) as (string | null)[]),
    policy: orUndefined(r.policy),
    reason: r.reason,
    approvers: r.approvers,
    preview: r.preview === null ? undefined : (JSON.parse(r.preview) as Record<string, unknown>),
    durationMs: r.duration_ms === null ? undefined : Number(r.duration_ms),
    createdAt: Number(r.created_at),
    expiresAt: Number(r.expires_at),
    decidedAt: r.decided_at === null ? undefined : Number(r.decided_at),
    decidedBy: orUndefined(r.decided_by),
    decisionReason: orUndefined(r.decision_reason),
  };
}

function toAccessRequest(r: Selectable<AccessRequestsTable>): AccessRequestRecord {
  return {
    id: r.id,
    principal: r.principal,
    connection: r.connection,
    durationMs: Number(r.duration_ms),
    reason: r.reason,
    requestedAt: Number(r.requested_at),
    status: r.status,
    decidedBy: orUndefined(r.decided_by),
    decidedAt: r.decided_at === null ? undefined : Number(r.decided_at),
    grantId: orUndefined(r.grant_id),
    approvalId: r.approval_id === null ? undefined : Number(r.approval_id),
    decisionReason: orUndefined(r.decision_reason),
    plan: r.plan === null || r.plan === undefined ? undefined : planOf(r.id, r.plan).steps,
  };
}

function toGrant(r: Selectable<GrantsTable>): GrantRecord {
  return {
    id: r.id,
    principal: r.principal,
    principalKind: r.principal_kind === 'service-account' ? 'service-account' : 'user',
    groups: jsonList(r.groups),
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
    plan: r.plan === null || r.plan === undefined ? undefined : planOf(r.id, r.plan),
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

/**
 * A stored plan (`{id, steps}` for a grant, the steps for a request). Fail closed: one that does
 * not read as a plan is a plan with no steps, which covers nothing, never "no plan".
 */
function planOf(owner: string, text: string): Plan {
  const strings = (v: unknown): string[] | undefined =>
    Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
  try {
    const value: unknown = JSON.parse(text);
    const plan = Array.isArray(value) ? { id: owner, steps: value as unknown[] } : (value as { id?: unknown; steps?: unknown });
    if (typeof plan.id !== 'string' || !Array.isArray(plan.steps)) return { id: owner, steps: [] };
    const steps: PlanStep[] = [];
    for (const raw of plan.steps as Record<string, unknown>[]) {
      const actions = strings(raw?.['actions']);
      const tables = strings(raw?.['tables']);
      const template = raw?.['template'];
      if (!actions || !tables || (template !== undefined && typeof template !== 'string')) return { id: plan.id, steps: [] };
      steps.push(template === undefined ? { actions, tables } : { actions, tables, template });
    }
    return { id: plan.id, steps };
  } catch {
    return { id: owner, steps: [] };
  }
}

const jsonList = (text: string): string[] => {
  const value: unknown = JSON.parse(text);
  // Fail closed: a list column that holds anything but strings is read as empty, never trusted.
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
};

function toAccount(r: Selectable<AccountsTable>): AccountRecord {
  return {
    name: r.name,
    kind: r.kind,
    passwordHash: orUndefined(r.password_hash),
    roles: jsonList(r.roles),
    groups: jsonList(r.groups),
    createdAt: Number(r.created_at),
    disabledAt: r.disabled_at === null ? undefined : Number(r.disabled_at),
    lastUsedAt: r.last_used_at === null ? undefined : Number(r.last_used_at),
    maxGrantMs: r.max_grant_ms === null ? undefined : Number(r.max_grant_ms),
    connections: r.connections === null ? undefined : jsonList(r.connections),
  };
}

function toServiceAccountKey(r: Selectable<ServiceAccountKeysTable>): ServiceAccountKeyRecord {
  return {
    id: r.id,
    account: r.account,
    keyHash: r.key_hash,
    createdAt: Number(r.created_at),
    revokedAt: r.revoked_at === null ? undefined : Number(r.revoked_at),
  };
}

function toGatewaySession(r: Selectable<GatewaySessionsTable>): GatewaySessionRecord {
  return {
    id: r.id,
    account: r.account,
    tokenHash: r.token_hash,
    refreshHash: r.refresh_hash,
    family: r.family,
    createdAt: Number(r.created_at),
    expiresAt: Number(r.expires_at),
    refreshExpiresAt: Number(r.refresh_expires_at),
    revokedAt: r.revoked_at === null ? undefined : Number(r.revoked_at),
    revokeReason: orUndefined(r.revoke_reason),
    via: r.via,
    groups: jsonList(r.groups),
  };
}

function gatewaySessionRow(s: NewGatewaySession): Selectable<GatewaySessionsTable> {
  const id = s.id ?? newId('gws');
  return {
    id,
    account: s.account,
    token_hash: s.tokenHash,
    refresh_hash: s.refreshHash,
    family: s.family ?? id,
    created_at: s.createdAt,
    expires_at: s.expiresAt,
    refresh_expires_at: s.refreshExpiresAt,
    revoked_at: null,
    revoke_reason: null,
    via: s.via,
    groups: JSON.stringify(s.groups),
  };
}

/** A connection's statements in a window: how many, refused, failed, and the last one's start. */
interface StatementCounts {
  connection: string;
  n: number;
  refused: number;
  failed: number;
  last: number;
}

/** What a backend does its own way, around the query builder: statements, and audit appends (else the query builder's). */
interface BackendWrites extends Pick<HotWrites, 'statements'>, Partial<Pick<HotWrites, 'audits'>> {
  /** Before the connection closes. */
  readonly beforeClose?: () => Promise<void>;
}

class KyselyStore implements Store {
  readonly kind: StoreKind;
  readonly #db: Kysely<Database>;
  readonly #backend: BackendWrites;

  constructor(kind: StoreKind, db: Kysely<Database>, backend: BackendWrites) {
    this.kind = kind;
    this.#db = db;
    this.#backend = backend;
  }

  async insertAccount(a: NewAccount): Promise<AccountRecord> {
    const row = {
      name: a.name,
      kind: a.kind,
      password_hash: a.passwordHash ?? null,
      roles: JSON.stringify(a.roles),
      groups: JSON.stringify(a.groups),
      created_at: a.createdAt,
      disabled_at: null,
      last_used_at: null,
      max_grant_ms: a.maxGrantMs ?? null,
      connections: a.connections === undefined ? null : JSON.stringify(a.connections),
    };
    await conflicts('an account with this name already exists', () => this.#db.insertInto('accounts').values(row).execute());
    return toAccount(row);
  }

  async getAccount(name: string): Promise<AccountRecord | undefined> {
    const r = await this.#db.selectFrom('accounts').selectAll().where('name', '=', name).executeTakeFirst();
    return r && toAccount(r);
  }

  async listAccounts(q: AccountQuery = {}): Promise<AccountRecord[]> {
    let query = this.#db.selectFrom('accounts').selectAll();
    if (q.kind !== undefined) query = query.where('kind', '=', q.kind);
    if (q.after !== undefined) query = query.where('name', '>', q.after);
    query = query.orderBy('name');
    if (q.limit !== undefined) query = query.limit(Math.max(0, Math.floor(q.limit)));
    return (await query.execute()).map(toAccount);
  }

  async updateAccount(name: string, c: AccountChanges): Promise<AccountRecord | undefined> {
    const set: Updateable<AccountsTable> = {};
    if (c.passwordHash !== undefined) set.password_hash = c.passwordHash;
    if (c.roles !== undefined) set.roles = JSON.stringify(c.roles);
    if (c.groups !== undefined) set.groups = JSON.stringify(c.groups);
    if (c.disabledAt !== undefined) set.disabled_at = c.disabledAt;
    if (c.lastUsedAt !== undefined) set.last_used_at = c.lastUsedAt;
    if (c.maxGrantMs !== undefined) set.max_grant_ms = c.maxGrantMs;
    if (c.connections !== undefined) set.connections = c.connections === null ? null : JSON.stringify(c.connections);
    if (Object.keys(set).length > 0) {
      await this.#db.updateTable('accounts').set(set).where('name', '=', name).execute();
    }
    return this.getAccount(name);
  }

  async replaceServiceAccountKey(key: NewServiceAccountKey): Promise<ServiceAccountKeyRecord> {
    const row = { id: key.id ?? newId('sak'), account: key.account, key_hash: key.keyHash, created_at: key.createdAt, revoked_at: null };
    await conflicts('a service-account key with this id or hash already exists', () =>
      this.#db.transaction().execute(async (trx) => {
        await trx
          .updateTable('service_account_keys')
          .set({ revoked_at: key.createdAt })
          .where('account', '=', key.account)
          .where('revoked_at', 'is', null)
          .execute();
        await trx.insertInto('service_account_keys').values(row).execute();
      }),
    );
    return toServiceAccountKey(row);
  }

  async findServiceAccountKeyByHash(hash: string): Promise<ServiceAccountKeyRecord | undefined> {
    const r = await this.#db.selectFrom('service_account_keys').selectAll().where('key_hash', '=', hash).executeTakeFirst();
    return r && toServiceAccountKey(r);
  }

  async listServiceAccountKeys(account: string): Promise<ServiceAccountKeyRecord[]> {
    const rows = await this.#db
      .selectFrom('service_account_keys')
      .selectAll()
      .where('account', '=', account)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .execute();
    return rows.map(toServiceAccountKey);
  }

  async principalUsage(principal: string, since: number, now: number): Promise<PrincipalUsage> {
    const db = this.#db;
    /** Grants issued or sessions started from `since` on, by connection: how many, and the latest. */
    const started = (table: 'grants' | 'sessions', at: 'created_at' | 'started_at') =>
      db
        .selectFrom(table)
        .select((eb) => ['connection', eb.fn.countAll().as('n'), eb.fn.max(sql.ref<number>(at)).as('last')])
        .where('principal', '=', principal)
        .where(sql.ref(at), '>=', since)
        .groupBy('connection')
        .execute();
    const [grants, sessions, statements, live, liveSessions, lastGrant, lastSession] = await Promise.all([
      started('grants', 'created_at'),
      started('sessions', 'started_at'),
      this.#statementsSince(principal, since),
      db
        .selectFrom('grants')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('principal', '=', principal)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', now)
        .executeTakeFirstOrThrow(),
      db
        .selectFrom('sessions')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('principal', '=', principal)
        .where('ended_at', 'is', null)
        .executeTakeFirstOrThrow(),
      db
        .selectFrom('grants')
        .selectAll()
        .where('principal', '=', principal)
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .limit(1)
        .executeTakeFirst(),
      db
        .selectFrom('sessions')
        .select((eb) => eb.fn.max('started_at').as('last'))
        .where('principal', '=', principal)
        .executeTakeFirst(),
    ]);
    const byConnection = new Map<string, { -readonly [K in keyof ConnectionUsage]: ConnectionUsage[K] }>();
    const entry = (connection: string, last: unknown) => {
      let usage = byConnection.get(connection);
      if (!usage) {
        usage = { connection, grants: 0, sessions: 0, statements: 0, refused: 0, failed: 0, lastUsedAt: 0 };
        byConnection.set(connection, usage);
      }
      usage.lastUsedAt = Math.max(usage.lastUsedAt, Number(last));
      return usage;
    };
    for (const g of grants) entry(g.connection, g.last).grants = Number(g.n);
    for (const s of sessions) entry(s.connection, s.last).sessions = Number(s.n);
    for (const s of statements) {
      const usage = entry(s.connection, s.last);
      usage.statements = Number(s.n);
      usage.refused = Number(s.refused);
      usage.failed = Number(s.failed);
    }
    const lastSessionAt = lastSession?.last;
    return {
      connections: [...byConnection.values()].sort((a, b) => (a.connection < b.connection ? -1 : a.connection > b.connection ? 1 : 0)),
      liveGrants: Number(live.n),
      liveSessions: Number(liveSessions.n),
      lastGrant: lastGrant && toGrant(lastGrant),
      lastSessionAt: lastSessionAt === null || lastSessionAt === undefined ? undefined : Number(lastSessionAt),
    };
  }

  async insertGatewaySession(s: NewGatewaySession): Promise<GatewaySessionRecord> {
    const row = gatewaySessionRow(s);
    await conflicts('a gateway session with this id or token hash already exists', () =>
      this.#db.insertInto('gateway_sessions').values(row).execute(),
    );
    return toGatewaySession(row);
  }

  async getGatewaySession(id: string): Promise<GatewaySessionRecord | undefined> {
    const r = await this.#db.selectFrom('gateway_sessions').selectAll().where('id', '=', id).executeTakeFirst();
    return r && toGatewaySession(r);
  }

  async findGatewaySessionByTokenHash(hash: string): Promise<GatewaySessionRecord | undefined> {
    const r = await this.#db.selectFrom('gateway_sessions').selectAll().where('token_hash', '=', hash).executeTakeFirst();
    return r && toGatewaySession(r);
  }

  async findGatewaySessionByRefreshHash(hash: string): Promise<GatewaySessionRecord | undefined> {
    const r = await this.#db.selectFrom('gateway_sessions').selectAll().where('refresh_hash', '=', hash).executeTakeFirst();
    return r && toGatewaySession(r);
  }

  async rotateGatewaySession(id: string, next: NewGatewaySession, at: number): Promise<GatewaySessionRecord | undefined> {
    const row = gatewaySessionRow(next);
    const rotated = await conflicts('a gateway session with this id or token hash already exists', () =>
      this.#db.transaction().execute(async (trx) => {
        const r = await trx
          .updateTable('gateway_sessions')
          .set({ revoked_at: at, revoke_reason: 'rotated' })
          .where('id', '=', id)
          .where('revoked_at', 'is', null)
          .executeTakeFirst();
        if (r.numUpdatedRows === 0n) return false;
        await trx.insertInto('gateway_sessions').values(row).execute();
        return true;
      }),
    );
    return rotated ? toGatewaySession(row) : undefined;
  }

  async revokeGatewaySession(id: string, at: number, reason: string): Promise<boolean> {
    const r = await this.#db
      .updateTable('gateway_sessions')
      .set({ revoked_at: at, revoke_reason: reason })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  async revokeGatewaySessionFamily(family: string, at: number, reason: string): Promise<number> {
    const r = await this.#db
      .updateTable('gateway_sessions')
      .set({ revoked_at: at, revoke_reason: reason })
      .where('family', '=', family)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows);
  }

  async revokeGatewaySessionsOf(account: string, at: number, reason: string): Promise<number> {
    const r = await this.#db
      .updateTable('gateway_sessions')
      .set({ revoked_at: at, revoke_reason: reason })
      .where('account', '=', account)
      .where('revoked_at', 'is', null)
      .where('refresh_expires_at', '>', at)
      .executeTakeFirst();
    return Number(r.numUpdatedRows);
  }

  async insertGrant(g: NewGrant): Promise<GrantRecord> {
    const row = {
      id: g.id ?? newId('grt'),
      principal: g.principal,
      principal_kind: g.principalKind,
      groups: JSON.stringify(g.groups),
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
      expiry_recorded_at: null,
      plan: g.plan === undefined ? null : JSON.stringify({ id: g.plan.id, steps: g.plan.steps }),
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

  async claimExpiredGrants(now: number, limit: number): Promise<GrantRecord[]> {
    const candidates = await this.#db
      .selectFrom('grants')
      .select('id')
      .where('expires_at', '<=', now)
      .where('revoked_at', 'is', null)
      .where('expiry_recorded_at', 'is', null)
      .orderBy('expires_at')
      .limit(limit)
      .execute();
    if (candidates.length === 0) return [];
    const claimed = await this.#db
      .updateTable('grants')
      .set({ expiry_recorded_at: now })
      .where(
        'id',
        'in',
        candidates.map((c) => c.id),
      )
      .where('expiry_recorded_at', 'is', null)
      .returningAll()
      .execute();
    return claimed.map(toGrant);
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
    const before = q.before;
    if (before !== undefined) {
      // A row value: an index range on (created_at, id), where the OR of its parts scans every newer row.
      query = query.where((eb) => eb(eb.refTuple('created_at', 'id'), '<', eb.tuple(before.createdAt, before.id)));
    }
    const rows = await query
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(Math.max(0, Math.floor(q.limit ?? 100)))
      .execute();
    return rows.map(toGrant);
  }

  async insertAccessRequest(request: NewAccessRequest): Promise<AccessRequestRecord> {
    const row = {
      id: newId('req'),
      principal: request.principal,
      connection: request.connection,
      duration_ms: request.durationMs,
      reason: request.reason,
      requested_at: request.requestedAt,
      status: 'pending' as const,
      decided_by: null,
      decided_at: null,
      grant_id: null,
      approval_id: null,
      decision_reason: null,
      plan: request.plan === undefined ? null : JSON.stringify(request.plan),
    };
    await this.#db.insertInto('access_requests').values(row).execute();
    return toAccessRequest(row);
  }

  async listAccessRequests(q: AccessRequestQuery): Promise<AccessRequestRecord[]> {
    let query = this.#db.selectFrom('access_requests').selectAll();
    if (q.principal !== undefined) query = query.where('principal', '=', q.principal);
    if (q.connection !== undefined) query = query.where('connection', '=', q.connection);
    if (q.status !== undefined) query = query.where('status', '=', q.status);
    const before = q.before;
    if (before !== undefined) {
      query = query.where((eb) => eb(eb.refTuple('requested_at', 'id'), '<', eb.tuple(before.requestedAt, before.id)));
    }
    const rows = await query
      .orderBy('requested_at', 'desc')
      .orderBy('id', 'desc')
      .limit(Math.max(0, Math.floor(q.limit ?? 100)))
      .execute();
    return rows.map(toAccessRequest);
  }

  async getAccessRequest(id: string): Promise<AccessRequestRecord | undefined> {
    const row = await this.#db.selectFrom('access_requests').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toAccessRequest(row);
  }

  async setAccessRequestGrant(id: string, grantId: string): Promise<boolean> {
    const result = await this.#db
      .updateTable('access_requests')
      .set({ grant_id: grantId })
      .where('id', '=', id)
      .where('status', '=', 'granted')
      .where('grant_id', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async appendAudit(event: NewAuditEvent): Promise<AuditRecord> {
    return (await this.appendAudits([event]))[0]!;
  }

  async appendAudits(events: readonly NewAuditEvent[], options: { readonly records?: boolean } = {}): Promise<AuditRecord[]> {
    if (events.length === 0) return [];
    if (this.#backend.audits) return this.#backend.audits(events, options.records ?? true);
    return this.#db.transaction().execute(async (trx) => {
      // SQLite: the transaction began IMMEDIATE, which already holds the one write lock.
      if (this.kind === 'postgres') await sql`select pg_advisory_xact_lock(${AUDIT_LOCK_KEY})`.execute(trx);
      const { rows } = await sql.raw<AuditHeadRow>(AUDIT_HEAD_SQL).execute(trx);
      const appended = chainInBatches(auditHead(rows[0]), auditFields(events), true);
      for (const b of appended.batches) await trx.insertInto('audit_batches').values(batchRow(b)).execute();
      return appended.records;
    });
  }

  async listAudit(q: AuditQuery): Promise<AuditRecord[]> {
    const limit = Math.max(0, Math.floor(q.limit ?? 100));
    const records: AuditRecord[] = [];
    // Where the log's batches start and end, and (after a cursor) where to start: batches hold
    // consecutive records and never overlap, so the first that can hold a record after afterSeq is
    // the last one to start at or before afterSeq + 1, found by the primary key (a page deep in a
    // long log is a seek, not a scan of every batch before it).
    const after = q.afterSeq === undefined ? null : q.afterSeq + 1;
    const [bounds] = (
      await sql<{ lowest: number | string | null; start: number | string | null; highest: number | string | null }>`
        select min(first_seq) as lowest, (select max(first_seq) from audit_batches where first_seq <= ${after}) as start,
          max(first_seq) as highest
        from audit_batches`.execute(this.#db)
    ).rows;
    if (bounds?.highest === null || bounds?.highest === undefined) return records;
    const last = Number(bounds.highest);
    // The batches that may hold a match, in order, a few at a time; the records in them are matched exactly.
    const holds = (text: string) =>
      this.kind === 'postgres' ? sql<boolean>`strpos(body, ${text}) > 0` : sql<boolean>`instr(body, ${text}) > 0`;
    let query = this.#db.selectFrom('audit_batches').select(['first_seq', 'body']).orderBy('first_seq').limit(AUDIT_READ_BATCHES);
    if (q.afterSeq !== undefined) query = query.where('last_seq', '>', q.afterSeq);
    if (q.since !== undefined) query = query.where('last_at', '>=', q.since);
    if (q.until !== undefined) query = query.where('first_at', '<', q.until);
    if (q.action !== undefined) query = query.where(holds(JSON.stringify(q.action)));
    if (q.subject !== undefined) query = query.where(holds(JSON.stringify(q.subject)));
    // A window of AUDIT_SCAN_SEQS at a time, the event loop given a turn between windows: a filter
    // that matches little reads through much of the log, and a SQLite store answers a query at once,
    // its one thread stopped for as long as the query scans.
    for (let from = Number(bounds.start ?? bounds.lowest); records.length < limit && from <= last; ) {
      const to = from + AUDIT_SCAN_SEQS;
      const batches = await query.where('first_seq', '>=', from).where('first_seq', '<', to).execute();
      for (const b of batches) {
        for (const r of unbatchAudits(Number(b.first_seq), b.body)) {
          if (q.afterSeq !== undefined && !(r.seq > q.afterSeq)) continue;
          if (q.since !== undefined && !(r.at >= q.since)) continue;
          if (q.until !== undefined && !(r.at < q.until)) continue;
          if (q.action !== undefined && r.action !== q.action) continue;
          if (q.subject !== undefined && r.subject !== q.subject) continue;
          records.push(r);
          if (records.length === limit) return records;
        }
      }
      if (batches.length === AUDIT_READ_BATCHES) {
        from = Number(batches.at(-1)!.first_seq) + 1; // more in this window
        continue;
      }
      from = to;
      if (from <= last) await new Promise((resolve) => setImmediate(resolve));
    }
    return records;
  }

  async listAuditBatches(q: AuditBatchQuery): Promise<StoredAuditBatch[]> {
    let query = this.#db.selectFrom('audit_batches').select(['first_seq', 'body']).orderBy('first_seq').limit(q.limit);
    if (q.fromSeq !== undefined) query = query.where('first_seq', '>=', q.fromSeq);
    if (q.beforeSeq !== undefined) query = query.where('first_seq', '<', q.beforeSeq);
    if (q.afterFirstSeq !== undefined) query = query.where('first_seq', '>', q.afterFirstSeq);
    const rows = await query.execute();
    return rows.map((r) => ({ firstSeq: Number(r.first_seq), body: r.body }));
  }

  async auditHead(): Promise<{ seq: number; hash: string } | undefined> {
    const [head] = (await sql.raw<AuditHeadRow>(AUDIT_HEAD_SQL).execute(this.#db)).rows;
    return head === undefined ? undefined : { seq: Number(head.last_seq), hash: head.last_hash ?? '' };
  }

  async insertAuditCheckpoint(c: Checkpoint): Promise<void> {
    await this.#db
      .insertInto('audit_checkpoints')
      .values({ seq: c.seq, hash: c.hash, at: c.at, key_id: c.keyId, signature: c.signature })
      // Two gateways may sign the same head: one checkpoint per record is enough.
      .onConflict((oc) => oc.column('seq').doNothing())
      .execute();
  }

  async listAuditCheckpoints(): Promise<Checkpoint[]> {
    const rows = await this.#db.selectFrom('audit_checkpoints').selectAll().orderBy('seq').execute();
    return rows.map((r) => ({ seq: Number(r.seq), hash: r.hash, at: Number(r.at), keyId: r.key_id, signature: r.signature }));
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
    if (q.since !== undefined) query = query.where('started_at', '>=', q.since);
    const before = q.before;
    if (before !== undefined) {
      // A row value, as in listGrants: an index range, not a scan of every newer session.
      query = query.where((eb) => eb(eb.refTuple('started_at', 'id'), '<', eb.tuple(before.startedAt, before.id)));
    }
    const rows = await query
      .orderBy('started_at', 'desc')
      .orderBy('id', 'desc')
      .limit(Math.max(0, Math.floor(q.limit ?? 100)))
      .execute();
    return rows.map(toSession);
  }

  /**
   * A principal's statements started at `since` or later, by connection. A batch that started in
   * the window counts whole, from its row; the few that straddle its start are opened.
   */
  async #statementsSince(principal: string, since: number): Promise<StatementCounts[]> {
    const batches = this.#db
      .selectFrom('statement_batches as b')
      .innerJoin('sessions as se', 'se.id', 'b.session_id')
      .where('se.principal', '=', principal)
      // A session that ended before the window ran nothing in it: its statements are not read.
      .where((eb) => eb.or([eb('se.ended_at', 'is', null), eb('se.ended_at', '>=', since)]));
    const [whole, straddling] = await Promise.all([
      batches
        .select((eb) => [
          'se.connection',
          eb.fn.sum('b.statements').as('n'),
          eb.fn.sum('b.refused').as('refused'),
          eb.fn.sum('b.failed').as('failed'),
          eb.fn.max('b.last_at').as('last'),
        ])
        .where('b.first_at', '>=', since)
        .groupBy('se.connection')
        .execute(),
      batches.select(['se.connection', 'b.session_id', 'b.body']).where('b.first_at', '<', since).where('b.last_at', '>=', since).execute(),
    ]);
    const byConnection = new Map(
      whole.map((w) => [
        w.connection,
        { connection: w.connection, n: Number(w.n), refused: Number(w.refused), failed: Number(w.failed), last: Number(w.last) },
      ]),
    );
    for (const b of straddling) {
      for (const statement of unbatchStatements(b.session_id, b.body)) {
        if (statement.startedAt < since) continue;
        let usage = byConnection.get(b.connection);
        if (usage === undefined) {
          usage = { connection: b.connection, n: 0, refused: 0, failed: 0, last: statement.startedAt };
          byConnection.set(b.connection, usage);
        }
        usage.n++;
        if (statement.outcome === 'denied') usage.refused++;
        if (statement.outcome === 'error') usage.failed++;
        usage.last = Math.max(usage.last, statement.startedAt);
      }
    }
    return [...byConnection.values()];
  }

  async insertStatements(statements: readonly NewStatement[] | StatementFields): Promise<void> {
    if (statements.length === 0) return;
    // Flat fields begin with a session id; a list of statements, with a statement.
    const fields = typeof statements[0] === 'string' ? (statements as StatementFields) : statementFields(statements as NewStatement[]);
    await conflicts('a statement with this session seq already exists', async () => this.#backend.statements(fields));
  }

  async listStatements(sessionId: string, q: StatementQuery = {}): Promise<StatementRecord[]> {
    const limit = q.limit === undefined ? Infinity : Math.max(0, Math.floor(q.limit));
    const statements: StatementRecord[] = [];
    let query = this.#db
      .selectFrom('statement_batches')
      .select(['first_seq', 'body'])
      .where('session_id', '=', sessionId)
      .orderBy('first_seq')
      .limit(STATEMENT_READ_BATCHES);
    if (q.afterSeq !== undefined) {
      // A session's batches never overlap: as for the audit log's (listAudit), the first that can
      // hold a statement after afterSeq is the last one to start at or before afterSeq + 1.
      const from = sql<number>`(select coalesce(max(first_seq), 0) from statement_batches where session_id = ${sessionId} and first_seq <= ${q.afterSeq + 1})`;
      query = query.where('first_seq', '>=', from).where('last_seq', '>', q.afterSeq);
    }
    for (let after: number | undefined; statements.length < limit; ) {
      const batches = await (after === undefined ? query : query.where('first_seq', '>', after)).execute();
      for (const b of batches) {
        for (const statement of unbatchStatements(sessionId, b.body)) {
          if (q.afterSeq !== undefined && !(statement.seq > q.afterSeq)) continue;
          statements.push(statement);
          if (statements.length === limit) return statements;
        }
      }
      if (batches.length < STATEMENT_READ_BATCHES) break;
      after = Number(batches.at(-1)!.first_seq);
    }
    return statements;
  }

  async recordingUsage(): Promise<RecordingUsage> {
    const [sessions, statements] = await Promise.all([
      this.#db
        .selectFrom('sessions')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow(),
      this.#db
        .selectFrom('statement_batches')
        .select((eb) => [eb.fn.sum('statements').as('n'), recordedBytes.as('bytes')])
        .executeTakeFirstOrThrow(),
    ]);
    return { sessions: Number(sessions.n), statements: Number(statements.n ?? 0), bytes: Number(statements.bytes) };
  }

  async listEndedSessions(q: EndedSessionQuery): Promise<EndedSession[]> {
    let query = this.#db.selectFrom('sessions').select(['id', 'started_at', 'ended_at']).where('ended_at', 'is not', null);
    if (q.endedBefore !== undefined) query = query.where('ended_at', '<', q.endedBefore);
    const after = q.after;
    if (after !== undefined) {
      // A row value, as in listGrants: an index range on (ended_at, id).
      query = query.where((eb) => eb(eb.refTuple('ended_at', 'id'), '>', eb.tuple(after.endedAt, after.id)));
    }
    // The sessions first (an index range, `sessions_ended`), then their batches by primary key:
    // grouping in the same query would aggregate every ended session before the limit applies.
    const sessions = await query
      .orderBy('ended_at')
      .orderBy('id')
      .limit(Math.max(0, Math.floor(q.limit)))
      .execute();
    if (sessions.length === 0) return [];
    const sizes = await this.#recordingSizes(
      this.#db,
      sessions.map((s) => s.id),
    );
    return sessions.map((s) => ({
      id: s.id,
      startedAt: Number(s.started_at),
      endedAt: Number(s.ended_at),
      statements: sizes.get(s.id)?.statements ?? 0,
      bytes: sizes.get(s.id)?.bytes ?? 0,
    }));
  }

  async deleteRecordings(ids: readonly string[]): Promise<DeletedRecordings> {
    const none: DeletedRecordings = { sessions: 0, statements: 0, bytes: 0, oldestStartedAt: undefined, newestEndedAt: undefined };
    if (ids.length === 0) return none;
    if (ids.length > MAX_DELETE_BATCH) throw new RangeError(`deleteRecordings takes at most ${MAX_DELETE_BATCH} ids, got ${ids.length}`);
    return this.#db.transaction().execute(async (trx) => {
      // Only ended sessions: a live one is still being recorded. An ended session never ends
      // again nor grows (the recorder writes its statements before its end), so what is read
      // here is what is deleted.
      const ended = await trx
        .selectFrom('sessions')
        .select(['id', 'started_at', 'ended_at'])
        .where('id', 'in', [...ids])
        .where('ended_at', 'is not', null)
        .execute();
      if (ended.length === 0) return none;
      const doomed = ended.map((s) => s.id);
      const sizes = await this.#recordingSizes(trx, doomed);
      // Statements first: the foreign key cascades too, but this does not rely on it.
      await trx.deleteFrom('statement_batches').where('session_id', 'in', doomed).execute();
      await trx.deleteFrom('sessions').where('id', 'in', doomed).where('ended_at', 'is not', null).execute();
      let statements = 0;
      let bytes = 0;
      for (const size of sizes.values()) {
        statements += size.statements;
        bytes += size.bytes;
      }
      return {
        sessions: ended.length,
        statements,
        bytes,
        oldestStartedAt: Math.min(...ended.map((s) => Number(s.started_at))),
        newestEndedAt: Math.max(...ended.map((s) => Number(s.ended_at))),
      };
    });
  }

  /** Statements and bytes of each of these sessions that has any. */
  async #recordingSizes(db: Kysely<Database>, ids: readonly string[]): Promise<Map<string, { statements: number; bytes: number }>> {
    const rows = await db
      .selectFrom('statement_batches')
      .select((eb) => ['session_id', eb.fn.sum('statements').as('n'), recordedBytes.as('bytes')])
      .where('session_id', 'in', [...ids])
      .groupBy('session_id')
      .execute();
    return new Map(rows.map((r) => [r.session_id, { statements: Number(r.n), bytes: Number(r.bytes) }]));
  }

  async insertApproval(a: NewApproval): Promise<ApprovalRecord> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#db.transaction().execute(async (trx) => {
          const last = await trx.selectFrom('approvals').select((eb) => eb.fn.max('id').as('id')).executeTakeFirst();
          const row = {
            id: Number(last?.id ?? 0) + 1,
            kind: a.kind,
            status: 'pending',
            requester: a.requester,
            connection: a.connection,
            session_id: a.sessionId ?? null,
            request_id: a.requestId ?? null,
            statement: a.statement ?? null,
            params: a.params === undefined ? null : JSON.stringify(a.params),
            policy: a.policy ?? null,
            reason: a.reason,
            approvers: a.approvers,
            preview: a.preview === undefined ? null : JSON.stringify(a.preview),
            duration_ms: a.durationMs ?? null,
            created_at: a.createdAt,
            expires_at: a.expiresAt,
            decided_at: null,
            decided_by: null,
            decision_reason: null,
          };
          await trx.insertInto('approvals').values(row).execute();
          if (a.requestId !== undefined) {
            await trx.updateTable('access_requests').set({ approval_id: row.id }).where('id', '=', a.requestId).execute();
          }
          return toApproval(row);
        });
      } catch (error) {
        // Another gateway on the same PostgreSQL store took the number: take the next.
        if (attempt < 5 && isUniqueViolation(error)) continue;
        throw error;
      }
    }
  }

  async getApproval(id: number): Promise<ApprovalRecord | undefined> {
    const row = await this.#db.selectFrom('approvals').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toApproval(row);
  }

  async listApprovals(q: ApprovalQuery): Promise<ApprovalRecord[]> {
    let query = this.#db.selectFrom('approvals').selectAll();
    if (q.status !== undefined) query = query.where('status', '=', q.status);
    if (q.requester !== undefined) query = query.where('requester', '=', q.requester);
    if (q.kind !== undefined) query = query.where('kind', '=', q.kind);
    if (q.beforeId !== undefined) query = query.where('id', '<', q.beforeId);
    if (q.ids !== undefined) {
      if (q.ids.length === 0) return [];
      query = query.where('id', 'in', [...q.ids]);
    }
    const rows = await query
      .orderBy('id', 'desc')
      .limit(Math.max(0, Math.floor(q.limit ?? 100)))
      .execute();
    return rows.map(toApproval);
  }

  async decideApproval(
    id: number,
    status: Exclude<ApprovalStatus, 'pending'>,
    at: number,
    by: string,
    reason: string | undefined,
  ): Promise<boolean> {
    return this.#db.transaction().execute(async (trx) => {
      const result = await trx
        .updateTable('approvals')
        .set({ status, decided_at: at, decided_by: by, decision_reason: reason ?? null })
        .where('id', '=', id)
        .where('status', '=', 'pending')
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) !== 1) return false;
      const approval = await trx.selectFrom('approvals').select('request_id').where('id', '=', id).executeTakeFirst();
      if (approval?.request_id) {
        await trx
          .updateTable('access_requests')
          .set({
            status: status === 'approved' ? 'granted' : status === 'denied' ? 'denied' : 'expired',
            decided_at: at,
            decided_by: by,
            decision_reason: reason ?? null,
          })
          .where('id', '=', approval.request_id)
          .where('status', '=', 'pending')
          .execute();
      }
      return true;
    });
  }

  async grantActivity(window: TimeWindow): Promise<GrantActivity[]> {
    const rows = await this.#db
      .selectFrom('grants as g')
      .select((eb) => [
        'g.principal',
        'g.connection',
        'g.granted_by',
        eb.fn.countAll().as('issued'),
        eb.fn.max('g.created_at').as('last'),
        sql<number | string>`sum(case when exists (select 1 from sessions s where s.grant_id = g.id) then 0 else 1 end)`.as('unused'),
      ])
      .where('g.created_at', '>=', window.since)
      .where('g.created_at', '<', window.until)
      .groupBy(['g.principal', 'g.connection', 'g.granted_by'])
      .execute();
    return rows.map((r) => ({
      principal: r.principal,
      connection: r.connection,
      grantedBy: r.granted_by,
      issued: Number(r.issued),
      unused: Number(r.unused),
      lastIssuedAt: Number(r.last),
    }));
  }

  async liveGrantActivity(now: number): Promise<LiveGrantActivity[]> {
    const rows = await this.#db
      .selectFrom('grants as g')
      .selectAll('g')
      .select(sql<number | string>`(select count(*) from sessions s where s.grant_id = g.id)`.as('sessions'))
      .where('g.revoked_at', 'is', null)
      .where('g.expires_at', '>', now)
      .orderBy('g.created_at', 'desc')
      .execute();
    return rows.map((r) => ({ grant: toGrant(r), sessions: Number(r.sessions) }));
  }

  async sessionActivity(window: TimeWindow): Promise<SessionActivity[]> {
    const rows = await this.#db
      .selectFrom('sessions')
      .select((eb) => [
        'principal',
        'connection',
        eb.fn.countAll().as('sessions'),
        sql<number | string>`sum(case when ended_at is null then 1 else 0 end)`.as('live'),
        eb.fn.max('started_at').as('last'),
      ])
      .where('started_at', '>=', window.since)
      .where('started_at', '<', window.until)
      .groupBy(['principal', 'connection'])
      .execute();
    return rows.map((r) => ({
      principal: r.principal,
      connection: r.connection,
      sessions: Number(r.sessions),
      live: Number(r.live),
      lastStartedAt: Number(r.last),
    }));
  }

  async statementActivity(window: TimeWindow, limit: number): Promise<StatementActivity[]> {
    // Grouped by text: an application repeats a few statements many times, and the review
    // classifies each distinct text once. Each batch's statements are opened by the database's
    // JSON functions (tuples: [seq, text, startedAt, …, outcome, …]).
    const sqlite = this.kind === 'sqlite';
    const statements = sqlite ? sql`json_each(b.body) as j` : sql`lateral json_array_elements(b.body::json) as j(value)`;
    const [text, outcome, startedAt] = sqlite
      ? [sql`json_extract(j.value, '$[1]')`, sql`json_extract(j.value, '$[5]')`, sql`json_extract(j.value, '$[2]')`]
      : [sql`j.value->>1`, sql`j.value->>5`, sql`(j.value->>2)::bigint`];
    type Row = { principal: string; connection: string; text: string; outcome: StatementOutcome; n: number | string; last: number };
    const { rows } = await sql<Row>`
      select s.principal, s.connection, ${text} as text, ${outcome} as outcome, count(*) as n, max(${startedAt}) as last
      from sessions as s join statement_batches as b on b.session_id = s.id cross join ${statements}
      where s.started_at >= ${window.since} and s.started_at < ${window.until}
      group by s.principal, s.connection, ${text}, ${outcome}
      order by count(*) desc
      limit ${Math.max(0, Math.floor(limit))}`.execute(this.#db);
    return rows.map((r) => ({
      principal: r.principal,
      connection: r.connection,
      text: r.text,
      outcome: r.outcome,
      count: Number(r.n),
      lastAt: Number(r.last),
    }));
  }

  async insertReviewDecision(d: NewReviewDecision): Promise<ReviewDecisionRecord> {
    const row = {
      id: newId('rvd'),
      principal: d.principal,
      connection: d.connection,
      decision: d.decision,
      note: d.note,
      decided_by: d.decidedBy,
      decided_at: d.decidedAt,
      grants_revoked: JSON.stringify(d.grantsRevoked),
    };
    await this.#db.insertInto('review_decisions').values(row).execute();
    return toReviewDecision(row);
  }

  async latestReviewDecisions(): Promise<ReviewDecisionRecord[]> {
    const rows = await this.#db
      .selectFrom('review_decisions as d')
      .selectAll('d')
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('review_decisions as later')
              .select('later.id')
              .whereRef('later.principal', '=', 'd.principal')
              .whereRef('later.connection', '=', 'd.connection')
              .where((eb) =>
                eb.or([
                  eb('later.decided_at', '>', eb.ref('d.decided_at')),
                  eb.and([eb('later.decided_at', '=', eb.ref('d.decided_at')), eb('later.id', '>', eb.ref('d.id'))]),
                ]),
              ),
          ),
        ),
      )
      .orderBy('d.principal')
      .orderBy('d.connection')
      .execute();
    return rows.map(toReviewDecision);
  }

  async close(): Promise<void> {
    await this.#backend.beforeClose?.();
    await this.#db.destroy();
  }
}

function toReviewDecision(r: Selectable<ReviewDecisionsTable>): ReviewDecisionRecord {
  return {
    id: r.id,
    principal: r.principal,
    connection: r.connection,
    decision: r.decision === 'revoked' ? 'revoked' : 'certified',
    note: r.note,
    decidedBy: r.decided_by,
    decidedAt: Number(r.decided_at),
    grantsRevoked: jsonList(r.grants_revoked),
  };
}
