/**
 * Inline masking through real clients against a real PostgreSQL: the demo's seeded customers and
 * payments (emails, phones, SSNs, card numbers) are read in every way data can come back, and no
 * byte the client received holds a seeded value, while amounts, statuses and timestamps stay
 * readable. Every byte from the gateway to the client passes through a tap that keeps it, so
 * that the assertion is about the wire, not about what a driver chose to show.
 */

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { seedSql } from '../src/demo/seed.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { slicer, tap as tapOf } from './support/relays.ts';
import { asAdmin, createDatabase, eventually, type ThrowawayDatabase } from './support/pg-db.ts';

const run = promisify(execFile);
const BASE = '@id("base")\npermit (principal, action in Drawbridge::Action::"sql:any", resource);\n';
const EXEMPT = '@id("pii-readers-see-data")\npermit (principal in Drawbridge::Group::"pii-readers", action == Drawbridge::Action::"data:unmasked", resource);\n';

let db: ThrowawayDatabase;
let gw: TestGateway;
let tap: Awaited<ReturnType<typeof tapOf>>;
/** Every sensitive value the tables hold, as the target would send it. */
let secrets: string[];

before(async () => {
  db = await createDatabase('masking');
  await asAdmin(async (admin) => {
    await admin.query(seedSql({ customers: 40, payments: 60 }));
    const people = await admin.query('SELECT email, phone, ssn FROM customers');
    const cards = await admin.query('SELECT card_number FROM payments');
    secrets = [
      ...people.rows.flatMap((r: { email: string; phone: string; ssn: string }) => [r.email, r.ssn, r.phone.replace(/\D/g, '').slice(-7)]),
      ...cards.rows.map((r: { card_number: string }) => r.card_number),
    ];
  }, db.name);
  gw = await startTestGateway({ connections: [{ name: 'crm', database: db.name }], policies: [BASE, EXEMPT] });
  tap = await tapOf(gw.pgPort);
});

after(async () => {
  tap?.close();
  await gw?.close();
  await db?.drop();
});

async function client(principal = 'alice', groups: string[] = [], extra: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const c = new pg.Client({
    host: '127.0.0.1',
    port: tap.port,
    user: principal,
    database: 'crm',
    password: await gw.mint(principal, 'crm', undefined, { groups }),
    ...extra,
  });
  await c.connect();
  return c;
}

/** Fails naming the first seeded value found in what the client received. */
function assertNothingLeaked(received: string, what: string): void {
  for (const secret of secrets) {
    // Latin-1 of UTF-8 keeps ASCII as it is: the seeded values are ASCII.
    assert.ok(!received.includes(secret), `${what}: the client received ${secret}`);
  }
}

