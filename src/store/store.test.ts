/**
 * One conformance suite for every store backend: SQLite in a temporary folder, and
 * PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) in a fresh database that is
 * dropped afterwards. When PostgreSQL is not reachable its cases are skipped, saying so.
 */

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Migrator, sql, type Kysely } from 'kysely';
import pg from 'pg';
import {
  MAX_DELETE_BATCH,
  openStore,
  StoreConflictError,
  type AuditQuery,
  type AuditRecord,
  type NewGrant,
  type NewStatement,
  type Store,
} from './index.ts';
import { MIGRATION_LOCK_TABLE, MIGRATION_TABLE, migrationProvider } from './migrations.ts';
import type { Database } from './schema.ts';
import { openSqlite } from './sqlite.ts';
import { batchStatements, statementFields } from './statement-batches.ts';
import { AUDIT_BATCH_RECORDS } from './audit-batches.ts';
import { GENESIS_HASH, recordHash } from '../audit/chain.ts';

const ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

interface Backend {
  readonly name: 'sqlite' | 'postgres';
  /** Why the backend cannot run here, or undefined when it can. */
  available(): Promise<string | undefined>;
  /** A URL to a new, empty store, and how to throw it away. */
  create(): Promise<{ url: string; drop(): Promise<void> }>;
}

const sqlite: Backend = {
  name: 'sqlite',
  available: async () => undefined,
  async create() {
    const dir = await mkdtemp(join(tmpdir(), 'drawbridge-store-'));
    return { url: `sqlite:${join(dir, 'nested', 'state.db')}`, drop: () => rm(dir, { recursive: true, force: true }) };
  },
};

const postgres: Backend = {
  name: 'postgres',
  async available() {
    const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 2000 });
    try {
      await client.connect();
      await client.query('select 1');
      return undefined;
    } catch (err) {
      return `PostgreSQL is not reachable at ${ADMIN_URL} (${(err as Error).message})`;
    } finally {
      await client.end().catch(() => {});
    }
  },
  async create() {
    const name = `drawbridge_test_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    await admin.query(`create database ${name}`);
    await admin.end();
    return {
      url: `postgres://postgres@127.0.0.1:5432/${name}`,
      async drop() {
        const c = new pg.Client({ connectionString: ADMIN_URL });
        await c.connect();
        await c.query(`drop database if exists ${name} with (force)`);
        await c.end();
      },
    };
  },
};

const HOUR = 3_600_000;
const T0 = Date.UTC(2025, 0, 1);

/** A live session of alice's on orders-db, started at T0: what the statement tests record into. */
function aliceSession(store: Store) {
  return store.startSession({
    protocol: 'postgres',
    principal: 'alice',
    connection: 'orders-db',
    grantId: 'grt_x',
    clientAddress: '127.0.0.1:1',
    startedAt: T0,
  });
}

let counter = 0;
function grant(overrides: Partial<NewGrant> = {}): NewGrant {
  counter += 1;
  return {
    principal: 'alice',
    principalKind: 'user',
    groups: [],
    connection: 'orders-db',
    tokenHash: createHash('sha256').update(`dbr_token_${counter}_${Math.random()}`).digest('hex'),
    scramSalt: randomBytes(16).toString('base64'),
    scramIterations: 4096,
    scramStoredKey: randomBytes(32).toString('base64'),
    scramServerKey: randomBytes(32).toString('base64'),
    reason: 'incident 42',
    grantedBy: 'policy:oncall',
    createdAt: T0,
    expiresAt: T0 + HOUR,
    ...overrides,
  };
}

/** The store at `url` migrated up to `migration` and no further, as a query builder: a store as an older version left it. */
async function migratedTo(url: string, migration: string): Promise<Kysely<Database>> {
  const db = url.startsWith('sqlite:') ? openSqlite(url.slice('sqlite:'.length)).db : (await import('./postgres.ts')).openPostgres(url).db;
  const migrator = new Migrator({
    db,
    provider: migrationProvider,
    migrationTableName: MIGRATION_TABLE,
    migrationLockTableName: MIGRATION_LOCK_TABLE,
  });
  const { error } = await migrator.migrateTo(migration);
  assert.equal(error, undefined);
  return db;
}

/** Opens the same store from `n` separate processes at once; resolves when all have migrated and closed. */
async function openFromProcesses(url: string, n: number): Promise<void> {
  const script = `
    import { openStore } from ${JSON.stringify(new URL('./index.ts', import.meta.url).href)};
    const store = await openStore(process.argv[1]);
    await store.listSessions({ limit: 1 });
    await store.close();
  `;
  const run = promisify(execFile);
  await Promise.all(
    Array.from({ length: n }, () => run(process.execPath, ['--input-type=module', '-e', script, url], { timeout: 60_000 })),
  );
}

