import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { startDemoTarget, type DemoTarget } from './target.ts';

function client(target: DemoTarget, extra: Partial<pg.ClientConfig> = {}): pg.Client {
  return new pg.Client({ host: target.host, port: target.port, user: target.user, database: target.database, ...extra });
}

describe('demo target', () => {
  let target: DemoTarget;
  before(async () => {
    target = await startDemoTarget();
  });
  after(async () => {
    await target.close();
  });

  it('serves the seeded tables to several clients one after another', async () => {
    for (let i = 0; i < 3; i++) {
      const c = client(target);
      await c.connect();
      const simple = await c.query('SELECT count(*)::int AS n FROM customers');
      assert.equal(simple.rows[0].n, 200);
      const extended = await c.query('SELECT count(*)::int AS n FROM payments WHERE customer_id <= $1', [200]);
      assert.equal(extended.rows[0].n, 1000);
      await c.end();
    }
  });

  it('keeps a connection usable after an error', async () => {
    const c = client(target);
    await c.connect();
    await assert.rejects(c.query('SELECT no_such_column FROM customers'), { code: '42703' });
    await assert.rejects(c.query('SELECT 1 / $1::int', [0]), { code: '22012' });
    const r = await c.query('SELECT email FROM customers WHERE id = $1', [1]);
    assert.match(r.rows[0].email, /@example\.(com|org|net)$/);
    await c.end();
  });

  it('runs a transaction, and other clients wait for it', async () => {
    const a = client(target);
    const b = client(target);
    await a.connect();
    await b.connect();
    await a.query('CREATE TABLE tx_probe (x int)');
    await a.query('BEGIN');
    await a.query('INSERT INTO tx_probe VALUES (1)');
    const seen = b.query('SELECT count(*)::int AS n FROM tx_probe');
    await new Promise((resolve) => setTimeout(resolve, 100));
    await a.query('ROLLBACK');
    assert.equal((await seen).rows[0].n, 0);
    await a.query('DROP TABLE tx_probe');
    await Promise.all([a.end(), b.end()]);
  });

  it('serves a few concurrent clients with extended queries', async () => {
    const clients = Array.from({ length: 4 }, () => client(target));
    await Promise.all(clients.map((c) => c.connect()));
    await Promise.all(
      clients.map(async (c, i) => {
        for (let k = 0; k < 25; k++) {
          const r = await c.query('SELECT $1::int AS v, full_name FROM customers WHERE id = $2', [i * 100 + k, k + 1]);
          assert.equal(r.rows[0].v, i * 100 + k);
        }
      }),
    );
    await Promise.all(clients.map((c) => c.end()));
  });

  it('refuses COPY FROM STDIN without breaking the backend', async () => {
    const c = client(target);
    await c.connect();
    await assert.rejects(c.query('COPY customers (full_name) FROM STDIN'), { code: '0A000' });
    await c.query('BEGIN');
    await assert.rejects(c.query('COPY customers FROM stdin'), { code: '0A000' });
    await assert.rejects(c.query('SELECT 1'), { code: '25P02' }); // the transaction failed, as in PostgreSQL
    await c.query('ROLLBACK');
    assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1);
    await c.end();
  });

  it('rolls back the transaction of a client that disconnects, and lets the next one in', async () => {
    const a = client(target);
    a.on('error', () => {}); // we cut its connection on purpose
    await a.connect();
    await a.query('BEGIN');
    await a.query("UPDATE customers SET city = 'Nowhere' WHERE id = 1");
    const b = client(target);
    const connected = b.connect(); // waits for a: the backend is in a's transaction
    await new Promise((resolve) => setTimeout(resolve, 50));
    const seen = b.query('SELECT city FROM customers WHERE id = 1');
    a.connection.stream.destroy();
    await connected;
    assert.notEqual((await seen).rows[0].city, 'Nowhere');
    await b.end();
  });

  it('resets session state once the last client leaves', async () => {
    const a = client(target);
    await a.connect();
    await a.query("SET application_name = 'first-client'");
    await a.query({ name: 'probe', text: 'SELECT 1' });
    await a.end();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const b = client(target);
    await b.connect();
    assert.notEqual((await b.query('SHOW application_name')).rows[0].application_name, 'first-client');
    assert.equal((await b.query({ name: 'probe', text: 'SELECT 2 AS two' })).rows[0].two, 2);
    await b.end();
  });

  it('answers SSLRequest with N (no TLS)', async () => {
    const c = client(target, { ssl: { rejectUnauthorized: false } });
    await assert.rejects(c.connect(), /does not support SSL/);
  });
});

describe('demo target connection limit', () => {
  it('refuses a client over the limit with SQLSTATE 53300', async () => {
    const target = await startDemoTarget({ maxConnections: 1, seed: { customers: 1, payments: 1 } });
    try {
      const a = client(target);
      await a.connect();
      await assert.rejects(client(target).connect(), { code: '53300' });
      await a.end();
    } finally {
      await target.close();
    }
  });
});

describe('demo target with a persistent dataDir', () => {
  it('seeds on first start only', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'drawbridge-demo-'));
    try {
      const first = await startDemoTarget({ dataDir: dir, seed: { customers: 5, payments: 7 } });
      let c = client(first);
      await c.connect();
      await c.query("INSERT INTO customers (full_name, email, created_at) VALUES ('Kept Row', 'kept@example.com', now())");
      await c.end();
      await first.close();

      const second = await startDemoTarget({ dataDir: dir, seed: { customers: 5, payments: 7 } });
      c = client(second);
      await c.connect();
      const r = await c.query('SELECT (SELECT count(*)::int FROM customers) AS c, (SELECT count(*)::int FROM payments) AS p');
      assert.deepEqual(r.rows[0], { c: 6, p: 7 });
      await c.end();
      await second.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