describe('masking through node-postgres, in every way data comes back', () => {
  let c: pg.Client;
  before(async () => {
    c = await client();
    tap.take();
  });
  after(() => c.end());

  const reads: [string, string][] = [
    ['plain select', 'SELECT * FROM customers'],
    ['aliases', 'SELECT email AS contact, ssn AS "national id", phone AS p FROM customers'],
    ['TABLE', 'TABLE payments'],
    ['casts', 'SELECT email::varchar(200), ssn::char(11), card_number::text FROM customers JOIN payments ON payments.customer_id = customers.id'],
    ['concatenation and string functions', "SELECT 'to: ' || email || ' / ' || upper(email) AS line, lower(ssn), trim(phone) FROM customers"],
    ['json_agg', 'SELECT json_agg(c) FROM customers c'],
    ['jsonb', 'SELECT to_jsonb(c) AS doc FROM customers c'],
    ['row_to_json', 'SELECT row_to_json(p) FROM payments p'],
    ['array_agg', 'SELECT array_agg(email), array_agg(card_number) FROM customers, payments'],
    ['string_agg', "SELECT string_agg(email, ', ') FROM customers"],
    ['records', 'SELECT (c.email, c.ssn) AS pair FROM customers c'],
    ['a view', 'SELECT * FROM (SELECT email, ssn FROM customers) AS v'],
  ];
  for (const [what, sql] of reads) {
    test(`${what}: ${sql.slice(0, 60)}`, async () => {
      const result = await c.query(sql);
      assert.ok(result.rows.length > 0);
      assertNothingLeaked(tap.take(), what);
    });
  }

  test('the extended protocol, text and binary result formats', async () => {
    const text = await c.query('SELECT email, ssn, amount FROM customers JOIN payments ON payments.customer_id = customers.id WHERE amount > $1', [0]);
    assert.ok(text.rows.length > 0);
    assert.match(text.rows[0].email, /^[a-z]\*+@\*+\.[a-z]+$/);
    // node-postgres asks for every result column in binary with `binary: true` (not in its types).
    const binaryQuery = { text: 'SELECT email, card_number, amount, ssn::text, to_jsonb(customers) FROM customers JOIN payments ON payments.customer_id = customers.id', binary: true };
    const binary = await c.query(binaryQuery as pg.QueryConfig);
    assert.ok(binary.rows.length > 0);
    assertNothingLeaked(tap.take(), 'extended protocol');
  });

  test('amounts, statuses and timestamps stay readable', async () => {
    const direct = await asAdmin((admin) => admin.query('SELECT id, amount, currency, status, created_at FROM payments ORDER BY id'), db.name);
    const through = await c.query('SELECT id, amount, currency, status, created_at, card_number FROM payments ORDER BY id');
    assert.deepEqual(
      through.rows.map(({ card_number: _card, ...rest }) => rest),
      direct.rows,
    );
    assert.match(through.rows[0].card_number, /^\*+\d{4}$|^[*\s-]+\d{4}$/);
    tap.take();
  });

  test('a cursor, a temp table, COPY TO STDOUT', async () => {
    await c.query('BEGIN');
    await c.query('DECLARE cur CURSOR FOR SELECT email, ssn FROM customers');
    await c.query('FETCH 10 FROM cur');
    await c.query('COMMIT');
    await c.query('CREATE TEMP TABLE copied AS SELECT * FROM customers');
    await c.query('SELECT * FROM copied');
    assertNothingLeaked(tap.take(), 'cursor and temp table');
  });

  test('errors that carry a value, notices, notifications, ParameterStatus', async () => {
    const sample = (await asAdmin((admin) => admin.query('SELECT email FROM customers LIMIT 1'), db.name)).rows[0].email as string;
    await assert.rejects(c.query('SELECT email::int FROM customers'), (error: pg.DatabaseError) => {
      assert.equal(error.code, '22P02');
      assert.ok(!error.message.includes(sample) && !/@example\./.test(error.message.replace(/\*+/g, '')), error.message);
      return true;
    });
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    await c.query(`DO $$ BEGIN RAISE NOTICE 'customer %', (SELECT email FROM customers LIMIT 1); END $$`);
    assert.equal(notices.length, 1);
    assert.match(notices[0]!, /^customer [a-z]\*+@/);
    const listener = await client();
    const payloads: string[] = [];
    listener.on('notification', (n) => payloads.push(n.payload ?? ''));
    await listener.query('LISTEN crm_events');
    await c.query(`SELECT pg_notify('crm_events', (SELECT 'changed ' || email FROM customers LIMIT 1))`);
    for (let i = 0; i < 50 && payloads.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(payloads.length, 1);
    assert.match(payloads[0]!, /^changed [a-z]\*+@/);
    await listener.end();
    await c.query(`SELECT set_config('application_name', (SELECT email FROM customers LIMIT 1), false)`);
    assertNothingLeaked(tap.take(), 'errors, notices, notifications, parameters');
  });
});

describe('masking through psql', () => {
  function psql(args: string[]): Promise<{ stdout: string; stderr: string }> {
    return gw.mint('bob', 'crm').then(
      (credential) =>
        new Promise((resolve, reject) =>
          execFile(
            'psql',
            ['-X', '-h', '127.0.0.1', '-p', String(tap.port), '-U', 'bob', '-d', 'crm', ...args],
            { env: { ...process.env, PGPASSWORD: credential }, timeout: 20_000, maxBuffer: 64 * 1024 * 1024 },
            (error, stdout, stderr) => (error && !stdout ? reject(error) : resolve({ stdout, stderr })),
          ),
        ),
    );
  }

  test('SELECT, and COPY TO STDOUT in text, csv and binary', async () => {
    const { stdout } = await psql([
      '-c',
      'SELECT * FROM payments LIMIT 10',
      '-c',
      'COPY customers TO STDOUT',
      '-c',
      'COPY (SELECT email, ssn FROM customers) TO STDOUT (FORMAT csv, HEADER)',
      '-c',
      'COPY customers TO STDOUT (FORMAT binary)',
    ]);
    assert.match(stdout, /\*\*\*\*-?\s?\d{4}|\*+\d{4}/);
    assertNothingLeaked(stdout, 'psql output');
    assertNothingLeaked(tap.take(), 'psql wire');
  });
});

describe('exemption and records', () => {
  test('a principal in a group the policy exempts sees the data, and that is on record', async () => {
    const reader = await client('carol', ['pii-readers']);
    try {
      const rows = (await reader.query('SELECT email FROM customers ORDER BY id LIMIT 1')).rows;
      const raw = (await asAdmin((admin) => admin.query('SELECT email FROM customers ORDER BY id LIMIT 1'), db.name)).rows;
      assert.deepEqual(rows, raw);
    } finally {
      await reader.end();
    }
    tap.take();
    // Committed within the audit log's commit delay, not before the client is answered (acknowledge: at-once).
    const exempted = await eventually(
      async () => (await gw.gateway.store.listAudit({ action: 'masking.exempted' })).filter((e) => e.actor === 'carol'),
      (events) => events.length > 0,
    );
    assert.equal(exempted.length, 1);
    assert.deepEqual(exempted[0]!.details.policies, ['pii-readers-see-data']);
  });

  test('the recording holds masked statement texts and errors, and the session end counts what was masked', async () => {
    const sample = (await asAdmin((admin) => admin.query('SELECT email FROM customers LIMIT 1'), db.name)).rows[0].email as string;
    const c = await client('dave');
    await c.query('SELECT id FROM customers WHERE email = $1', [sample]);
    await c.query(`SELECT id FROM customers WHERE email = '${sample}'`);
    await c.query('SELECT email FROM customers');
    await c.end();
    tap.take();
    // Committed within the audit log's commit delay, not before the client is answered (acknowledge: at-once).
    const started = await eventually(
      async () => (await gw.gateway.store.listAudit({ action: 'session.started', limit: 1000 })).filter((e) => e.actor === 'dave'),
      (events) => events.length > 0,
    );
    assert.equal(started.length, 1);
    const sessionId = started[0]!.subject;
    await gw.gateway.pollRevocations(); // a moment for the recorder's batch
    let statements = await gw.gateway.store.listStatements(sessionId);
    for (let i = 0; i < 50 && statements.length < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      statements = await gw.gateway.store.listStatements(sessionId);
    }
    assert.equal(statements.length, 3);
    assert.match(statements[1]!.text, /^SELECT id FROM customers WHERE email = '[a-z]\*+@\*+\.[a-z]+'$/);
    assert.ok(!JSON.stringify(statements).includes(sample), 'the recording holds a seeded value');
    // The session's end is on record once the gateway has seen the client go and committed its audit event.
    const ended = await eventually(
      async () => (await gw.gateway.store.listAudit({ action: 'session.ended', limit: 1000 })).filter((e) => e.subject === sessionId),
      (events) => events.length > 0,
    );
    assert.ok((ended[0]?.details.masked as Record<string, number> | undefined)?.email! >= 40, JSON.stringify(ended[0]?.details));
    const audit = JSON.stringify(await gw.gateway.store.listAudit({ limit: 1000 }));
    assert.ok(!audit.includes(sample), 'an audit event holds a seeded value');
  });
});

describe('masking when the target answers in the smallest pieces', () => {
  test('rows and COPY split at every point are masked whole, and nothing is lost', async () => {
    const relay = await slicer(5432, 7);
    const sliced = await startTestGateway({ connections: [{ name: 'crm', database: db.name, port: relay.port }], policies: [BASE] });
    const seen = await tapOf(sliced.pgPort);
    try {
      const c = new pg.Client({ host: '127.0.0.1', port: seen.port, user: 'frank', database: 'crm', password: await sliced.mint('frank', 'crm') });
      await c.connect();
      const rows = await c.query('SELECT id, email, ssn, phone FROM customers ORDER BY id');
      assert.equal(rows.rows.length, 40);
      assert.deepEqual(
        rows.rows.map((r: { id: number }) => r.id),
        Array.from({ length: 40 }, (_, i) => i + 1),
      );
      await c.end();
      const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) =>
        sliced.mint('frank', 'crm').then((credential) =>
          execFile(
            'psql',
            ['-X', '-h', '127.0.0.1', '-p', String(seen.port), '-U', 'frank', '-d', 'crm', '-c', 'COPY customers TO STDOUT'],
            { env: { ...process.env, PGPASSWORD: credential }, timeout: 20_000 },
            (error, out) => (error ? reject(error) : resolve({ stdout: out })),
          ),
        ),
      );
      assert.equal(stdout.trim().split('\n').length, 40);
      assertNothingLeaked(seen.take(), 'sliced wire');
    } finally {
      seen.close();
      await sliced.close();
      relay.close();
    }
  });
});

