/**
 * The store's migrations, in code, in order. Each runs once per store (Kysely's Migrator
 * records them); the same DDL serves SQLite and PostgreSQL. Never edit a migration that
 * has shipped: add the next one.
 */

import { sql, type Kysely, type Migration, type MigrationProvider, SqliteAdapter } from 'kysely';
import { GENESIS_HASH, recordHash } from '../audit/chain.ts';
import { AUDIT_BATCH_RECORDS, batchFields, batchRow } from './audit-batches.ts';
import type { AuditBatchesTable } from './schema.ts';
import { BATCH_ROW_BYTES } from './statement-batches.ts';

export const MIGRATION_TABLE = 'drawbridge_migration';
export const MIGRATION_LOCK_TABLE = 'drawbridge_migration_lock';

/** A row of `audit_events`, the audit log's table from 0002 until 0016 put it in batches. */
interface AuditEventsRow {
  seq: number;
  at: number;
  actor: string;
  action: string;
  subject: string;
  outcome: string;
  details: string;
  prev_hash: string | null;
  hash: string | null;
}

const migrations: Record<string, Migration> = {
  '0001_grants_sessions_statements': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('grants')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('principal', 'text', (c) => c.notNull())
        .addColumn('connection', 'text', (c) => c.notNull())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('scram_salt', 'text', (c) => c.notNull())
        .addColumn('scram_iterations', 'integer', (c) => c.notNull())
        .addColumn('scram_stored_key', 'text', (c) => c.notNull())
        .addColumn('scram_server_key', 'text', (c) => c.notNull())
        .addColumn('reason', 'text')
        .addColumn('granted_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema.createIndex('grants_principal_connection').on('grants').columns(['principal', 'connection', 'expires_at']).execute();

      await db.schema
        .createTable('sessions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('protocol', 'text', (c) => c.notNull())
        .addColumn('principal', 'text', (c) => c.notNull())
        .addColumn('connection', 'text', (c) => c.notNull())
        .addColumn('grant_id', 'text', (c) => c.notNull())
        .addColumn('client_address', 'text', (c) => c.notNull())
        .addColumn('started_at', 'bigint', (c) => c.notNull())
        .addColumn('ended_at', 'bigint')
        .addColumn('end_reason', 'text')
        .execute();
      await db.schema.createIndex('sessions_started').on('sessions').columns(['started_at', 'id']).execute();
      await db.schema.createIndex('sessions_principal').on('sessions').columns(['principal', 'started_at']).execute();
      await db.schema.createIndex('sessions_connection').on('sessions').columns(['connection', 'started_at']).execute();
      await db.schema.createIndex('sessions_grant').on('sessions').column('grant_id').execute();

      await db.schema
        .createTable('statements')
        .addColumn('session_id', 'text', (c) => c.notNull().references('sessions.id').onDelete('cascade'))
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('text', 'text', (c) => c.notNull())
        .addColumn('started_at', 'bigint', (c) => c.notNull())
        .addColumn('duration_ms', 'double precision', (c) => c.notNull())
        .addColumn('rows', 'bigint')
        .addColumn('outcome', 'text', (c) => c.notNull().check(sql`outcome in ('ok', 'error', 'denied', 'cancelled')`))
        .addColumn('error_code', 'text')
        .addColumn('error_message', 'text')
        .addPrimaryKeyConstraint('statements_pkey', ['session_id', 'seq'])
        // SQLite: the primary key is the table, one B-tree to write per statement instead of two.
        .$call((table) => (db.getExecutor().adapter instanceof SqliteAdapter ? table.modifyEnd(sql`without rowid`) : table))
        .execute();
    },
  },
  '0002_revocation_audit': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('grants').addColumn('revoked_by', 'text').execute();
      await db.schema.alterTable('grants').addColumn('revoke_reason', 'text').execute();
      // Running gateways poll for revocations; this keeps the poll an index range scan.
      await db.schema.createIndex('grants_revoked').on('grants').column('revoked_at').execute();
      const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
      await db.schema
        .createTable('audit_events')
        // The order of the log: a gap-free sequence assigned by the store.
        .addColumn('seq', sqlite ? 'integer' : 'bigserial', (c) => c.primaryKey().notNull())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('outcome', 'text', (c) => c.notNull().check(sql`outcome in ('success', 'failure')`))
        .addColumn('details', 'text', (c) => c.notNull())
        // Filled by the tamper-evident log: the hash of the previous record and of this one.
        .addColumn('prev_hash', 'text')
        .addColumn('hash', 'text')
        .execute();
      await db.schema.createIndex('audit_events_at').on('audit_events').columns(['at', 'seq']).execute();
    },
  },
  '0003_accounts': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('accounts')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('user', 'service-account')`))
        .addColumn('password_hash', 'text')
        .addColumn('roles', 'text', (c) => c.notNull())
        .addColumn('groups', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('disabled_at', 'bigint')
        .addColumn('last_used_at', 'bigint')
        .addColumn('max_grant_ms', 'bigint')
        .addColumn('connections', 'text')
        .execute();
      // Names differing only in case would look like one person in every list and log.
      await db.schema
        .createIndex('accounts_name_lower')
        .on('accounts')
        .unique()
        .expression(sql`lower(name)`)
        .execute();

      await db.schema
        .createTable('service_account_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account', 'text', (c) => c.notNull().references('accounts.name').onDelete('cascade'))
        .addColumn('key_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema.createIndex('service_account_keys_account').on('service_account_keys').column('account').execute();

      await db.schema
        .createTable('gateway_sessions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account', 'text', (c) => c.notNull().references('accounts.name').onDelete('cascade'))
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('refresh_hash', 'text', (c) => c.notNull().unique())
        .addColumn('family', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('refresh_expires_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .addColumn('revoke_reason', 'text')
        .addColumn('via', 'text', (c) => c.notNull())
        .addColumn('groups', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('gateway_sessions_account').on('gateway_sessions').columns(['account', 'revoked_at']).execute();
      await db.schema.createIndex('gateway_sessions_family').on('gateway_sessions').column('family').execute();
    },
  },
  '0004_access_requests': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('access_requests')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('principal', 'text', (c) => c.notNull())
        .addColumn('connection', 'text', (c) => c.notNull())
        .addColumn('duration_ms', 'bigint', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('requested_at', 'bigint', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('pending', 'granted', 'denied', 'expired')`))
        .addColumn('decided_by', 'text')
        .addColumn('decided_at', 'bigint')
        .addColumn('grant_id', 'text')
        .execute();
      await db.schema.createIndex('access_requests_status').on('access_requests').columns(['status', 'requested_at']).execute();
      await db.schema.createIndex('access_requests_principal').on('access_requests').columns(['principal', 'requested_at']).execute();
    },
  },
  '0005_grant_expiry_recorded': {
    async up(db: Kysely<unknown>): Promise<void> {
      // Set by the one gateway that records a grant's expiry as an audit event.
      await db.schema.alterTable('grants').addColumn('expiry_recorded_at', 'bigint').execute();
      await db.schema.createIndex('grants_expires').on('grants').column('expires_at').execute();
    },
  },
  '0006_grant_principal_kind_and_groups': {
    async up(db: Kysely<unknown>): Promise<void> {
      // Policy decides on who the principal was when access was granted: a person or an agent, and its groups.
      await db.schema
        .alterTable('grants')
        .addColumn('principal_kind', 'text', (c) => c.notNull().defaultTo('user'))
        .execute();
      await db.schema.alterTable('grants').addColumn('groups', 'text', (c) => c.notNull().defaultTo('[]')).execute();
    },
  },
  '0007_audit_chain': {
    async up(db: Kysely<unknown>): Promise<void> {
      // Chain the records written before the chain existed, in their order, so that the whole log verifies.
      const chainable = db as unknown as Kysely<{
        audit_events: AuditEventsRow;
      }>;
      let prev = GENESIS_HASH;
      let expected = 1;
      for (const r of await chainable.selectFrom('audit_events').selectAll().orderBy('seq').execute()) {
        const seq = Number(r.seq);
        if (seq !== expected) {
          // Renumbered gap-free first: a record's number is part of what its hash covers.
          await chainable.updateTable('audit_events').set({ seq: expected }).where('seq', '=', seq).execute();
        }
        const fields = { ...r, seq: expected, at: Number(r.at), details: JSON.parse(r.details) as Record<string, unknown> };
        const hash = recordHash(fields, prev);
        await chainable.updateTable('audit_events').set({ prev_hash: prev, hash }).where('seq', '=', expected).execute();
        prev = hash;
        expected++;
      }
      await db.schema
        .createTable('audit_checkpoints')
        .addColumn('seq', 'bigint', (c) => c.primaryKey())
        .addColumn('hash', 'text', (c) => c.notNull())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('key_id', 'text', (c) => c.notNull())
        .addColumn('signature', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0008_statement_results': {
    async up(db: Kysely<unknown>): Promise<void> {
      // What a statement returned, as the client received it (masked), up to a size: JSON.
      await db.schema.alterTable('statements').addColumn('result', 'text').execute();
    },
  },
  '0009_sessions_ended': {
    async up(db: Kysely<unknown>): Promise<void> {
      // Retention walks ended sessions oldest end first, a batch at a time: an index range scan.
      await db.schema.createIndex('sessions_ended').on('sessions').columns(['ended_at', 'id']).execute();
    },
  },
  '0010_approvals': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('approvals')
        .addColumn('id', 'bigint', (c) => c.primaryKey())
        .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('statement', 'access')`))
        .addColumn('status', 'text', (c) =>
          c.notNull().check(sql`status in ('pending', 'approved', 'denied', 'expired', 'cancelled')`),
        )
        .addColumn('requester', 'text', (c) => c.notNull())
        .addColumn('connection', 'text', (c) => c.notNull())
        .addColumn('session_id', 'text')
        .addColumn('request_id', 'text')
        .addColumn('statement', 'text')
        .addColumn('params', 'text')
        .addColumn('policy', 'text')
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('approvers', 'text', (c) => c.notNull())
        .addColumn('preview', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('decided_at', 'bigint')
        .addColumn('decided_by', 'text')
        .addColumn('decision_reason', 'text')
        .execute();
      await db.schema.createIndex('approvals_status').on('approvals').columns(['status', 'id']).execute();
    },
  },
  '0011_access_approvals': {
    async up(db: Kysely<unknown>): Promise<void> {
      // An access request that needs approval is decided through its approval (approvals.kind = 'access').
      await db.schema.alterTable('access_requests').addColumn('approval_id', 'bigint').execute();
      await db.schema.alterTable('access_requests').addColumn('decision_reason', 'text').execute();
      await db.schema.alterTable('approvals').addColumn('duration_ms', 'bigint').execute();
    },
  },
  '0012_plans': {
    async up(db: Kysely<unknown>): Promise<void> {
      // Plan-scoped grants: the plan a request comes with, and the grant it becomes.
      await db.schema.alterTable('access_requests').addColumn('plan', 'text').execute();
      await db.schema.alterTable('grants').addColumn('plan', 'text').execute();
    },
  },
  '0013_access_reviews': {
    async up(db: Kysely<unknown>): Promise<void> {
      // A reviewer's decision on a principal's access to a connection: kept (certified) or taken away (revoked).
      await db.schema
        .createTable('review_decisions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('principal', 'text', (c) => c.notNull())
        .addColumn('connection', 'text', (c) => c.notNull())
        .addColumn('decision', 'text', (c) => c.notNull().check(sql`decision in ('certified', 'revoked')`))
        .addColumn('note', 'text', (c) => c.notNull())
        .addColumn('decided_by', 'text', (c) => c.notNull())
        .addColumn('decided_at', 'bigint', (c) => c.notNull())
        .addColumn('grants_revoked', 'text', (c) => c.notNull().defaultTo('[]'))
        .execute();
      await db.schema
        .createIndex('review_decisions_pair')
        .on('review_decisions')
        .columns(['principal', 'connection', 'decided_at'])
        .execute();
      // The review reads the grants issued in its window.
      await db.schema.createIndex('grants_created').on('grants').columns(['created_at', 'id']).execute();
    },
  },
  '0014_service_account_usage': {
    async up(db: Kysely<unknown>): Promise<void> {
      // A principal's usage (identity/service-accounts.ts): its grants from a time on, and its last one, by index.
      await db.schema.createIndex('grants_principal_created').on('grants').columns(['principal', 'created_at']).execute();
    },
  },
  '0015_statement_batches': {
    async up(db: Kysely<unknown>): Promise<void> {
      // Statements recorded in batches, one row per session for each write of the recorder
      // (store/statement-batches.ts) instead of one per statement.
      await db.schema
        .createTable('statement_batches')
        .addColumn('session_id', 'text', (c) => c.notNull().references('sessions.id').onDelete('cascade'))
        .addColumn('first_seq', 'integer', (c) => c.notNull())
        .addColumn('last_seq', 'integer', (c) => c.notNull())
        .addColumn('first_at', 'bigint', (c) => c.notNull())
        .addColumn('last_at', 'bigint', (c) => c.notNull())
        .addColumn('statements', 'integer', (c) => c.notNull())
        .addColumn('refused', 'integer', (c) => c.notNull())
        .addColumn('failed', 'integer', (c) => c.notNull())
        .addColumn('bytes', 'bigint', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('statement_batches_pkey', ['session_id', 'first_seq'])
        .execute();
      // What was recorded one row per statement becomes one batch per session, its tuples in
      // the order and shape of `BatchedStatement`, the result's JSON nested.
      const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
      const body = sqlite
        ? sql`json_group_array(json_array(seq, text, started_at, duration_ms, rows, outcome, error_code, error_message, json(result)) order by seq)`
        : sql`json_agg(json_build_array(seq, text, started_at, duration_ms, rows, outcome, error_code, error_message, result::json) order by seq)::text`;
      const refused = sqlite ? sql`sum(outcome = 'denied')` : sql`count(*) filter (where outcome = 'denied')`;
      const failed = sqlite ? sql`sum(outcome = 'error')` : sql`count(*) filter (where outcome = 'error')`;
      await sql`insert into statement_batches (session_id, first_seq, last_seq, first_at, last_at, statements, refused, failed, bytes, body)
        select session_id, min(seq), max(seq), min(started_at), max(started_at), count(*), ${refused}, ${failed}, 0, ${body}
        from statements group by session_id`.execute(db);
      await sql`update statement_batches set bytes = octet_length(body) + ${sql.lit(BATCH_ROW_BYTES)}`.execute(db);
      await db.schema.dropTable('statements').execute();
    },
  },
  '0016_audit_batches': {
    async up(db: Kysely<unknown>): Promise<void> {
      // The audit log in batches of consecutive records (store/audit-batches.ts) instead of one row per record.
      const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
      await db.schema
        .createTable('audit_batches')
        // SQLite: an INTEGER primary key is the row id, the table's own B-tree.
        .addColumn('first_seq', sqlite ? 'integer' : 'bigint', (c) => c.primaryKey().notNull())
        .addColumn('last_seq', 'bigint', (c) => c.notNull())
        .addColumn('first_at', 'bigint', (c) => c.notNull())
        .addColumn('last_at', 'bigint', (c) => c.notNull())
        .addColumn('last_hash', 'text')
        .addColumn('body', 'text', (c) => c.notNull())
        .execute();
      // A time range opens the batches from the first that ends in it.
      await db.schema.createIndex('audit_batches_at').on('audit_batches').column('last_at').execute();
      const log = db as unknown as Kysely<{
        audit_events: AuditEventsRow;
        audit_batches: AuditBatchesTable;
      }>;
      // A batch at a time, in order: the records as they are, the details' JSON text kept as it is.
      for (let after = 0; ; ) {
        const rows = await log
          .selectFrom('audit_events')
          .selectAll()
          .where('seq', '>', after)
          .orderBy('seq')
          .limit(AUDIT_BATCH_RECORDS)
          .execute();
        if (rows.length === 0) break;
        const fields = rows.map((r) => ({ ...r, seq: Number(r.seq), at: Number(r.at), detailsJson: r.details, prevHash: r.prev_hash }));
        for (const b of batchFields(fields)) await log.insertInto('audit_batches').values(batchRow(b)).execute();
        after = fields.at(-1)!.seq;
      }
      await db.schema.dropTable('audit_events').execute();
    },
  },
  '0017_audit_batches_without_prev': {
    // The schema stays: from here on a batch's records after its first leave out the hash of the
    // record before them (store/audit-batches.ts, `ChainedRecordTuple`). On record, so that a
    // gateway from before, which would read those records wrong, refuses the store instead.
    async up(): Promise<void> {},
  },
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
