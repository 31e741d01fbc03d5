/**
 * The demo target (PGlite served over the wire, seeded with fictional customers and payments)
 * behind the gateway, as `npm start` wires it: node-postgres and psql read the sample data,
 * run a parameterized query, hit an error and recover.
 *
 * The demo target is in-memory and private to this file, so no database on the machine's
 * PostgreSQL is needed. Known limits of the target (see src/demo/pglite-server.ts): one shared
 * backend, no cancel, no COPY FROM STDIN; the tests stay within what it supports.
 * psql is optional (only its absence skips the psql test).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import pg from 'pg';
import { startDemoTarget, type DemoTarget } from '../src/demo/target.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { eventually, gatewayClient, sqlstate } from './support/pg-db.ts';

const CONNECTION = 'demo';

const psqlAvailable = await new Promise<boolean>((resolve) => execFile('psql', ['--version'], (error) => resolve(!error)));

let target: DemoTarget;
let gw: TestGateway;
const clients: pg.Client[] = [];

async function connect(principal = 'alice'): Promise<pg.Client> {
  const client = await gatewayClient(gw, CONNECTION, principal);
  clients.push(client);
  return client;
}

before(async () => {
  target = await startDemoTarget();
  gw = await startTestGateway({
    connections: [{ name: CONNECTION, host: target.host, port: target.port, database: target.database, user: target.user, tls: 'disable' }],
  });
});

after(async () => {
  await Promise.allSettled(clients.map((client) => client.end()));
  await gw?.close();
  await target?.close();
});

describe('the demo target behind the gateway', () => {
  test('customers and payments hold the seeded rows', async () => {
    const client = await connect();
    const counts = await client.query(
      'select (select count(*)::int from customers) as customers, (select count(*)::int from payments) as payments',
    );
    assert.deepEqual(counts.rows, [{ customers: 200, payments: 1000 }]);

    const customers = await client.query('select id, full_name, email, city, created_at from customers order by id limit 5');
    assert.equal(customers.rowCount, 5);
    assert.deepEqual(
      customers.rows.map((r) => r.id),
      [1, 2, 3, 4, 5],
    );
    for (const row of customers.rows) {
      assert.equal(typeof row.full_name, 'string');
      assert.ok(row.full_name.length > 0);
      assert.ok(row.created_at instanceof Date);
    }

    const payments = await client.query('select * from payments');
    assert.equal(payments.rowCount, 1000);
    assert.deepEqual(
      payments.fields.map((f) => f.name),
      ['id', 'customer_id', 'amount', 'currency', 'card_number', 'status', 'created_at'],
    );
    for (const row of payments.rows) assert.ok(['paid', 'refunded', 'failed'].includes(row.status), row.status);
  });

  test('a parameterized query', async () => {
    const client = await connect();
    const { rows } = await client.query(
      'select c.id, count(p.id)::int as n, coalesce(sum(p.amount), 0)::text as total from customers c left join payments p on p.customer_id = c.id where c.id = any($1::int[]) group by c.id order by c.id',
      [[3, 1, 2]],
    );
    assert.deepEqual(
      rows.map((r) => r.id),
      [1, 2, 3],
    );
    const direct = await client.query('select count(*)::int as n from payments where customer_id = $1', [1]);
    assert.equal(rows[0].n, direct.rows[0].n);
    const byStatus = await client.query({
      name: 'by-status',
      text: 'select count(*)::int as n from payments where status = $1',
      values: ['paid'],
    });
    const again = await client.query({
      name: 'by-status',
      text: 'select count(*)::int as n from payments where status = $1',
      values: ['refunded'],
    });
    const failed = await client.query('select count(*)::int as n from payments where status = $1', ['failed']);
    assert.equal(byStatus.rows[0].n + again.rows[0].n + failed.rows[0].n, 1000);
  });

  test('an error keeps its SQLSTATE and the session recovers', async () => {
    const client = await connect();
    await assert.rejects(client.query('select * from no_such_table'), (error: unknown) => {
      assert.equal(sqlstate(error), '42P01');
      assert.equal((error as Error).message, 'relation "no_such_table" does not exist');
      return true;
    });
    await assert.rejects(client.query('select $1::int / 0', [1]), (error: unknown) => sqlstate(error) === '22012');
    assert.deepEqual((await client.query('select count(*)::int as n from customers')).rows, [{ n: 200 }]);

    await client.query('begin');
    await assert.rejects(
      client.query(
        "insert into payments (customer_id, amount, currency, card_number, status, created_at) values (1, 1, 'EUR', 'x', 'stolen', now())",
      ),
      (error: unknown) => sqlstate(error) === '23514',
    );
    await assert.rejects(client.query('select 1'), (error: unknown) => sqlstate(error) === '25P02');
    await client.query('rollback');
    assert.deepEqual((await client.query('select count(*)::int as n from payments')).rows, [{ n: 1000 }]);
  });

  test('the session and its statements are recorded', async () => {
    const principal = `demo-rec-${Date.now()}`;
    const client = await gatewayClient(gw, CONNECTION, principal);
    await client.query('select id from customers order by id limit 3');
    await client.end();
    const [session] = await eventually(
      () => gw.gateway.store.listSessions({ principal }),
      (list) => list.length === 1 && list[0]!.endedAt !== undefined,
    );
    assert.ok(session);
    assert.equal(session.connection, CONNECTION);
    const statements = await eventually(
      () => gw.gateway.store.listStatements(session.id),
      (list) => list.length >= 1,
    );
    assert.deepEqual(
      statements.map((s) => [s.text, s.rows, s.outcome]),
      [['select id from customers order by id limit 3', 3, 'ok']],
    );
  });

  test("psql -c 'select count(*) from customers'", { skip: psqlAvailable ? false : 'psql is not installed' }, async () => {
    const password = await gw.mint('alice', CONNECTION);
    const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(
        'psql',
        [
          '-X',
          '-A',
          '-t',
          '-d',
          `host=${gw.host} port=${gw.pgPort} user=alice dbname=${CONNECTION} sslmode=disable`,
          '-c',
          'select count(*) from customers',
        ],
        { env: { PATH: process.env.PATH, PGPASSWORD: password, PGCONNECT_TIMEOUT: '10' }, timeout: 20_000 },
        (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
      );
      child.stdin?.end();
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, '200\n');
  });
});
