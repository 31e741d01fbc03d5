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
}

export interface AuditEventsTable {
  seq: Generated<number>;
  at: Millis;
  actor: string;
  action: string;
  subject: string;
  outcome: 'success' | 'failure';
  /** JSON object. */
  details: string;
  prev_hash: string | null;
  hash: string | null;
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

export interface StatementsTable {
  session_id: string;
  seq: number;
  text: string;
  started_at: Millis;
  duration_ms: number;
  rows: number | null;
  outcome: 'ok' | 'error' | 'denied' | 'cancelled';
  error_code: string | null;
  error_message: string | null;
}

export interface Database {
  grants: GrantsTable;
  sessions: SessionsTable;
  statements: StatementsTable;
  audit_events: AuditEventsTable;
}