for (const backend of [sqlite, postgres]) {
  describe(`store conformance: ${backend.name}`, async () => {
    const skip = await backend.available();
    let url = '';
    let drop = async (): Promise<void> => {};
    let store: Store;

    before(async () => {
      if (skip !== undefined) return;
      ({ url, drop } = await backend.create());
      store = await openStore(url);
    });
    after(async () => {
      if (skip !== undefined) return;
      await store.close();
      await drop();
    });

    test('reports its kind', { skip }, () => {
      assert.equal(store.kind, backend.name);
    });

    test('migrations are idempotent: opening twice keeps the data', { skip }, async () => {
      const g = await store.insertGrant(grant());
      const again = await openStore(url);
      try {
        assert.deepEqual(await again.getGrant(g.id), g);
      } finally {
        await again.close();
      }
    });

    test('several gateways opening a new store at once all succeed', { skip }, async () => {
      const fresh = await backend.create();
      try {
        if (backend.name === 'postgres') {
          // In one process: the migration lock is what keeps these apart.
          const stores = await Promise.all([openStore(fresh.url), openStore(fresh.url), openStore(fresh.url)]);
          await Promise.all(stores.map((s) => s.close()));
        }
        // node:sqlite waits synchronously, so SQLite is exercised across processes (as deployed). Six:
        // before the migration held the write lock throughout, one open in about a hundred failed.
        await openFromProcesses(fresh.url, 6);
        const s = await openStore(fresh.url);
        await s.close();
      } finally {
        await fresh.drop();
      }
    });

    test('grants: insert, get, find by token hash', { skip }, async () => {
      const input = grant({ reason: undefined });
      const g = await store.insertGrant(input);
      assert.match(g.id, /^grt_[0-9a-f]{32}$/);
      assert.equal(g.reason, undefined);
      assert.equal(g.revokedAt, undefined);
      assert.deepEqual(await store.getGrant(g.id), g);
      assert.deepEqual(await store.findGrantByTokenHash(input.tokenHash), g);
      assert.equal(await store.findGrantByTokenHash('0'.repeat(64)), undefined);
      assert.equal(await store.getGrant('grt_missing'), undefined);
      const agent = await store.insertGrant(grant({ principal: 'etl-bot', principalKind: 'service-account', groups: ['etl', 'ops'] }));
      const read = await store.getGrant(agent.id);
      assert.equal(read?.principalKind, 'service-account');
      assert.deepEqual(read?.groups, ['etl', 'ops']);
      const withId = await store.insertGrant(grant({ id: 'grt_chosen' }));
      assert.equal(withId.id, 'grt_chosen');
      assert.equal((await store.getGrant('grt_chosen'))?.reason, 'incident 42');
    });

    test('grants: a second grant with the same token hash is refused', { skip }, async () => {
      const g = grant();
      await store.insertGrant(g);
      await assert.rejects(store.insertGrant({ ...g, principal: 'mallory' }), StoreConflictError);
      const found = await store.findGrantByTokenHash(g.tokenHash);
      assert.equal(found?.principal, 'alice');
    });

    test('grants: live list honours principal, connection, expiry boundary and revocation', { skip }, async () => {
      const principal = `bob-${randomBytes(3).toString('hex')}`;
      const a = await store.insertGrant(grant({ principal, createdAt: T0, expiresAt: T0 + HOUR }));
      const b = await store.insertGrant(grant({ principal, createdAt: T0 + 1, expiresAt: T0 + 2 * HOUR }));
      await store.insertGrant(grant({ principal, connection: 'other-db' }));
      await store.insertGrant(grant({ principal: `${principal}-x` }));

      const ids = async (now: number) => (await store.listLiveGrants(principal, 'orders-db', now)).map((g) => g.id);
      assert.deepEqual(await ids(T0), [a.id, b.id]);
      assert.deepEqual(await ids(T0 + HOUR - 1), [a.id, b.id]);
      // expires_at is exclusive: at the instant of expiry the grant is no longer live.
      assert.deepEqual(await ids(T0 + HOUR), [b.id]);
      assert.deepEqual(await ids(T0 + 2 * HOUR), []);

      assert.equal(await store.revokeGrant(b.id, T0 + 10), true);
      assert.equal(await store.revokeGrant(b.id, T0 + 20), false, 'already revoked');
      assert.equal(await store.revokeGrant('grt_missing', T0), false);
      assert.equal((await store.getGrant(b.id))?.revokedAt, T0 + 10);
      assert.deepEqual(await ids(T0), [a.id]);
    });

    test('grants: revocation records who and why; revoking a principal takes every live grant', { skip }, async () => {
      const principal = `carol-${randomBytes(3).toString('hex')}`;
      const live1 = await store.insertGrant(grant({ principal, createdAt: T0, expiresAt: T0 + HOUR }));
      const live2 = await store.insertGrant(grant({ principal, connection: 'other-db', createdAt: T0 + 1, expiresAt: T0 + HOUR }));
      const expired = await store.insertGrant(grant({ principal, createdAt: T0, expiresAt: T0 + 5 }));
      const other = await store.insertGrant(grant({ principal: `${principal}-x`, createdAt: T0, expiresAt: T0 + HOUR }));

      assert.equal(await store.revokeGrant(live1.id, T0 + 10, { by: 'admin', reason: 'left the team' }), true);
      const one = await store.getGrant(live1.id);
      assert.equal(one?.revokedBy, 'admin');
      assert.equal(one?.revokeReason, 'left the team');

      const revoked = await store.revokeGrantsOf(principal, T0 + 20, { by: 'admin' });
      assert.deepEqual(revoked, [live2.id], 'only what was live and not yet revoked');
      assert.equal((await store.getGrant(expired.id))?.revokedAt, undefined);
      assert.equal((await store.getGrant(other.id))?.revokedAt, undefined);

      const since = (await store.listRevokedSince(T0 + 10)).filter((g) => g.principal === principal).map((g) => g.id);
      assert.deepEqual(since, [live1.id, live2.id]);
      assert.deepEqual(
        (await store.listRevokedSince(T0 + 11)).filter((g) => g.principal === principal).map((g) => g.id),
        [live2.id],
      );
    });

    test('grants: list by principal and connection, live only, newest first', { skip }, async () => {
      const principal = `dave-${randomBytes(3).toString('hex')}`;
      const a = await store.insertGrant(grant({ principal, createdAt: T0, expiresAt: T0 + HOUR }));
      const b = await store.insertGrant(grant({ principal, createdAt: T0 + 1, expiresAt: T0 + 2 * HOUR }));
      const c = await store.insertGrant(grant({ principal, connection: 'other-db', createdAt: T0 + 2, expiresAt: T0 + HOUR }));
      const ids = async (q: Parameters<Store['listGrants']>[0]) => (await store.listGrants({ principal, ...q })).map((g) => g.id);
      assert.deepEqual(await ids({}), [c.id, b.id, a.id]);
      assert.deepEqual(await ids({ connection: 'orders-db' }), [b.id, a.id]);
      assert.deepEqual(await ids({ liveAt: T0 + HOUR }), [b.id]);
      assert.deepEqual(await ids({ limit: 1 }), [c.id]);
    });

    test('grants, sessions, access requests and accounts: pages follow a cursor, with no row twice or left out', { skip }, async () => {
      const tag = randomBytes(3).toString('hex');
      const principal = `pat-${tag}`;
      // Two share a creation time: the id breaks the tie, so a page boundary between them loses neither.
      const grants = [];
      for (const at of [T0, T0 + 1, T0 + 1, T0 + 2, T0 + 3]) grants.push(await store.insertGrant(grant({ principal, createdAt: at })));
      const newestFirst = [...grants].sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1)).map((g) => g.id);
      const seen: string[] = [];
      let before: { createdAt: number; id: string } | undefined;
      for (;;) {
        const page = await store.listGrants({ principal, limit: 2, ...(before ? { before } : {}) });
        seen.push(...page.map((g) => g.id));
        if (page.length < 2) break;
        before = { createdAt: page.at(-1)!.createdAt, id: page.at(-1)!.id };
      }
      assert.deepEqual(seen, newestFirst);

      const sessions = [];
      for (const at of [T0, T0 + 1, T0 + 1, T0 + 2, T0 + 3]) {
        sessions.push(
          await store.startSession({
            protocol: 'postgres',
            principal,
            connection: 'orders-db',
            grantId: 'grt_x',
            clientAddress: '127.0.0.1:1',
            startedAt: at,
          }),
        );
      }
      const latestFirst = [...sessions].sort((a, b) => b.startedAt - a.startedAt || (a.id < b.id ? 1 : -1)).map((s) => s.id);
      const paged: string[] = [];
      for (let cursor: { startedAt: number; id: string } | undefined; ;) {
        const page = await store.listSessions({ principal, limit: 2, before: cursor });
        paged.push(...page.map((s) => s.id));
        if (page.length < 2) break;
        cursor = { startedAt: page.at(-1)!.startedAt, id: page.at(-1)!.id };
      }
      assert.deepEqual(paged, latestFirst);

      const requests = [];
      for (const [at, connection] of [
        [T0, 'orders-db'],
        [T0 + 1, 'orders-db'],
        [T0 + 1, 'orders-db'],
        [T0 + 2, 'other-db'],
      ] as const) {
        requests.push(await store.insertAccessRequest({ principal, connection, durationMs: HOUR, reason: 'r', requestedAt: at }));
      }
      const ordered = [...requests].sort((a, b) => b.requestedAt - a.requestedAt || (a.id < b.id ? 1 : -1)).map((r) => r.id);
      const first = await store.listAccessRequests({ principal, limit: 2 });
      assert.deepEqual(
        first.map((r) => r.id),
        ordered.slice(0, 2),
      );
      const rest = await store.listAccessRequests({
        principal,
        limit: 10,
        before: { requestedAt: first.at(-1)!.requestedAt, id: first.at(-1)!.id },
      });
      assert.deepEqual(
        rest.map((r) => r.id),
        ordered.slice(2),
      );
      assert.deepEqual(
        (await store.listAccessRequests({ principal, connection: 'other-db' })).map((r) => r.id),
        [requests[3]!.id],
      );

      for (const [name, kind] of [
        [`c-${tag}`, 'user'],
        [`a-${tag}`, 'service-account'],
        [`b-${tag}`, 'user'],
      ] as const) {
        await store.insertAccount({ name, kind, roles: ['user'], groups: [], createdAt: T0 });
      }
      const mine = (accounts: { name: string }[]) => accounts.map((a) => a.name).filter((n) => n.endsWith(tag));
      const all = mine(await store.listAccounts());
      assert.deepEqual(all, [`a-${tag}`, `b-${tag}`, `c-${tag}`]);
      assert.deepEqual(mine(await store.listAccounts({ after: `a-${tag}` })), [`b-${tag}`, `c-${tag}`]);
      assert.deepEqual(mine(await store.listAccounts({ kind: 'service-account' })), [`a-${tag}`]);
      assert.equal((await store.listAccounts({ limit: 1 })).length, 1);
    });

    test('grants: expired ones are claimed for the record once, whoever asks', { skip }, async () => {
      const principal = `ken-${randomBytes(3).toString('hex')}`;
      const gone = await store.insertGrant(grant({ principal, createdAt: T0, expiresAt: T0 + 10 }));
      const revoked = await store.insertGrant(grant({ principal, createdAt: T0, expiresAt: T0 + 10 }));
      await store.revokeGrant(revoked.id, T0 + 5);
      const live = await store.insertGrant(grant({ principal, createdAt: T0, expiresAt: T0 + HOUR }));
      const mine = (grants: { principal: string; id: string }[]) => grants.filter((g) => g.principal === principal).map((g) => g.id);
      assert.deepEqual(mine(await store.claimExpiredGrants(T0 + 10, 1000)), [gone.id]);
      assert.deepEqual(mine(await store.claimExpiredGrants(T0 + 20, 1000)), [], 'claimed once');
      assert.deepEqual(mine(await store.claimExpiredGrants(T0 + HOUR, 1000)), [live.id]);
    });

    test('audit events: appended in sequence, read back in order and by filter', { skip }, async () => {
      const subject = `grt_${randomBytes(4).toString('hex')}`;
      const first = await store.appendAudit({
        at: T0,
        actor: 'local-admin',
        action: 'grant.issued',
        subject,
        outcome: 'success',
        details: { ttlMs: 60000, reason: 'é ✓' },
      });
      const second = await store.appendAudit({
        at: T0 + 1,
        actor: 'local-admin',
        action: 'grant.revoked',
        subject,
        outcome: 'success',
        details: {},
      });
      assert.ok(second.seq > first.seq);
      const back = await store.listAudit({ subject });
      assert.deepEqual(back, [first, second]);
      assert.deepEqual(await store.listAudit({ subject, action: 'grant.revoked' }), [second]);
      assert.deepEqual(await store.listAudit({ subject, since: T0 + 1 }), [second]);
    });

    test('audit events: filters and the cursor hold across batches, matching exactly what each record says', { skip }, async () => {
      const fresh = await backend.create();
      const own = await openStore(fresh.url);
      try {
        // Three appends of different sizes: batches of up to AUDIT_BATCH_RECORDS, times out of order within them.
        const made = (n: number, from: number) =>
          Array.from({ length: n }, (_, i) => ({
            at: T0 + ((from + i) % 97) * 10,
            actor: `user${(from + i) % 3}`,
            action: (from + i) % 5 === 0 ? 'grant.revoked' : 'grant.issued',
            // One subject's name inside another's details: a batch holding the text is not a match by itself.
            subject: `grt_${(from + i) % 11}`,
            outcome: 'success' as const,
            details: { about: `grt_${(from + i) % 7}` },
          }));
        const written = [
          ...(await own.appendAudits(made(AUDIT_BATCH_RECORDS + 40, 0))),
          ...(await own.appendAudits(made(3, 1000))),
          ...(await own.appendAudits(made(300, 2000))),
        ];
        assert.deepEqual(
          written.map((r) => r.seq),
          written.map((_, i) => i + 1),
        );
        const queries: AuditQuery[] = [
          { limit: 1000 },
          { subject: 'grt_3', limit: 1000 },
          { action: 'grant.revoked', limit: 1000 },
          { since: T0 + 500, until: T0 + 600, limit: 1000 },
          { afterSeq: 250, subject: 'grt_5', action: 'grant.issued', limit: 1000 },
          { afterSeq: AUDIT_BATCH_RECORDS + 41, limit: 2 },
          // The cursor at a batch's last record, before the first, and at or past the end.
          { afterSeq: AUDIT_BATCH_RECORDS + 40, limit: 5 },
          { afterSeq: AUDIT_BATCH_RECORDS, since: T0 + 900, limit: 5 },
          { afterSeq: 0, limit: 3 },
          { afterSeq: 599, limit: 5 },
          { afterSeq: 10_000, limit: 5 },
          { since: T0 + 960, limit: 7 },
        ];
        for (const q of queries) {
          const expected = written
            .filter(
              (r) =>
                (q.afterSeq === undefined || r.seq > q.afterSeq) &&
                (q.since === undefined || r.at >= q.since) &&
                (q.until === undefined || r.at < q.until) &&
                (q.action === undefined || r.action === q.action) &&
                (q.subject === undefined || r.subject === q.subject),
            )
            .slice(0, q.limit);
          assert.deepEqual(await own.listAudit(q), expected, JSON.stringify(q));
        }
        // Paging with the cursor reads the whole log once, in order.
        const paged: number[] = [];
        for (
          let page = await own.listAudit({ limit: 100 });
          page.length > 0;
          page = await own.listAudit({ afterSeq: paged.at(-1), limit: 100 })
        )
          paged.push(...page.map((r) => r.seq));
        assert.deepEqual(
          paged,
          written.map((r) => r.seq),
        );
        assert.deepEqual(await own.auditHead(), { seq: written.length, hash: written.at(-1)!.hash });
      } finally {
        await own.close();
        await fresh.drop();
      }
    });

    test('sessions: start, get, end once, nullable fields', { skip }, async () => {
      const s = await store.startSession({
        protocol: 'postgres',
        principal: 'alice',
        connection: 'orders-db',
        grantId: 'grt_x',
        clientAddress: '127.0.0.1:50000',
        startedAt: T0,
      });
      assert.match(s.id, /^ses_[0-9a-f]{32}$/);
      assert.equal(s.endedAt, undefined);
      assert.equal(s.endReason, undefined);
      assert.deepEqual(await store.getSession(s.id), s);
      assert.equal(await store.endSession(s.id, T0 + 5000, 'client closed'), true);
      assert.equal(await store.endSession(s.id, T0 + 9000, 'again'), false);
      assert.deepEqual(await store.getSession(s.id), { ...s, endedAt: T0 + 5000, endReason: 'client closed' });
      assert.equal(await store.getSession('ses_missing'), undefined);
      assert.equal(await store.endSession('ses_missing', T0, 'x'), false);
    });

    test('sessions: list filters by principal and connection, newest first, limited', { skip }, async () => {
      const tag = randomBytes(3).toString('hex');
      const made = [];
      for (let i = 0; i < 6; i++) {
        made.push(
          await store.startSession({
            protocol: 'postgres',
            principal: i % 2 === 0 ? `p-${tag}` : `q-${tag}`,
            connection: i < 3 ? `c-${tag}` : `d-${tag}`,
            grantId: 'grt_x',
            clientAddress: '[::1]:1',
            startedAt: T0 + 1000 * 365 * 24 * HOUR + i * 1000,
          }),
        );
      }
      const ids = (xs: { id: string }[]) => xs.map((x) => x.id);
      const m = made.map((s) => s.id);
      assert.deepEqual(ids(await store.listSessions({ principal: `p-${tag}`, limit: 10 })), [m[4], m[2], m[0]]);
      assert.deepEqual(ids(await store.listSessions({ connection: `d-${tag}`, limit: 10 })), [m[5], m[4], m[3]]);
      assert.deepEqual(ids(await store.listSessions({ principal: `q-${tag}`, connection: `c-${tag}`, limit: 10 })), [m[1]]);
      // These are the newest sessions in the store, so an unfiltered list starts with them.
      assert.deepEqual(ids(await store.listSessions({ limit: 2 })), [m[5], m[4]]);
      assert.deepEqual(await store.listSessions({ principal: 'nobody', limit: 10 }), []);
    });

    test(
      "usage: a principal's grants, sessions and statements in a window by connection, what is live, the last of each",
      { skip },
      async () => {
        const who = `usage-${randomBytes(3).toString('hex')}`;
        const B = T0 + 50 * 24 * HOUR;
        const now = B + 10 * HOUR;
        const MIN = 60_000;
        await store.insertGrant(grant({ principal: who, connection: 'a', createdAt: B - 2 * HOUR, expiresAt: B - HOUR }));
        await store.insertGrant(grant({ principal: who, connection: 'a', createdAt: B + HOUR, expiresAt: B + 11 * HOUR }));
        const revoked = await store.insertGrant(
          grant({ principal: who, connection: 'b', createdAt: B + 2 * HOUR, expiresAt: B + 12 * HOUR }),
        );
        await store.revokeGrant(revoked.id, B + 5 * HOUR, { by: 'ada' });
        const last = await store.insertGrant(grant({ principal: who, connection: 'c', createdAt: B + 3 * HOUR, expiresAt: B + 4 * HOUR }));
        await store.insertGrant(grant({ principal: `${who}-other`, connection: 'a', createdAt: B + HOUR, expiresAt: now + HOUR }));
        const session = async (
          connection: string,
          startedAt: number,
          endedAt: number | undefined,
          statements: [number, NewStatement['outcome']][],
        ) => {
          const s = await store.startSession({
            protocol: 'postgres',
            principal: who,
            connection,
            grantId: 'grt_x',
            clientAddress: '[::1]:1',
            startedAt,
          });
          if (endedAt !== undefined) await store.endSession(s.id, endedAt, 'client closed');
          await store.insertStatements(
            statements.map(([at, outcome], i) => ({
              sessionId: s.id,
              seq: i + 1,
              text: 'select 1',
              startedAt: at,
              durationMs: 1,
              outcome,
            })),
          );
        };
        // Ended before the window: nothing of it counts.
        await session('a', B - 2 * HOUR, B - 90 * MIN, [[B - 2 * HOUR, 'ok']]);
        // Started before the window, ran in it: its statements from `since` on count, the session does not.
        await session('a', B - 30 * MIN, B + 30 * MIN, [
          [B - 20 * MIN, 'ok'],
          [B + 10 * MIN, 'ok'],
          [B + 20 * MIN, 'denied'],
        ]);
        // Live.
        await session('b', B + 2 * HOUR, undefined, [
          [B + 2 * HOUR, 'ok'],
          [B + 2 * HOUR + 1000, 'error'],
          [B + 2 * HOUR + 2000, 'denied'],
          [B + 2 * HOUR + 3000, 'cancelled'],
        ]);
        const usage = await store.principalUsage(who, B, now);
        assert.deepEqual(usage.connections, [
          { connection: 'a', grants: 1, sessions: 0, statements: 2, refused: 1, failed: 0, lastUsedAt: B + HOUR },
          { connection: 'b', grants: 1, sessions: 1, statements: 4, refused: 1, failed: 1, lastUsedAt: B + 2 * HOUR + 3000 },
          { connection: 'c', grants: 1, sessions: 0, statements: 0, refused: 0, failed: 0, lastUsedAt: B + 3 * HOUR },
        ]);
        assert.equal(usage.liveGrants, 1);
        assert.equal(usage.liveSessions, 1);
        assert.deepEqual(usage.lastGrant, last);
        assert.equal(usage.lastSessionAt, B + 2 * HOUR);
        // A window that starts later leaves out what came before it, but not what is live or last.
        const later = await store.principalUsage(who, B + 3 * HOUR, now);
        assert.deepEqual(
          later.connections.map((c) => [c.connection, c.grants, c.statements]),
          [['c', 1, 0]],
        );
        assert.equal(later.liveGrants, 1);
        assert.equal(later.lastGrant?.id, last.id);
        assert.deepEqual(await store.principalUsage(`${who}-nobody`, B, now), {
          connections: [],
          liveGrants: 0,
          liveSessions: 0,
          lastGrant: undefined,
          lastSessionAt: undefined,
        });
      },
    );

    test('accounts: insert, get, list by name, update and clear fields', { skip }, async () => {
      const tag = randomBytes(3).toString('hex');
      const user = await store.insertAccount({
        name: `u-${tag}`,
        kind: 'user',
        passwordHash: '$scrypt$ln=14,r=1,p=1$c2FsdA$aGFzaA',
        roles: ['admin', 'user'],
        groups: ['ops', 'é ✓'],
        createdAt: T0,
      });
      assert.deepEqual(user, {
        name: `u-${tag}`,
        kind: 'user',
        passwordHash: '$scrypt$ln=14,r=1,p=1$c2FsdA$aGFzaA',
        roles: ['admin', 'user'],
        groups: ['ops', 'é ✓'],
        createdAt: T0,
        disabledAt: undefined,
        lastUsedAt: undefined,
        maxGrantMs: undefined,
        connections: undefined,
      });
      assert.deepEqual(await store.getAccount(user.name), user);
      const bot = await store.insertAccount({
        name: `a-${tag}`,
        kind: 'service-account',
        roles: ['user'],
        groups: [],
        createdAt: T0 + 1,
        maxGrantMs: 10 * 366 * 24 * HOUR,
        connections: [],
      });
      assert.equal(bot.passwordHash, undefined);
      assert.deepEqual((await store.getAccount(bot.name))?.connections, [], 'an empty list is not "any"');
      assert.equal((await store.getAccount(bot.name))?.maxGrantMs, 10 * 366 * 24 * HOUR);
      const names = (await store.listAccounts()).map((a) => a.name).filter((n) => n.endsWith(tag));
      assert.deepEqual(names, [bot.name, user.name]);

      const changed = await store.updateAccount(user.name, {
        passwordHash: null,
        roles: ['auditor'],
        groups: [],
        disabledAt: T0 + 5,
        lastUsedAt: T0 + 6,
        maxGrantMs: HOUR,
        connections: ['orders-db'],
      });
      assert.deepEqual(changed, {
        ...user,
        passwordHash: undefined,
        roles: ['auditor'],
        groups: [],
        disabledAt: T0 + 5,
        lastUsedAt: T0 + 6,
        maxGrantMs: HOUR,
        connections: ['orders-db'],
      });
      const cleared = await store.updateAccount(user.name, { disabledAt: null, maxGrantMs: null, connections: null });
      assert.equal(cleared?.disabledAt, undefined);
      assert.equal(cleared?.maxGrantMs, undefined);
      assert.equal(cleared?.connections, undefined);
      assert.equal(cleared?.lastUsedAt, T0 + 6, 'absent fields are left alone');
      assert.deepEqual(await store.updateAccount(user.name, {}), cleared);
      assert.equal(await store.updateAccount('nobody-here', { roles: [] }), undefined);
      assert.equal(await store.getAccount('nobody-here'), undefined);
    });

    test('accounts: a name is taken also in another letter case', { skip }, async () => {
      const tag = randomBytes(3).toString('hex');
      await store.insertAccount({ name: `Erin-${tag}`, kind: 'user', roles: ['user'], groups: [], createdAt: T0 });
      for (const name of [`Erin-${tag}`, `erin-${tag}`, `ERIN-${tag}`]) {
        await assert.rejects(
          store.insertAccount({ name, kind: 'service-account', roles: [], groups: [], createdAt: T0 }),
          StoreConflictError,
          name,
        );
      }
      assert.equal(await store.getAccount(`erin-${tag}`), undefined, 'lookups are exact');
      assert.equal((await store.getAccount(`Erin-${tag}`))?.kind, 'user');
    });

    test('service-account keys: replacing revokes the old key in the same step', { skip }, async () => {
      const account = `bot-${randomBytes(3).toString('hex')}`;
      await store.insertAccount({ name: account, kind: 'service-account', roles: ['user'], groups: [], createdAt: T0 });
      const hash = (n: number) => createHash('sha256').update(`dbr_sak_${account}_${n}`).digest('hex');
      const first = await store.replaceServiceAccountKey({ account, keyHash: hash(1), createdAt: T0 });
      assert.match(first.id, /^sak_[0-9a-f]{32}$/);
      assert.deepEqual(await store.findServiceAccountKeyByHash(hash(1)), first);
      const second = await store.replaceServiceAccountKey({ account, keyHash: hash(2), createdAt: T0 + 10 });
      assert.deepEqual(await store.findServiceAccountKeyByHash(hash(1)), { ...first, revokedAt: T0 + 10 });
      assert.deepEqual(await store.findServiceAccountKeyByHash(hash(2)), second);
      assert.deepEqual(await store.listServiceAccountKeys(account), [second, { ...first, revokedAt: T0 + 10 }]);
      // A hash already in use is refused, and the failed replacement leaves the working key alone.
      await assert.rejects(store.replaceServiceAccountKey({ account, keyHash: hash(1), createdAt: T0 + 20 }), StoreConflictError);
      assert.equal((await store.findServiceAccountKeyByHash(hash(2)))?.revokedAt, undefined);
      assert.equal(await store.findServiceAccountKeyByHash('0'.repeat(64)), undefined);
      assert.deepEqual(await store.listServiceAccountKeys('nobody'), []);
    });

    test('gateway sessions: insert, find by either hash, rotate exactly once, revoke one, a family, an account', { skip }, async () => {
      const account = `sam-${randomBytes(3).toString('hex')}`;
      await store.insertAccount({ name: account, kind: 'user', roles: ['user'], groups: [], createdAt: T0 });
      let n = 0;
      const h = () => createHash('sha256').update(`${account}-${++n}`).digest('hex');
      const fresh = (overrides: Partial<Parameters<Store['insertGatewaySession']>[0]> = {}) => ({
        account,
        tokenHash: h(),
        refreshHash: h(),
        createdAt: T0,
        expiresAt: T0 + HOUR / 4,
        refreshExpiresAt: T0 + 12 * HOUR,
        via: 'password',
        groups: ['ops'],
        ...overrides,
      });
      const first = await store.insertGatewaySession(fresh());
      assert.match(first.id, /^gws_[0-9a-f]{32}$/);
      assert.equal(first.family, first.id, 'a new session starts its own family');
      assert.equal(first.revokedAt, undefined);
      assert.deepEqual(first.groups, ['ops']);
      assert.deepEqual(await store.getGatewaySession(first.id), first);
      assert.deepEqual(await store.findGatewaySessionByTokenHash(first.tokenHash), first);
      assert.deepEqual(await store.findGatewaySessionByRefreshHash(first.refreshHash), first);
      assert.equal(await store.findGatewaySessionByTokenHash(first.refreshHash), undefined);
      await assert.rejects(store.insertGatewaySession(fresh({ tokenHash: first.tokenHash })), StoreConflictError);

      const next = await store.rotateGatewaySession(first.id, fresh({ family: first.family, createdAt: T0 + 5 }), T0 + 5);
      assert.ok(next);
      assert.equal(next.family, first.family);
      assert.deepEqual(await store.getGatewaySession(first.id), { ...first, revokedAt: T0 + 5, revokeReason: 'rotated' });
      const loser = fresh({ family: first.family });
      assert.equal(await store.rotateGatewaySession(first.id, loser, T0 + 6), undefined, 'the second rotation loses');
      assert.equal(await store.findGatewaySessionByTokenHash(loser.tokenHash), undefined, 'and stores nothing');

      const other = await store.insertGatewaySession(fresh());
      const stale = await store.insertGatewaySession(fresh({ refreshExpiresAt: T0 + 7 }));
      assert.equal(await store.revokeGatewaySessionFamily(first.family, T0 + 7, 'logout'), 1);
      assert.equal((await store.getGatewaySession(next.id))?.revokeReason, 'logout');
      assert.equal((await store.getGatewaySession(first.id))?.revokeReason, 'rotated', 'already revoked rows keep their reason');
      assert.equal(await store.revokeGatewaySessionFamily(first.family, T0 + 8, 'logout'), 0);

      assert.equal(await store.revokeGatewaySessionsOf(account, T0 + 8, 'account-disabled'), 1, 'only sessions still refreshable');
      assert.equal((await store.getGatewaySession(other.id))?.revokedAt, T0 + 8);
      assert.equal((await store.getGatewaySession(stale.id))?.revokedAt, undefined);
      const last = await store.insertGatewaySession(fresh());
      assert.equal(await store.revokeGatewaySession(last.id, T0 + 9, 'logout'), true);
      assert.equal(await store.revokeGatewaySession(last.id, T0 + 9, 'logout'), false);
      assert.equal(await store.revokeGatewaySession('gws_missing', T0, 'logout'), false);
    });

    test('statements: a 1000-row batch round-trips in seq order with nullable fields', { skip }, async (t) => {
      const s = await aliceSession(store);
      const outcomes = ['ok', 'error', 'denied', 'cancelled'] as const;
      const rows: NewStatement[] = Array.from({ length: 1000 }, (_, i) => ({
        sessionId: s.id,
        seq: i + 1,
        text: `select ${i} /* 'quoted' ünïcode */`,
        startedAt: T0 + i,
        durationMs: i + 0.25,
        rows: i % 3 === 0 ? undefined : i,
        outcome: outcomes[i % 4] ?? 'ok',
        errorCode: i % 4 === 1 ? '42P01' : undefined,
        errorMessage: i % 4 === 1 ? `relation "t${i}" does not exist` : undefined,
        result:
          i % 5 === 0
            ? {
                columns: ['id', 'note'],
                rows: [
                  [String(i), null],
                  ['x', 'ünï'],
                ],
                truncated: i % 10 === 0,
              }
            : undefined,
      }));
      // Inserted shuffled: order comes from seq, not from insertion.
      const shuffled = [...rows].sort((x, y) => ((x.seq * 7919) % 1000) - ((y.seq * 7919) % 1000));
      const startedAt = performance.now();
      await store.insertStatements(shuffled);
      const elapsed = performance.now() - startedAt;
      t.diagnostic(`${backend.name}: 1000-statement batch inserted in ${elapsed.toFixed(1)} ms`);

      const back = await store.listStatements(s.id);
      assert.equal(back.length, 1000);
      back.forEach((r, i) => {
        const want = rows[i];
        assert.ok(want);
        assert.deepEqual(r, {
          sessionId: s.id,
          seq: want.seq,
          text: want.text,
          startedAt: want.startedAt,
          durationMs: want.durationMs,
          rows: want.rows,
          outcome: want.outcome,
          errorCode: want.errorCode,
          errorMessage: want.errorMessage,
          result: want.result,
        });
      });
      assert.deepEqual(await store.listStatements('ses_missing'), []);
      await store.insertStatements([]);
    });

    test('statements: a batch is one transaction (a conflict stores none of it)', { skip }, async () => {
      const s = await aliceSession(store);
      const row = (seq: number): NewStatement => ({
        sessionId: s.id,
        seq,
        text: 'select 1',
        startedAt: T0,
        durationMs: 1,
        outcome: 'ok',
      });
      await store.insertStatements([row(1)]);
      const batch = Array.from({ length: 700 }, (_, i) => row(i + 2));
      batch.push(row(1)); // duplicate seq, in the second chunk
      await assert.rejects(store.insertStatements(batch), StoreConflictError);
      assert.deepEqual(
        (await store.listStatements(s.id)).map((r) => r.seq),
        [1],
      );
    });

    test(
      'statements: written in batches, read back as one list; a seq recorded again in any later write is a conflict',
      { skip },
      async () => {
        const s = await aliceSession(store);
        const rows = (...seqs: number[]): NewStatement[] =>
          seqs.map((seq) => ({ sessionId: s.id, seq, text: `select ${seq}`, startedAt: T0 + seq, durationMs: 1, outcome: 'ok' }));
        await store.insertStatements(rows(1, 2, 3));
        await store.insertStatements(rows(10, 11));
        await store.insertStatements(rows(5, 4)); // between two batches, handed out of order
        for (const again of [rows(3), rows(2, 3, 4), rows(6, 7, 8, 9, 10), rows(9, 12), rows(0, 1), rows(12, 12)]) {
          await assert.rejects(store.insertStatements(again), StoreConflictError, `seqs ${again.map((r) => r.seq).join(',')}`);
        }
        await store.insertStatements(rows(6, 7, 8, 9));
        assert.deepEqual(
          (await store.listStatements(s.id)).map((r) => [r.seq, r.text]),
          [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11].map((seq) => [seq, `select ${seq}`]),
        );
        // A page after any seq (a batch's first, its last, between, before all, past all), of any
        // size, is that slice of the list; another session's batches (starting lower) change nothing.
        await store.insertStatements(rows(12));
        await store.insertStatements(rows(13)); // six batches: more than one read opens
        const other = await aliceSession(store);
        await store.insertStatements(rows(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13).map((r) => ({ ...r, sessionId: other.id })));
        for (const afterSeq of [undefined, 0, 1, 3, 4, 5, 7, 9, 10, 11, 12, 13, 100]) {
          for (const limit of [undefined, 0, 1, 2, 5, 100]) {
            const expected = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
              .filter((seq) => afterSeq === undefined || seq > afterSeq)
              .slice(0, limit);
            assert.deepEqual(
              (await store.listStatements(s.id, { afterSeq, limit })).map((r) => r.seq),
              expected,
              `after ${afterSeq}, limit ${limit}`,
            );
          }
        }
      },
    );

    test('migration 0015: statements stored one row each before become a batch per session, read back as they were', { skip }, async () => {
      const fresh = await backend.create();
      try {
        // The store as it was before statements were batched, with rows written the old way.
        const old = await migratedTo(fresh.url, '0014_service_account_usage');
        const session = (id: string, principal: string) =>
          sql`insert into sessions (id, protocol, principal, connection, grant_id, client_address, started_at)
            values (${id}, 'postgres', ${principal}, 'orders-db', 'grt_x', '127.0.0.1:1', ${T0})`.execute(old);
        await session('ses_a', 'alice');
        await session('ses_b', 'bob');
        const result = { columns: ['email'], rows: [['a****@*******.com'], [null]], truncated: false };
        const statement = (sessionId: string, seq: number, text: string, outcome: string, extra: Partial<Record<string, unknown>> = {}) =>
          sql`insert into statements (session_id, seq, text, started_at, duration_ms, rows, outcome, error_code, error_message, result)
            values (${sessionId}, ${seq}, ${text}, ${T0 + seq}, ${1.5}, ${extra['rows'] ?? null}, ${outcome},
              ${extra['code'] ?? null}, ${extra['message'] ?? null}, ${extra['result'] ?? null})`.execute(old);
        await statement('ses_a', 2, 'select 1/0', 'error', { code: '22012', message: 'division by zéro' });
        await statement('ses_a', 1, 'select email from customers', 'ok', { rows: 2, result: JSON.stringify(result) });
        await statement('ses_a', 3, 'drop table customers', 'denied');
        await statement('ses_b', 1, 'sélect "✓"', 'ok', { rows: 0 });
        await old.destroy();

        const migrated = await openStore(fresh.url);
        try {
          assert.deepEqual(await migrated.listStatements('ses_a'), [
            {
              sessionId: 'ses_a',
              seq: 1,
              text: 'select email from customers',
              startedAt: T0 + 1,
              durationMs: 1.5,
              rows: 2,
              outcome: 'ok',
              errorCode: undefined,
              errorMessage: undefined,
              result,
            },
            {
              sessionId: 'ses_a',
              seq: 2,
              text: 'select 1/0',
              startedAt: T0 + 2,
              durationMs: 1.5,
              rows: undefined,
              outcome: 'error',
              errorCode: '22012',
              errorMessage: 'division by zéro',
              result: undefined,
            },
            {
              sessionId: 'ses_a',
              seq: 3,
              text: 'drop table customers',
              startedAt: T0 + 3,
              durationMs: 1.5,
              rows: undefined,
              outcome: 'denied',
              errorCode: undefined,
              errorMessage: undefined,
              result: undefined,
            },
          ]);
          assert.deepEqual(
            (await migrated.listStatements('ses_b')).map((r) => [r.seq, r.text, r.rows]),
            [[1, 'sélect "✓"', 0]],
          );
          const usage = await migrated.recordingUsage();
          assert.equal(usage.statements, 4);
          assert.ok(usage.bytes > 0);
          const alice = (await migrated.principalUsage('alice', T0, T0 + HOUR)).connections;
          assert.deepEqual(
            alice.map((c) => [c.connection, c.statements, c.refused, c.failed]),
            [['orders-db', 3, 1, 1]],
          );
          // Later writes go on after what was migrated.
          await migrated.insertStatements([
            { sessionId: 'ses_a', seq: 4, text: 'select 4', startedAt: T0 + 4, durationMs: 1, outcome: 'ok' },
          ]);
          await assert.rejects(
            migrated.insertStatements([{ sessionId: 'ses_a', seq: 2, text: 'again', startedAt: T0, durationMs: 1, outcome: 'ok' }]),
            StoreConflictError,
          );
          assert.deepEqual(
            (await migrated.listStatements('ses_a')).map((r) => r.seq),
            [1, 2, 3, 4],
          );
        } finally {
          await migrated.close();
        }
      } finally {
        await fresh.drop();
      }
    });

    test(
      'migration 0016: audit records stored one row each before become batches, read back and chained as they were',
      { skip },
      async () => {
        const fresh = await backend.create();
        try {
          // The store as it was before the audit log was batched, with records written the old way.
          const old = await migratedTo(fresh.url, '0015_statement_batches');
          const records: AuditRecord[] = [];
          let prev = GENESIS_HASH;
          for (let seq = 1; seq <= AUDIT_BATCH_RECORDS + 5; seq++) {
            const fields = {
              seq,
              at: T0 + seq,
              actor: seq % 2 ? 'alice' : 'gateway',
              action: seq % 2 ? 'grant.issued' : 'command.allowed',
              subject: `ses_${seq % 3}`,
              outcome: 'success' as const,
              details: { statement: `select ${seq} -- é ✓`, seq },
            };
            const hash = recordHash(fields, prev);
            records.push({ ...fields, prevHash: prev, hash });
            // Details as older gateways wrote them: JSON, not necessarily canonical.
            await sql`insert into audit_events (seq, at, actor, action, subject, outcome, details, prev_hash, hash)
            values (${seq}, ${fields.at}, ${fields.actor}, ${fields.action}, ${fields.subject}, ${fields.outcome},
              ${JSON.stringify(fields.details, null, seq % 2 ? 1 : 0)}, ${prev}, ${hash})`.execute(old);
            prev = hash;
          }
          await old.destroy();

          const migrated = await openStore(fresh.url);
          try {
            assert.deepEqual(await migrated.listAudit({ limit: 1000 }), records);
            assert.deepEqual(await migrated.listAudit({ subject: 'ses_1', action: 'grant.issued', limit: 1000 }), [
              ...records.filter((r) => r.subject === 'ses_1' && r.action === 'grant.issued'),
            ]);
            assert.deepEqual(await migrated.auditHead(), { seq: records.length, hash: prev });
            // Later appends go on the chain after what was migrated.
            const next = await migrated.appendAudit({
              at: T0,
              actor: 'alice',
              action: 'logout',
              subject: 'alice',
              outcome: 'success',
              details: {},
            });
            assert.equal(next.seq, records.length + 1);
            assert.equal(next.prevHash, prev);
          } finally {
            await migrated.close();
          }
        } finally {
          await fresh.drop();
        }
      },
    );

    test(
      'recordings: usage in bytes, ended sessions oldest end first, deletion of ended ones only, the audit log kept',
      { skip },
      async () => {
        // A store of its own: the totals count every session in it.
        const fresh = await backend.create();
        const own = await openStore(fresh.url);
        try {
          const session = (startedAt: number) =>
            own.startSession({
              protocol: 'postgres',
              principal: 'alice',
              connection: 'orders-db',
              grantId: 'grt_x',
              clientAddress: '127.0.0.1:1',
              startedAt,
            });
          const [a, b, c, d, e] = [
            await session(T0),
            await session(T0 + 1),
            await session(T0 + 2),
            await session(T0 + 3),
            await session(T0 + 4),
          ];
          const result = { columns: ['email'], rows: [['a****@*******.com'], [null]], truncated: false };
          const rows: NewStatement[] = [
            { sessionId: a.id, seq: 1, text: 'select email from customers', startedAt: T0, durationMs: 1, rows: 2, outcome: 'ok', result },
            {
              sessionId: a.id,
              seq: 2,
              text: 'select 1/0',
              startedAt: T0,
              durationMs: 1,
              outcome: 'error',
              errorCode: '22012',
              errorMessage: 'division by zéro',
            },
            { sessionId: b.id, seq: 1, text: 'sélect ✓', startedAt: T0, durationMs: 1, outcome: 'ok' },
            { sessionId: c.id, seq: 1, text: 'select pg_sleep(3600)', startedAt: T0, durationMs: 1, outcome: 'ok' },
          ];
          await own.insertStatements(rows);
          // Each session's statements are one batch: its JSON's bytes and the row's fixed share.
          const bytesOf = (...statements: NewStatement[]) => batchStatements(statementFields(statements))[0]!.bytes;
          const bytesA = bytesOf(rows[0]!, rows[1]!);
          const bytesB = bytesOf(rows[2]!);
          const bytesC = bytesOf(rows[3]!);
          assert.deepEqual(await own.recordingUsage(), { sessions: 5, statements: 4, bytes: bytesA + bytesB + bytesC });

          // c stays live; b and d end at the same time (then ordered by id), a later, e (no statements) last.
          await own.endSession(a.id, T0 + 20_000, 'client closed');
          await own.endSession(b.id, T0 + 10_000, 'client closed');
          await own.endSession(d.id, T0 + 10_000, 'client closed');
          await own.endSession(e.id, T0 + 30_000, 'client closed');
          const [first, second] = [b, d].sort((x, y) => (x.id < y.id ? -1 : 1));
          const ended = await own.listEndedSessions({ limit: 10 });
          assert.deepEqual(ended, [
            {
              id: first!.id,
              startedAt: first!.startedAt,
              endedAt: T0 + 10_000,
              statements: first === b ? 1 : 0,
              bytes: first === b ? bytesB : 0,
            },
            {
              id: second!.id,
              startedAt: second!.startedAt,
              endedAt: T0 + 10_000,
              statements: second === b ? 1 : 0,
              bytes: second === b ? bytesB : 0,
            },
            { id: a.id, startedAt: T0, endedAt: T0 + 20_000, statements: 2, bytes: bytesA },
            { id: e.id, startedAt: T0 + 4, endedAt: T0 + 30_000, statements: 0, bytes: 0 },
          ]);
          const ids = (xs: { id: string }[]) => xs.map((x) => x.id);
          assert.deepEqual(ids(await own.listEndedSessions({ limit: 2 })), [first!.id, second!.id]);
          assert.deepEqual(ids(await own.listEndedSessions({ limit: 2, after: { endedAt: T0 + 10_000, id: first!.id } })), [
            second!.id,
            a.id,
          ]);
          assert.deepEqual(ids(await own.listEndedSessions({ limit: 10, endedBefore: T0 + 20_000 })), [first!.id, second!.id]);
          assert.deepEqual(await own.listEndedSessions({ limit: 10, endedBefore: T0 + 10_000 }), []);

          const audited = await own.appendAudit({
            at: T0,
            actor: 'gateway',
            action: 'session.ended',
            subject: a.id,
            outcome: 'success',
            details: {},
          });
          // The live session and an unknown id are passed over, not deleted.
          assert.deepEqual(await own.deleteRecordings([a.id, c.id, 'ses_missing']), {
            sessions: 1,
            statements: 2,
            bytes: bytesA,
            oldestStartedAt: T0,
            newestEndedAt: T0 + 20_000,
          });
          assert.equal(await own.getSession(a.id), undefined);
          assert.deepEqual(await own.listStatements(a.id), []);
          assert.equal((await own.getSession(c.id))?.endedAt, undefined);
          assert.equal((await own.listStatements(c.id)).length, 1);
          assert.deepEqual(await own.listAudit({ subject: a.id }), [audited]);
          assert.deepEqual(await own.deleteRecordings([a.id, c.id]), {
            sessions: 0,
            statements: 0,
            bytes: 0,
            oldestStartedAt: undefined,
            newestEndedAt: undefined,
          });
          assert.deepEqual(await own.deleteRecordings([b.id, d.id, e.id]), {
            sessions: 3,
            statements: 1,
            bytes: bytesB,
            oldestStartedAt: T0 + 1,
            newestEndedAt: T0 + 30_000,
          });
          assert.deepEqual(await own.recordingUsage(), { sessions: 1, statements: 1, bytes: bytesC });
          assert.deepEqual(await own.listEndedSessions({ limit: 10 }), []);
          await assert.rejects(own.deleteRecordings(Array.from({ length: MAX_DELETE_BATCH + 1 }, (_, i) => `ses_${i}`)), RangeError);
        } finally {
          await own.close();
          await fresh.drop();
        }
      },
    );

    test('access approvals: the request is linked, decided with its approval once, and names its grant once', { skip }, async () => {
      const tag = randomBytes(4).toString('hex');
      const decide = async (status: 'approved' | 'denied' | 'expired', reason?: string) => {
        const request = await store.insertAccessRequest({
          principal: `p-${tag}`,
          connection: 'orders-db',
          durationMs: HOUR,
          reason: 'INC-1',
          requestedAt: T0,
        });
        const approval = await store.insertApproval({
          kind: 'access',
          requester: `p-${tag}`,
          connection: 'orders-db',
          requestId: request.id,
          reason: 'INC-1',
          approvers: 'dba',
          durationMs: HOUR,
          createdAt: T0,
          expiresAt: T0 + HOUR,
        });
        assert.equal(approval.durationMs, HOUR);
        assert.equal((await store.getAccessRequest(request.id))?.approvalId, approval.id);
        assert.equal(await store.setAccessRequestGrant(request.id, 'grt_early'), false, 'not granted yet');
        assert.equal(await store.decideApproval(approval.id, status, T0 + 5, 'dana', reason), true);
        assert.equal(await store.decideApproval(approval.id, 'approved', T0 + 6, 'dana', undefined), false);
        return store.getAccessRequest(request.id);
      };
      const granted = await decide('approved');
      assert.equal(granted?.status, 'granted');
      assert.equal(granted?.decidedBy, 'dana');
      assert.equal(granted?.decidedAt, T0 + 5);
      assert.equal(granted?.grantId, undefined);
      assert.equal(await store.setAccessRequestGrant(granted!.id, 'grt_one'), true);
      assert.equal(await store.setAccessRequestGrant(granted!.id, 'grt_two'), false, 'a credential is picked up once');
      assert.equal((await store.getAccessRequest(granted!.id))?.grantId, 'grt_one');
      const denied = await decide('denied', 'not during the freeze');
      assert.equal(denied?.status, 'denied');
      assert.equal(denied?.decisionReason, 'not during the freeze');
      assert.equal(await store.setAccessRequestGrant(denied!.id, 'grt_three'), false);
      assert.equal((await decide('expired', 'nobody decided'))?.status, 'expired');
      assert.equal(await store.getAccessRequest('req_nothing'), undefined);
    });

    test('access review: grants, sessions and statements counted over a window; the last decision per pair', { skip }, async () => {
      const fresh = await backend.create();
      const own = await openStore(fresh.url);
      try {
        const window = { since: T0, until: T0 + 10 * HOUR };
        const used = await own.insertGrant(grant({ principal: 'alice', createdAt: T0 + 1, expiresAt: T0 + 20 * HOUR }));
        await own.insertGrant(grant({ principal: 'alice', createdAt: T0 + 2, expiresAt: T0 + 3 }));
        const idle = await own.insertGrant(grant({ principal: 'carl', grantedBy: 'dina', createdAt: T0 + 5, expiresAt: T0 + 20 * HOUR }));
        await own.insertGrant(grant({ principal: 'alice', createdAt: T0 - 1, expiresAt: T0 + 20 * HOUR })); // before the window
        await own.insertGrant(grant({ principal: 'alice', createdAt: T0 + 10 * HOUR, expiresAt: T0 + 20 * HOUR })); // at its end
        const session = (startedAt: number) =>
          own.startSession({
            protocol: 'postgres',
            principal: 'alice',
            connection: 'orders-db',
            grantId: used.id,
            clientAddress: '[::1]:1',
            startedAt,
          });
        const first = await session(T0 + 100);
        const second = await session(T0 + 200);
        await session(T0 + 10 * HOUR); // outside
        await own.endSession(first.id, T0 + 150, 'client closed');
        const statement = (sessionId: string, seq: number, text: string, outcome: 'ok' | 'denied') => ({
          sessionId,
          seq,
          text,
          startedAt: T0 + 100 + seq,
          durationMs: 1,
          outcome,
        });
        await own.insertStatements([
          statement(first.id, 1, 'select * from customers', 'ok'),
          statement(first.id, 2, 'select * from customers', 'ok'),
          statement(first.id, 3, 'drop table customers', 'denied'),
          statement(second.id, 1, 'select * from customers', 'ok'),
        ]);

        const grants = await own.grantActivity(window);
        const by = (principal: string) => grants.find((g) => g.principal === principal);
        assert.equal(grants.length, 2);
        assert.deepEqual(by('alice'), {
          principal: 'alice',
          connection: 'orders-db',
          grantedBy: 'policy:oncall',
          issued: 2,
          unused: 1,
          lastIssuedAt: T0 + 2,
        });
        assert.deepEqual(by('carl'), {
          principal: 'carl',
          connection: 'orders-db',
          grantedBy: 'dina',
          issued: 1,
          unused: 1,
          lastIssuedAt: T0 + 5,
        });

        const live = await own.liveGrantActivity(T0 + 4);
        assert.deepEqual(
          live.map((l) => [l.grant.id, l.sessions]).filter(([id]) => id === used.id || id === idle.id),
          [
            [idle.id, 0],
            [used.id, 3],
          ],
        );
        assert.equal(live.length, 4, 'the expired grant is not live');

        assert.deepEqual(await own.sessionActivity(window), [
          { principal: 'alice', connection: 'orders-db', sessions: 2, live: 1, lastStartedAt: T0 + 200 },
        ]);

        const statements = await own.statementActivity(window, 10);
        assert.deepEqual(statements[0], {
          principal: 'alice',
          connection: 'orders-db',
          text: 'select * from customers',
          outcome: 'ok',
          count: 3,
          lastAt: T0 + 102,
        });
        assert.deepEqual(
          statements.slice(1).map((s) => [s.text, s.outcome, s.count]),
          [['drop table customers', 'denied', 1]],
        );
        assert.equal((await own.statementActivity(window, 1)).length, 1, 'limited, the most frequent first');
        assert.deepEqual(await own.statementActivity({ since: T0 + 300, until: T0 + HOUR }, 10), []);

        assert.deepEqual(await own.latestReviewDecisions(), []);
        const decide = (principal: string, decision: 'certified' | 'revoked', decidedAt: number, grantsRevoked: string[] = []) =>
          own.insertReviewDecision({
            principal,
            connection: 'orders-db',
            decision,
            note: `n${decidedAt}`,
            decidedBy: 'ada',
            decidedAt,
            grantsRevoked,
          });
        await decide('alice', 'certified', T0 + 1);
        const last = await decide('alice', 'revoked', T0 + 2, [used.id]);
        const carl = await decide('carl', 'certified', T0 + 1);
        assert.match(last.id, /^rvd_[0-9a-f]{32}$/);
        assert.deepEqual(await own.latestReviewDecisions(), [last, carl]);
        assert.deepEqual(last.grantsRevoked, [used.id]);
      } finally {
        await own.close();
        await fresh.drop();
      }
    });
  });
}

test('sqlite: the database folder is created private', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'drawbridge-store-'));
  try {
    const store = await openStore(`sqlite:${join(dir, 'a', 'b', 'state.db')}`);
    await store.close();
    assert.equal((await stat(join(dir, 'a', 'b'))).mode & 0o777, 0o700);
    assert.equal((await stat(join(dir, 'a', 'b', 'state.db'))).mode & 0o777, 0o600);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('sqlite::memory: opens an empty store', async () => {
  const store = await openStore('sqlite::memory:');
  try {
    assert.equal(store.kind, 'sqlite');
    assert.deepEqual(await store.listSessions({ limit: 5 }), []);
  } finally {
    await store.close();
  }
});

test('an unsupported store URL is refused without echoing it', async () => {
  await assert.rejects(openStore('mysql://root:hunter2@db/x'), (err: Error) => {
    assert.equal(err.message, 'unsupported store URL scheme mysql:; expected sqlite:<path> or postgres://…');
    return true;
  });
});
