/**
 * Kysely table types of the state store: the one description of the tables that both
 * backends share. Times are epoch milliseconds stored as 64-bit integers (BIGINT in
 * PostgreSQL, INTEGER in SQLite), so that both backends compare and sort them the same way.
 */

import type { ColumnType, Generated } from 'kysely';

/** Written as a number, read as a number (PostgreSQL's BIGINT is parsed by the store's own pool). */
type Millis = ColumnType<number, number, number>;

export interface GrantsTable {
  id: string;
  principal: string;
  /** 'user' | 'service-account', as the principal was when granted. */
  principal_kind: string;
  /** JSON list of the principal's groups when granted. */
  groups: string;
  connection: string;
  /** Hex SHA-256 of the credential; the credential itself is never stored. */
  token_hash: string;
  scram_salt: string;
  scram_iterations: number;
  scram_stored_key: string;
  scram_server_key: string;
  reason: string | null;
  granted_by: string;
  created_at: Millis;
  expires_at: Millis;
  revoked_at: Millis | null;
  revoked_by: string | null;
  revoke_reason: string | null;
  expiry_recorded_at: Millis | null;
  /** JSON `{id, steps}` of a plan-scoped grant's plan. */
  plan: string | null;
}

/** The audit log, in batches of consecutive records (store/audit-batches.ts). */
export interface AuditBatchesTable {
  first_seq: number;
  last_seq: number;
  /** The earliest and the latest time of its records. */
  first_at: Millis;
  last_at: Millis;
  /** The hash of its last record: the head, when it is the last batch. */
  last_hash: string | null;
  /** JSON list of the records, as `BatchedRecord` tuples. */
  body: string;
}

/** Signed heads of the audit chain (see audit/chain.ts). */
export interface AuditCheckpointsTable {
  seq: number;
  hash: string;
  at: Millis;
  key_id: string;
  signature: string;
}

export interface SessionsTable {
  id: string;
  protocol: string;
  principal: string;
  connection: string;
  grant_id: string;
  client_address: string;
  started_at: Millis;
  ended_at: Millis | null;
  end_reason: string | null;
}

/** A session's statements recorded together (store/statement-batches.ts). */
export interface StatementBatchesTable {
  session_id: string;
  first_seq: number;
  last_seq: number;
  first_at: Millis;
  last_at: Millis;
  statements: number;
  refused: number;
  failed: number;
  bytes: number;
  /** JSON: the statements, each a tuple (statement-batches.ts `BatchedStatement`). */
  body: string;
}

export interface AccountsTable {
  /** Unique also case-insensitively: `Alice` cannot sit beside `alice`. */
  name: string;
  kind: 'user' | 'service-account';
  /** PHC scrypt string; null for service accounts and for users who log in through OIDC only. */
  password_hash: string | null;
  /** JSON array of role names. */
  roles: string;
  /** JSON array of group names. */
  groups: string;
  created_at: Millis;
  disabled_at: Millis | null;
  last_used_at: Millis | null;
  max_grant_ms: Millis | null;
  /** JSON array of connection names, or null for any. */
  connections: string | null;
}

export interface ServiceAccountKeysTable {
  id: string;
  account: string;
  /** Hex SHA-256 of the key; the key itself is never stored. */
  key_hash: string;
  created_at: Millis;
  revoked_at: Millis | null;
}

export interface GatewaySessionsTable {
  id: string;
  account: string;
  /** Hex SHA-256 of the session token. */
  token_hash: string;
  /** Hex SHA-256 of the refresh token. */
  refresh_hash: string;
  /** The id of the first session of a refresh chain; every rotation keeps it. */
  family: string;
  created_at: Millis;
  expires_at: Millis;
  refresh_expires_at: Millis;
  revoked_at: Millis | null;
  /** `rotated`, `logout`, `refresh-reuse`, `account-disabled`, … */
  revoke_reason: string | null;
  /** How the login that started the family authenticated. */
  via: string;
  /** JSON array of group names, as at login. */
  groups: string;
}

export interface AccessRequestsTable {
  id: string;
  principal: string;
  connection: string;
  duration_ms: number;
  reason: string;
  requested_at: Millis;
  /** pending until its approval is decided; a granted request names its grant once the credential is picked up. */
  status: 'pending' | 'granted' | 'denied' | 'expired';
  decided_by: string | null;
  decided_at: Millis | null;
  /** Set when the requester picks up the credential of a granted request (or at once, without approval). */
  grant_id: string | null;
  /** The approval that decides it. */
  approval_id: number | null;
  /** Why it was denied (the approver's reason). */
  decision_reason: string | null;
  /** JSON list of the plan's steps, for a request that comes with a plan. */
  plan: string | null;
}

/** A request for a person's decision: a held statement, or an access request that needs approval. */
export interface ApprovalsTable {
  id: number;
  /** 'statement' | 'access'. */
  kind: string;
  /** 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled'. */
  status: string;
  requester: string;
  connection: string;
  /** The live session a statement is held in. */
  session_id: string | null;
  /** The access request an access approval decides. */
  request_id: string | null;
  /** The held text, exactly (masked in nothing: it is what would run). */
  statement: string | null;
  /** JSON list of the held parameters (text, or null), when the statement has any. */
  params: string | null;
  /** The policy that holds it and why, or the requester's reason for access. */
  policy: string | null;
  reason: string;
  /** The group whose members may decide. */
  approvers: string;
  /** JSON: what the gateway could tell of the statement's reach (the blast-radius preview). */
  preview: string | null;
  created_at: Millis;
  expires_at: Millis;
  decided_at: Millis | null;
  decided_by: string | null;
  decision_reason: string | null;
  /** For access: how long the grant lasts once approved. */
  duration_ms: Millis | null;
}

/** A reviewer's decision on a principal's access to a connection (access review). */
export interface ReviewDecisionsTable {
  id: string;
  principal: string;
  connection: string;
  decision: 'certified' | 'revoked';
  note: string;
  decided_by: string;
  decided_at: Millis;
  /** JSON list of the grant ids a revoke ended. */
  grants_revoked: string;
}

export interface Database {
  review_decisions: ReviewDecisionsTable;
  approvals: ApprovalsTable;
  access_requests: AccessRequestsTable;
  accounts: AccountsTable;
  service_account_keys: ServiceAccountKeysTable;
  gateway_sessions: GatewaySessionsTable;
  grants: GrantsTable;
  sessions: SessionsTable;
  statement_batches: StatementBatchesTable;
  audit_batches: AuditBatchesTable;
  audit_checkpoints: AuditCheckpointsTable;
}
