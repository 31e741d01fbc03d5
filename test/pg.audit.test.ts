/**
 * A statement is acknowledged to its client (ReadyForQuery) only once its audit record is
 * committed, and a session whose records cannot be committed ends (fail closed), against a
 * real PostgreSQL store: its audit lock held by another connection, then a trigger that refuses
 * every audit insert.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { AUDIT_LOCK_KEY } from '../src/store/store.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { ADMIN, createDatabase, gatewayClient, type ThrowawayDatabase } from './support/pg-db.ts';

/** Whether `promise` settles within `ms` (the statement is held meanwhile). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((resolve) => setTimeout(resolve, ms));
  return settled;
}

describe('statements acknowledged after their audit record is committed (PostgreSQL store)', () => {
  let storeDb: ThrowawayDatabase;
  let storeUrl: string;
  let gw: TestGateway;
  let atOnce: TestGateway;
  /** A connection of the test's own to the gateways' store. */
  let store: pg.Client;

  before(async () => {
    storeDb = await createDatabase('auditack');
    storeUrl = `postgres://${ADMIN.user}@${ADMIN.host}:${ADMIN.port}/${storeDb.name}`;
    gw = await startTestGateway({ store: storeUrl, extraYaml: ['audit:', '  acknowledge: after-commit'] });
    atOnce = await startTestGateway({ store: storeUrl }); // the default: acknowledge: at-once
    store = new pg.Client({ ...ADMIN, database: storeDb.name });
    await store.connect();
  });

  after(async () => {
    await store?.end();
    await gw?.close();
    await atOnce?.close();
    await storeDb?.drop();
  });

  const allowedRecords = async (marker: string) =>
    (
      await store.query<{ n: string }>(
        `select count(*) as n from audit_batches, json_array_elements(body::json) r where r ->> 3 = 'command.allowed' and (r -> 6)::text like $1`,
        [`%${marker}%`],
      )
    ).rows[0]!.n;

  it('the result waits while the audit log cannot commit, and comes once the record is committed', async () => {
    const client = await gatewayClient(gw, 'local', 'alice');
    const fast = await gatewayClient(atOnce, 'local', 'bob');
    try {
      await store.query('select pg_advisory_lock($1)', [AUDIT_LOCK_KEY]);
      let locked = true;
      try {
        const held = client.query(`select 'held-statement-1' as marker`);
        assert.equal(await settlesWithin(held, 500), false, 'the client heard the statement was done before its record was committed');
        assert.equal(await allowedRecords('held-statement-1'), '0');
        // With acknowledge: at-once (the default) the same statement is answered while its record waits.
        const answered = await fast.query(`select 'at-once-statement' as marker`);
        assert.equal(answered.rows[0].marker, 'at-once-statement');
        await store.query('select pg_advisory_unlock($1)', [AUDIT_LOCK_KEY]);
        locked = false;
        const result = await held;
        assert.equal(result.rows[0].marker, 'held-statement-1');
        assert.equal(await allowedRecords('held-statement-1'), '1', 'acknowledged, so on record');
      } finally {
        if (locked) await store.query('select pg_advisory_unlock($1)', [AUDIT_LOCK_KEY]);
      }
      // The session goes on as usual.
      assert.equal((await client.query('select 2 as two')).rows[0].two, 2);
    } finally {
      await client.end();
      await fast.end();
    }
  });

  it('a session whose records cannot be committed ends with 58000 audit.unavailable; new ones cannot start; all is well once the store is', async () => {
    const client = await gatewayClient(gw, 'local', 'carol');
    const quick = await gatewayClient(atOnce, 'local', 'erin');
    quick.on('error', () => {});
    // Minted before: minting is on record too, and would fail.
    const dave = { host: gw.host, port: gw.pgPort, user: 'dave', database: 'local', password: await gw.mint('dave', 'local') };
    const ended = new Promise<unknown>((resolve) => client.once('error', resolve));
    await store.query(`
      create function refuse_audit() returns trigger language plpgsql as $$ begin raise exception 'disk full'; end $$;
      create trigger refuse_audit before insert on audit_batches for each row execute function refuse_audit();
    `);
    let refusing = true;
    try {
      await assert.rejects(client.query(`select 'unrecorded-statement'`), (error: Error & { code?: string }) => {
        assert.equal(error.code, '58000');
        assert.match(error.message, /the audit log cannot be written: statements are not run unrecorded/);
        return true;
      });
      await ended;
      // Answering at once, a session learns it a statement later: the one after the failed commit fails.
      let failure: (Error & { code?: string }) | undefined;
      for (let i = 0; i < 50 && !failure; i++) {
        await quick.query(`select 'at-once-unrecorded-${i}'`).catch((error: Error) => (failure = error));
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(failure?.code, '58000', String(failure));
      await quick.end().catch(() => {});
      const late = new pg.Client(dave);
      await assert.rejects(late.connect(), (error: Error & { code?: string }) => {
        assert.equal(error.code, '58000');
        assert.match(error.message, /the audit log cannot be written/);
        return true;
      });
      await store.query('drop trigger refuse_audit on audit_batches; drop function refuse_audit()');
      refusing = false;
      const again = await gatewayClient(gw, 'local', 'carol');
      try {
        assert.equal((await again.query(`select 'recorded-again' as m`)).rows[0].m, 'recorded-again');
        assert.equal(await allowedRecords('recorded-again'), '1');
      } finally {
        await again.end();
      }
      assert.equal(await allowedRecords('unrecorded-statement'), '0');
    } finally {
      if (refusing) await store.query('drop trigger if exists refuse_audit on audit_batches; drop function if exists refuse_audit()');
    }
  });
});
