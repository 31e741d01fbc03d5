/**
 * Guardrails through real clients against a real PostgreSQL: the gateway's own default policy
 * pack (no policy in the config) refuses what it should with PostgreSQL's own error shape, lets
 * look-alikes through, and the canary table is untouched after every refusal. Policy files of
 * one's own reload without a restart, decide on the principal's kind and groups, and every
 * change is on record; the API shows and tests them.
 */

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { writeFile } from 'node:fs/promises';
import { callApi } from './support/api.ts';
import { slicer, type Relay } from './support/relays.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { asAdmin, createDatabase, eventually, gatewayClient, type ThrowawayDatabase } from './support/pg-db.ts';

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
  gw = await startTestGateway({ connections: [{ name: 'orders-db', database: db.name }], policies: 'default-pack' });
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

describe('a refusal inside a transaction block, through psql', () => {
  test('reads as the gateway words it, aborts the transaction, and COMMIT rolls back', async () => {
    const credential = await gw.mint('alice', 'orders-db');
    const script = "BEGIN;\nUPDATE orders SET status = 'tx' WHERE id = 7;\nDROP TABLE orders;\nSELECT 1;\nCOMMIT;\n";
    const result = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
      const child = execFile(
        'psql',
        ['-X', '-h', gw.host, '-p', String(gw.pgPort), '-U', 'alice', '-d', 'orders-db'],
        { env: { ...process.env, PGPASSWORD: credential }, timeout: 20_000 },
        (error, stdout, stderr) => (error && !stderr ? reject(error) : resolve({ stdout, stderr })),
      );
      child.stdin!.end(script);
    });
    assert.match(result.stderr, /ERROR: {2}blocked by policy "no-destructive-ddl": DROP TABLE is not allowed on orders-db\n/);
    assert.doesNotMatch(result.stderr, /CONTEXT|PL\/pgSQL|drawbridge_/);
    assert.match(result.stderr, /ERROR: {2}current transaction is aborted/);
    assert.match(result.stdout, /ROLLBACK/);
    const row = await asAdmin((admin) => admin.query('SELECT status FROM orders WHERE id = 7'), db.name);
    assert.notEqual(row.rows[0].status, 'tx');
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

describe('refusals in the extended protocol abort what they would have aborted', () => {
  test('inside a transaction block, COMMIT after a refused statement rolls back', async () => {
    const client = await gatewayClient(gw, 'orders-db');
    try {
      await client.query('BEGIN');
      await client.query('UPDATE orders SET status = $1 WHERE id = $2', ['in-tx', 1]);
      await assert.rejects(client.query('DELETE FROM orders WHERE $1::int = $1::int', [1]), (error: pg.DatabaseError) => {
        assert.equal(error.code, '42501');
        assert.match(error.message, /^blocked by policy "no-unfiltered-writes": DELETE without a WHERE clause/);
        return true;
      });
      await assert.rejects(client.query('SELECT 1'), { code: '25P02' });
      const commit = await client.query('COMMIT');
      assert.equal(commit.command, 'ROLLBACK');
      const status = await asAdmin((admin) => admin.query('SELECT status FROM orders WHERE id = 1'), db.name);
      assert.notEqual(status.rows[0].status, 'in-tx');
      // A prepared statement of the client's survives the refusal.
      await client.query({ name: 'by-id', text: 'SELECT id FROM orders WHERE id = $1', values: [2] });
      await assert.rejects(client.query({ name: 'wipe', text: 'DELETE FROM orders WHERE $1::int = 1', values: [1] }), { code: '42501' });
      assert.deepEqual((await client.query({ name: 'by-id', text: 'SELECT id FROM orders WHERE id = $1', values: [3] })).rows, [{ id: 3 }]);
    } finally {
      await client.end();
    }
    assert.equal(await canary(), 10);
  });
});

describe('policy files of our own', () => {
  const BASE = '@id("base")\npermit (principal, action in Drawbridge::Action::"sql:any", resource);\n';
  const NO_SECRETS =
    '@id("no-secrets") @reason("reading secrets is not allowed")\nforbid (principal, action, resource) when { context.tables_read.contains("secrets") };\n';
  const DDL_FOR_DBAS =
    '@id("ddl-for-dbas") @reason("DDL is for the dba group")\nforbid (principal, action in Drawbridge::Action::"sql:ddl", resource) unless { principal in Drawbridge::Group::"dba" };\n';
  let own: TestGateway;
  let file: string;

  before(async () => {
    await asAdmin((admin) => admin.query('CREATE TABLE secrets (v text); INSERT INTO secrets VALUES ($$x$$)'), db.name);
    own = await startTestGateway({ connections: [{ name: 'orders-db', database: db.name }], policies: [BASE + NO_SECRETS, DDL_FOR_DBAS] });
    file = own.config.policy.files[0]!;
  });
  after(() => own?.close());

  test('reload without a restart: a live session sees the new policy, a bad file changes nothing, every change is on record', async () => {
    const client = await gatewayClient(own, 'orders-db');
    try {
      await assert.rejects(client.query('SELECT * FROM secrets'), {
        code: '42501',
        message: 'blocked by policy "no-secrets": reading secrets is not allowed on orders-db',
      });
      const before = own.gateway.policy!.engine.version;

      await writeFile(file, BASE);
      assert.equal(await own.gateway.reloadPolicy(), 'changed');
      assert.deepEqual((await client.query('SELECT v FROM secrets')).rows, [{ v: 'x' }]);

      await writeFile(file, `${BASE}forbid (principal, action, resource) when { context.no_such_thing };\n`);
      assert.equal(await own.gateway.reloadPolicy(), 'failed');
      assert.deepEqual((await client.query('SELECT v FROM secrets')).rows, [{ v: 'x' }], 'the policies in force stay');

      // The watcher notes changes on the audit log without waiting: committed within its delay.
      const events = await eventually(
        () => own.gateway.store.listAudit({ action: 'policy.changed' }),
        (e) => e.length >= 2,
      );
      const outcomes = events.map((e) => [e.outcome, e.details.from ?? null]).sort();
      assert.deepEqual(outcomes, [
        ['failure', null],
        ['success', before],
      ]);
      const failure = events.find((e) => e.outcome === 'failure')!;
      assert.match(String(failure.details.error), /policy-0\.cedar:3:\d+: attribute `no_such_thing`/);
      assert.equal((await own.gateway.store.listAudit({ action: 'policy.loaded' })).length, 1);
    } finally {
      await client.end();
      await writeFile(file, BASE + NO_SECRETS);
      await own.gateway.reloadPolicy();
    }
  });

  test('the gateway also sees a changed file by itself, within seconds', async () => {
    const client = await gatewayClient(own, 'orders-db');
    try {
      await assert.rejects(client.query('SELECT * FROM secrets'), { code: '42501' });
      await writeFile(file, BASE);
      const seen = await eventually(
        () => client.query('SELECT v FROM secrets').then(() => true, () => false),
        (allowed) => allowed,
        10_000,
      );
      assert.ok(seen, 'the new policy was not in force within 10 s');
    } finally {
      await client.end();
      await writeFile(file, BASE + NO_SECRETS);
      await own.gateway.reloadPolicy();
    }
  });

  test("policy decides on the grant's groups", async () => {
    const dba = await gatewayClient(own, 'orders-db', 'dana', {}, { groups: ['dba'] });
    const dev = await gatewayClient(own, 'orders-db', 'devon');
    try {
      await dba.query('CREATE TABLE made_by_dba (id int)');
      await assert.rejects(dev.query('CREATE TABLE made_by_dev (id int)'), {
        code: '42501',
        message: 'blocked by policy "ddl-for-dbas": DDL is for the dba group on orders-db',
      });
    } finally {
      await dba.end();
      await dev.end();
    }
  });

  test('the refusal is an audit event naming the policy', async () => {
    const client = await gatewayClient(own, 'orders-db', 'erin');
    try {
      await assert.rejects(client.query('SELECT * FROM secrets'), { code: '42501' });
    } finally {
      await client.end();
    }
    // The data path does not wait for its audit events: each is committed with the next batch.
    const denied = await eventually(
      async () => (await own.gateway.store.listAudit({ action: 'command.denied' })).filter((e) => e.actor === 'erin'),
      (events) => events.length > 0,
    );
    assert.equal(denied.length, 1);
    assert.equal(denied[0]!.details.policy, 'no-secrets');
    assert.equal(denied[0]!.details.statement, 'SELECT * FROM secrets');
  });
});

describe('agents are held to more than people', () => {
  test('a DO block and CREATE FUNCTION are refused for a service account, allowed for a user', async () => {
    const agent = await gatewayClient(gw, 'orders-db', 'etl-bot', {}, { kind: 'service-account' });
    const person = await gatewayClient(gw, 'orders-db', 'alice');
    try {
      const block = 'DO $$ BEGIN PERFORM 1; END $$';
      await assert.rejects(agent.query(block), { code: '42501', message: 'blocked by policy "no-agent-code": DO blocks are not allowed for agents on orders-db' });
      await person.query(block);
      const fn = 'CREATE FUNCTION agent_fn() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$';
      await assert.rejects(agent.query(fn), { code: '42501' });
      assert.equal(
        (await asAdmin((admin) => admin.query("SELECT count(*)::int AS n FROM pg_proc WHERE proname = 'agent_fn'"), db.name)).rows[0].n,
        0,
      );
    } finally {
      await agent.end();
      await person.end();
    }
  });
});

describe('the policy API', () => {
  let admin: string;
  let user: string;
  before(async () => {
    await gw.gateway.accounts.createUser({ name: 'pat', password: 'a long enough password', roles: ['admin'] }, 'test');
    await gw.gateway.accounts.createUser({ name: 'uma', password: 'a long enough password' }, 'test');
    const login = async (name: string) =>
      (await callApi(api(), 'POST', '/api/auth/login', undefined, { username: name, password: 'a long enough password' })).body.token;
    admin = await login('pat');
    user = await login('uma');
  });
  const api = () => `http://127.0.0.1:${gw.apiPort}`;

  test('GET /api/policies shows the default pack in force', async () => {
    const shown = await callApi(api(), 'GET', '/api/policies', admin);
    assert.equal(shown.status, 200);
    assert.equal(shown.body.enabled, true);
    assert.equal(shown.body.version, gw.gateway.policy!.engine.version);
    assert.equal(shown.body.files[0].file, 'default-pack.cedar');
    assert.match(shown.body.files[0].text, /@id\("no-destructive-ddl"\)/);
    assert.equal((await callApi(api(), 'GET', '/api/policies', user)).status, 403);
  });

  test('POST /api/policies/test decides as the data path does', async () => {
    const tested = await callApi(api(), 'POST', '/api/policies/test', admin, {
      connection: 'orders-db',
      principal: 'etl-bot',
      kind: 'service-account',
      sql: 'SELECT 1; DROP TABLE orders',
    });
    assert.equal(tested.status, 200);
    assert.deepEqual(tested.body.verdict, {
      outcome: 'deny',
      policy: 'no-destructive-ddl',
      reason: 'blocked by policy "no-destructive-ddl": DROP TABLE is not allowed on orders-db',
    });
    assert.deepEqual(
      tested.body.decisions.map((d: { statement: { kind: string }; outcome: { outcome: string } }) => [d.statement.kind, d.outcome.outcome]),
      [
        ['select', 'allow'],
        ['drop', 'deny'],
      ],
    );
    const unknown = await callApi(api(), 'POST', '/api/policies/test', admin, { connection: 'nope', principal: 'a', sql: 'SELECT 1' });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.code, 'unknown-connection');
  });

  test('POST /api/policies/check names the file, line and column of a problem', async () => {
    const good = await callApi(api(), 'POST', '/api/policies/check', admin, { files: [{ file: 'a.cedar', text: 'permit (principal, action, resource);' }] });
    assert.equal(good.status, 200);
    assert.equal(good.body.valid, true);
    const bad = await callApi(api(), 'POST', '/api/policies/check', admin, {
      files: [{ file: 'b.cedar', text: 'permit (principal, action, resource)\nwhen { context.nope };' }],
    });
    assert.equal(bad.status, 422);
    assert.equal(bad.body.code, 'policy-invalid');
    assert.match(bad.body.detail, /^b\.cedar:2:\d+: /);
  });
});

describe('refusals when the target answers in the smallest pieces', () => {
  // A hop between gateway and PostgreSQL that passes the target's answers on a few bytes at a
  // time, so that the replies the gateway cuts out and replaces arrive split at every point.
  let relay: Relay;
  let sliced: TestGateway;
  before(async () => {
    relay = await slicer(5432);
    sliced = await startTestGateway({
      connections: [{ name: 'orders-db', database: db.name, port: relay.port }],
      policies: 'default-pack',
    });
  });
  after(async () => {
    await sliced?.close();
    relay?.close();
  });

  test('extended and in-transaction refusals read right, and the session goes on', async () => {
    const client = await gatewayClient(sliced, 'orders-db');
    try {
      for (let round = 0; round < 3; round++) {
        await assert.rejects(client.query('DELETE FROM orders WHERE $1::int = $1::int', [round]), {
          code: '42501',
          message: 'blocked by policy "no-unfiltered-writes": DELETE without a WHERE clause that filters rows is not allowed on orders-db',
        });
        assert.deepEqual((await client.query('SELECT id FROM orders WHERE id = $1', [round + 1])).rows, [{ id: round + 1 }]);
      }
      await client.query('BEGIN');
      await assert.rejects(client.query('TRUNCATE orders'), { code: '42501', message: /^blocked by policy "no-destructive-ddl"/ });
      assert.equal((await client.query('ROLLBACK')).command, 'ROLLBACK');
      assert.deepEqual((await client.query('SELECT count(*)::int AS n FROM orders')).rows, [{ n: 10 }]);
    } finally {
      await client.end();
    }
    assert.equal(await canary(), 10);
  });
});

describe('a session that starts with standard_conforming_strings off', () => {
  test('is told at login, and its statements with a backslash are refused', async () => {
    const legacy = await createDatabase('legacy_strings');
    const own = await startTestGateway({ connections: [{ name: 'legacy', database: legacy.name }], policies: 'default-pack' });
    try {
      await asAdmin((admin) => admin.query(`ALTER DATABASE ${legacy.name} SET standard_conforming_strings = off`));
      const client = await gatewayClient(own, 'legacy');
      try {
        assert.deepEqual((await client.query('SHOW standard_conforming_strings')).rows, [{ standard_conforming_strings: 'off' }]);
        await assert.rejects(client.query(String.raw`SELECT 'a\'' AS x`), {
          code: '42501',
          message: /^blocked: standard_conforming_strings is off/,
        });
        assert.deepEqual((await client.query("SELECT 'plain' AS x")).rows, [{ x: 'plain' }]);
      } finally {
        await client.end();
      }
    } finally {
      await own.close();
      await legacy.drop();
    }
  });
});
