/**
 * A refused statement, through real clients: the error arrives exactly where the target's answer
 * would have been, in simple queries, in pipelines of the extended protocol, and when the guard
 * takes its time; nothing refused reaches the target, and the session goes on. (Policy comes in a
 * later issue; here a test guard refuses anything that names `forbidden`.)
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { Command, Verdict } from '../src/core/index.ts';
import type { Guard } from '../src/session/pipeline.ts';
import { encodeFrontend } from '../src/wire/pg/index.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { asAdmin, createDatabase, eventually, gatewayClient, type ThrowawayDatabase } from './support/pg-db.ts';
import { RawPg } from './support/raw-pg.ts';

const REASON = 'statements naming "forbidden" are not allowed in this test';

function refuseForbidden(delayMs: number): Guard {
  const decide = (command: Command): Verdict =>
    /forbidden/i.test(command.text) ? { outcome: 'deny', reason: REASON, policy: 'test' } : { outcome: 'allow' };
  return {
    decide: (_session, command) =>
      delayMs === 0 ? decide(command) : new Promise((resolve) => setTimeout(() => resolve(decide(command)), delayMs)),
  };
}

for (const delayMs of [0, 5]) {
  describe(`a refused statement (${delayMs === 0 ? 'synchronous' : 'asynchronous'} guard)`, () => {
    let db: ThrowawayDatabase;
    let gw: TestGateway;
    let client: pg.Client;

    before(async () => {
      db = await createDatabase('guard');
      await asAdmin((admin) => admin.query('CREATE TABLE forbidden (id int); CREATE TABLE audit_probe (id int)'), db.name);
      gw = await startTestGateway({ connections: [{ name: 'app', database: db.name }], guard: refuseForbidden(delayMs) });
      client = await gatewayClient(gw, 'app');
    });

    after(async () => {
      await client?.end();
      await gw?.close();
      await db?.drop();
    });

    it('fails a simple query with SQLSTATE 42501 and the reason, and the session goes on', async () => {
      await assert.rejects(client.query('SELECT * FROM forbidden'), (error: pg.DatabaseError) => {
        assert.equal(error.code, '42501');
        assert.equal(error.message, REASON);
        assert.equal(error.severity, 'ERROR');
        return true;
      });
      assert.deepEqual((await client.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
    });

    it("answers a pipeline in order, with the error in the refused statement's place", async () => {
      const results = await Promise.allSettled([
        client.query('SELECT $1::int AS a', [1]),
        client.query('SELECT * FROM forbidden WHERE id = $1', [2]),
        client.query('SELECT $1::int AS c', [3]),
        client.query('SELECT 4 AS d'),
      ]);
      assert.equal(results[0].status, 'fulfilled');
      assert.deepEqual(results[0].status === 'fulfilled' && results[0].value.rows, [{ a: 1 }]);
      assert.equal(results[1].status === 'rejected' && (results[1].reason as pg.DatabaseError).code, '42501');
      assert.deepEqual(results[2].status === 'fulfilled' && results[2].value.rows, [{ c: 3 }]);
      assert.deepEqual(results[3].status === 'fulfilled' && results[3].value.rows, [{ d: 4 }]);
    });

    it('puts the error after the replies to the messages before it, in one batch of the extended protocol', async () => {
      const raw = await RawPg.connect({ port: gw.pgPort });
      try {
        assert.ok((await raw.login('alice', 'app', await gw.mint('alice', 'app'))).ok);
        raw.send(
          Buffer.concat([
            encodeFrontend({ type: 'Parse', name: '', sql: 'SELECT 1', paramTypes: [] }),
            encodeFrontend({ type: 'Bind', portal: '', statement: '', paramFormats: [], params: [], resultFormats: [] }),
            encodeFrontend({ type: 'Describe', target: 'P', name: '' }),
            encodeFrontend({ type: 'Execute', portal: '', maxRows: 0 }),
            encodeFrontend({ type: 'Parse', name: '', sql: 'DELETE FROM forbidden', paramTypes: [] }),
            encodeFrontend({ type: 'Bind', portal: '', statement: '', paramFormats: [], params: [], resultFormats: [] }),
            encodeFrontend({ type: 'Execute', portal: '', maxRows: 0 }),
            encodeFrontend({ type: 'Sync' }),
            encodeFrontend({ type: 'Query', sql: 'SELECT 2' }),
          ]),
        );
        const first = await raw.until(['ReadyForQuery'], 5000, false);
        assert.deepEqual(
          first.map((m) => m.type),
          ['ParseComplete', 'BindComplete', 'RowDescription', 'DataRow', 'CommandComplete', 'ErrorResponse', 'ReadyForQuery'],
        );
        const second = await raw.until(['ReadyForQuery'], 5000, false);
        assert.deepEqual(
          second.map((m) => m.type),
          ['RowDescription', 'DataRow', 'CommandComplete', 'ReadyForQuery'],
        );
      } finally {
        raw.destroy();
      }
    });

    it('refuses a statement hidden in a multi-statement query before any of it runs', async () => {
      await assert.rejects(client.query('INSERT INTO audit_probe VALUES (1); DELETE FROM forbidden'), { code: '42501' });
      const count = await asAdmin((admin) => admin.query('SELECT count(*)::int AS n FROM audit_probe'), db.name);
      assert.equal(count.rows[0].n, 0);
    });

    it('inside a transaction block, a refusal aborts the transaction as a failed statement would', async () => {
      await client.query('BEGIN');
      await client.query('INSERT INTO audit_probe VALUES (7)');
      await assert.rejects(client.query('SELECT * FROM forbidden'), (error: pg.DatabaseError) => {
        assert.equal(error.code, '42501');
        assert.equal(error.message, REASON);
        return true;
      });
      await assert.rejects(client.query('SELECT 1'), { code: '25P02' });
      const commit = await client.query('COMMIT');
      assert.equal(commit.command, 'ROLLBACK');
      const count = await asAdmin((admin) => admin.query('SELECT count(*)::int AS n FROM audit_probe WHERE id = 7'), db.name);
      assert.equal(count.rows[0].n, 0, 'nothing of the transaction was committed');
      assert.deepEqual((await client.query('SELECT 2 AS two')).rows, [{ two: 2 }]);
    });

    it('records the refusal', async () => {
      const sessions = await gw.gateway.store.listSessions({ connection: 'app' });
      const statements = await eventually(
        async () => (await Promise.all(sessions.map((s) => gw.gateway.store.listStatements(s.id)))).flat(),
        (all) => all.some((s) => s.outcome === 'denied'),
      );
      const denied = statements.find((s) => s.outcome === 'denied' && s.text === 'SELECT * FROM forbidden');
      assert.ok(denied, 'the refused statement is recorded');
      assert.equal(denied.errorCode, 'command.denied');
      assert.equal(denied.errorMessage, REASON);
    });
  });
}
