/**
 * Guardrails through real clients against a real PostgreSQL: the default policy pack, wired in
 * as the gateway's guard, refuses what it should with PostgreSQL's own error shape, lets
 * look-alikes through, and the canary table is untouched after every refusal.
 * (The gateway does not turn the pack on by default yet; this test injects the guard.)
 */

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { systemClock } from '../src/core/index.ts';
import { PolicyEngine } from '../src/policy/cedar/engine.ts';
import { PolicyGuard } from '../src/policy/guard.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { asAdmin, createDatabase, gatewayClient, type ThrowawayDatabase } from './support/pg-db.ts';

let db: ThrowawayDatabase;
let gw: TestGateway;

before(async () => {
  db = await createDatabase('policy');
  await asAdmin(
    (admin) =>
      admin.query(
        'CREATE TABLE orders (id int primary key, status text); INSERT INTO orders SELECT g, $$new$$ FROM generate_series(1, 10) g',
      ),
    db.name,
  );
  const engine = PolicyEngine.defaultPack();
  gw = await startTestGateway({
    connections: [{ name: 'orders-db', database: db.name }],
    guard: await PolicyGuard.create(() => engine, systemClock),
  });
});

after(async () => {
  await gw?.close();
  await db?.drop();
});

async function canary(): Promise<number> {
  return asAdmin(async (admin) => Number((await admin.query('SELECT count(*) AS n FROM orders')).rows[0].n), db.name);
}

describe('the default policy pack through psql', () => {
  test('DROP TABLE is refused with the policy in the error, and the table stays', async () => {
    const credential = await gw.mint('alice', 'orders-db');
    const result = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(
        'psql',
        [
          '-X',
          '-v',
          'ON_ERROR_STOP=1',
          '-h',
          gw.host,
          '-p',
          String(gw.pgPort),
          '-U',
          'alice',
          '-d',
          'orders-db',
          '-c',
          'DROP TABLE orders;',
        ],
        { env: { ...process.env, PGPASSWORD: credential }, timeout: 20_000 },
        (error, _stdout, stderr) => resolve({ code: error ? 1 : 0, stderr }),
      ),
    );
    assert.equal(result.code, 1);
    assert.match(result.stderr, /ERROR: {2}blocked by policy "no-destructive-ddl": DROP TABLE is not allowed on orders-db/);
    assert.equal(await canary(), 10);
  });
});

describe('the default policy pack through node-postgres', () => {
  let client: pg.Client;
  before(async () => {
    client = await gatewayClient(gw, 'orders-db');
  });
  after(() => client.end());

  const refused = [
    'DELETE FROM orders',
    'DELETE FROM orders WHERE 1=1',
    'WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d',
    'SELECT 1; TRUNCATE orders',
    'UPDATE orders SET status = $$x$$ WHERE true',
    "COPY orders TO PROGRAM 'cat'",
  ];
  for (const sql of refused) {
    test(`refused: ${sql}`, async () => {
      await assert.rejects(
        client.query(sql),
        (error: pg.DatabaseError) => error.code === '42501' && /^blocked by policy "/.test(error.message),
      );
      assert.equal(await canary(), 10);
    });
  }

  test('refused in the extended protocol too, and the session goes on', async () => {
    await assert.rejects(client.query('DELETE FROM orders WHERE $1::int = $1::int', [1]), { code: '42501' });
    assert.deepEqual((await client.query('SELECT count(*)::int AS n FROM orders WHERE id = $1', [3])).rows, [{ n: 1 }]);
    assert.equal(await canary(), 10);
  });

  test('look-alikes pass', async () => {
    assert.deepEqual((await client.query("SELECT 'DROP TABLE orders' AS text")).rows, [{ text: 'DROP TABLE orders' }]);
    const updated = await client.query('UPDATE orders SET status = $1 WHERE id = $2', ['paid', 4]);
    assert.equal(updated.rowCount, 1);
  });
});