describe('a masking configuration that cannot work stops the start', () => {
  test('a hash strategy without a salt, naming the key', async () => {
    await assert.rejects(
      startTestGateway({ extraYaml: ['masking:', '  strategies: { ssn: hash }'] }),
      /masking\.salt: the hash strategy needs a secret salt of at least 16 bytes/,
    );
  });
});

describe('masking through JDBC', () => {
  const JAR = '/usr/share/java/postgresql.jar';
  const skip = existsSync(JAR) ? undefined : `${JAR} missing (.ci/run installs libpostgresql-jdbc-java)`;

  test('prepared statements with binary transfer, and a plain statement', { skip }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'drawbridge-jdbc-masking-'));
    try {
      const source = fileURLToPath(new URL('./jdbc/JdbcMasking.java', import.meta.url));
      await run('javac', ['-encoding', 'UTF-8', '-cp', JAR, '-d', dir, source], { timeout: 120_000 });
      const url = `jdbc:postgresql://127.0.0.1:${tap.port}/crm?prepareThreshold=1&binaryTransfer=true`;
      const { stdout } = await run('java', ['-cp', `${dir}${delimiter}${JAR}`, 'JdbcMasking', url, 'erin', await gw.mint('erin', 'crm')], {
        timeout: 120_000,
        maxBuffer: 16 * 1024 * 1024,
      });
      const lines = stdout.split('\n').filter(Boolean);
      assert.ok(lines.filter((l) => l.startsWith('email=')).length >= 60, 'three rounds of rows');
      assert.ok(lines.filter((l) => l.startsWith('email=')).every((l) => /^email=[a-z]\*+@\*+\.[a-z]+$/.test(l)), lines.find((l) => l.startsWith('email=')));
      const amounts = (await asAdmin((admin) => admin.query('SELECT amount::text AS a FROM payments'), db.name)).rows.map((r: { a: string }) => r.a);
      assert.ok(lines.filter((l) => l.startsWith('amount=')).every((l) => amounts.includes(l.slice('amount='.length))), 'amounts unchanged');
      for (const doc of lines.filter((l) => l.startsWith('doc='))) JSON.parse(doc.slice(4));
      assertNothingLeaked(stdout, 'JDBC output');
      assertNothingLeaked(tap.take(), 'JDBC wire');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
