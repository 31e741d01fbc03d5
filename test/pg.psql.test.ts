/**
 * The real psql binary through the gateway: -c and -f, several statements in one string,
 * \copy in and out, errors with ON_ERROR_STOP, \d meta commands (catalog queries), psql's
 * login flow without a password (-w), and sslmode=disable. psql logs in with PGPASSWORD set to
 * a minted credential, as a user would.
 *
 * Needs psql on PATH (only its absence skips) and PostgreSQL on 127.0.0.1:5432 as postgres
 * with trust auth. Works in its own database (`drawbridge_psql_<hex>`), dropped at the end.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { asAdmin, createDatabase, eventually, type ThrowawayDatabase } from './support/pg-db.ts';

const CONNECTION = 'psqltest';

interface PsqlResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const psqlAvailable = await new Promise<boolean>((resolve) => execFile('psql', ['--version'], (error) => resolve(!error)));
const skip = psqlAvailable ? false : 'psql is not installed (apt-get install postgresql-client)';

let db: ThrowawayDatabase;
let gw: TestGateway;
let dir: string;

/** Runs psql against the gateway; `password` undefined leaves PGPASSWORD unset. */
function psql(
  args: readonly string[],
  options: { principal?: string; password?: string | undefined; sslmode?: string; stdin?: string } = {},
): Promise<PsqlResult> {
  const principal = options.principal ?? 'alice';
  const conninfo = `host=${gw.host} port=${gw.pgPort} user=${principal} dbname=${CONNECTION} sslmode=${options.sslmode ?? 'disable'}`;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: dir,
    PGCONNECT_TIMEOUT: '10',
    LC_ALL: 'C.UTF-8',
    PGCLIENTENCODING: 'UTF8',
  };
  if (options.password !== undefined) env.PGPASSWORD = options.password;
  return new Promise((resolve) => {
    const child = execFile('psql', ['-X', '-d', conninfo, ...args], { env, timeout: 20_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
    child.stdin?.end(options.stdin ?? '');
  });
}

async function psqlAs(args: readonly string[], principal = 'alice'): Promise<PsqlResult> {
  return psql(args, { principal, password: await gw.mint(principal, CONNECTION) });
}

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'drawbridge-psql-'));
  db = await createDatabase('psql');
  await asAdmin(async (client) => {
    await client.query('create table items (id int primary key, name text not null, price numeric(10,2))');
    await client.query("comment on table items is 'things for sale'");
    await client.query("insert into items values (1, 'apple', 1.20), (2, 'pear', 0.95), (3, 'fig', 3.00)");
  }, db.name);
  gw = await startTestGateway({ connections: [{ name: CONNECTION, database: db.name }] });
});

after(async () => {
  await gw?.close();
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('psql through the gateway', { skip }, () => {
  test('psql -c runs a select', async () => {
    const result = await psqlAs(['-A', '-t', '-c', 'select name from items order by id']);
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    assert.equal(result.stdout, 'apple\npear\nfig\n');
  });

  test('psql -c with several statements prints every result', async () => {
    const result = await psqlAs(['-A', '-t', '-c', "select 1; select 'two'; select count(*) from items"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, '1\ntwo\n3\n');
  });

  test('aligned output with headers, unicode and NULL', async () => {
    const result = await psqlAs(['-P', 'null=(null)', '-c', "select 'héllo 日本' as greeting, null::int as nothing"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /greeting\s+\|\s+nothing/);
    assert.match(result.stdout, /héllo 日本\s+\|\s+\(null\)/);
    assert.match(result.stdout, /\(1 row\)/);
  });

  test('\\copy from a file and \\copy to a file', async () => {
    const input = join(dir, 'in.csv');
    const output = join(dir, 'out.csv');
    const lines = Array.from({ length: 2_000 }, (_, i) => `${i + 1},"row ${i + 1}, ünïcode",${i % 5 === 0 ? '' : `${i}.50`}`);
    await writeFile(input, lines.join('\n') + '\n');
    const load = await psqlAs([
      '-v',
      'ON_ERROR_STOP=1',
      '-c',
      'create table copied (id int primary key, label text, amount numeric)',
      '-c',
      `\\copy copied from '${input}' with (format csv)`,
      '-c',
      `\\copy (select * from copied order by id) to '${output}' with (format csv)`,
      '-c',
      'drop table copied',
    ]);
    assert.equal(load.code, 0, load.stderr);
    assert.match(load.stdout, /COPY 2000/);
    assert.equal(await readFile(output, 'utf8'), lines.join('\n') + '\n');
  });

  test('an error with ON_ERROR_STOP: exit code 1 and the ERROR line on stderr', async () => {
    const result = await psqlAs(['-v', 'ON_ERROR_STOP=1', '-c', 'select 1/0']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /ERROR:\s+division by zero/);
    assert.equal(result.stdout, '');

    const missing = await psqlAs(['-v', 'ON_ERROR_STOP=1', '-c', 'select * from not_here']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /ERROR:\s+relation "not_here" does not exist/);
    assert.match(missing.stderr, /LINE 1: select \* from not_here/);
  });

  test('a script with ON_ERROR_STOP stops at the error (exit code 3) and reports its line', async () => {
    const script = join(dir, 'stop.sql');
    await writeFile(script, "select 'before';\nselect 1/0;\nselect 'after';\n");
    const result = await psqlAs(['-v', 'ON_ERROR_STOP=1', '-A', '-t', '-f', script]);
    assert.equal(result.code, 3);
    assert.equal(result.stdout, 'before\n');
    assert.match(result.stderr, /stop\.sql:2: ERROR:\s+division by zero/);
  });

  test('\\d meta commands answer from the catalog', async () => {
    const tables = await psqlAs(['-c', '\\dt']);
    assert.equal(tables.code, 0, tables.stderr);
    assert.match(tables.stdout, /public\s+\|\s+items\s+\|\s+table\s+\|\s+postgres/);

    const described = await psqlAs(['-c', '\\d items']);
    assert.equal(described.code, 0, described.stderr);
    assert.match(described.stdout, /Table "public\.items"/);
    assert.match(described.stdout, /id\s+\|\s+integer\s+\|\s+\|\s+not null/);
    assert.match(described.stdout, /price\s+\|\s+numeric\(10,2\)/);
    assert.match(described.stdout, /"items_pkey" PRIMARY KEY, btree \(id\)/);

    const plus = await psqlAs(['-c', '\\dt+ items']);
    assert.match(plus.stdout, /things for sale/);

    const databases = await psqlAs(['-c', '\\l']);
    assert.equal(databases.code, 0, databases.stderr);
    assert.ok(databases.stdout.includes(db.name), 'the target database is listed');

    const functions = await psqlAs(['-c', '\\df pg_sleep']);
    assert.match(functions.stdout, /pg_sleep\s+\|\s+void/);
  });

  test('a transaction script via -f: ROLLBACK discards, COMMIT keeps', async () => {
    const script = join(dir, 'tx.sql');
    await writeFile(
      script,
      [
        'create table tx_items (n int);',
        'begin;',
        'insert into tx_items values (1);',
        'rollback;',
        'begin;',
        'insert into tx_items values (2), (3);',
        'commit;',
        '\\echo counted',
        'select sum(n) from tx_items;',
        'drop table tx_items;',
        '',
      ].join('\n'),
    );
    const result = await psqlAs(['-v', 'ON_ERROR_STOP=1', '-A', '-t', '-q', '-f', script]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'counted\n5\n');
  });

  test('-1 with an error rolls back the whole script', async () => {
    const script = join(dir, 'single.sql');
    await writeFile(script, 'create table single_tx (n int);\ninsert into single_tx values (1);\nselect 1/0;\n');
    const result = await psqlAs(['-v', 'ON_ERROR_STOP=1', '-1', '-f', script]);
    assert.equal(result.code, 3);
    const check = await psqlAs(['-A', '-t', '-c', "select to_regclass('single_tx') is null"]);
    assert.equal(check.stdout, 't\n');
  });

  test('-w without a password fails cleanly, and the gateway serves the next login', async () => {
    const refused = await psql(['-w', '-c', 'select 1'], { password: undefined });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /fe_sendauth: no password supplied/);
    assert.equal(refused.stdout, '');

    const next = await psqlAs(['-A', '-t', '-c', 'select 42']);
    assert.equal(next.code, 0, next.stderr);
    assert.equal(next.stdout, '42\n');
  });

  test('without PGPASSWORD and no terminal psql cannot prompt; the gateway serves the next login', async () => {
    // psql first tries without a password, the gateway asks for one, psql disconnects to prompt.
    const refused = await psql(['-c', 'select 1'], { password: undefined });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /no password supplied|password/);
    const next = await psqlAs(['-A', '-t', '-c', 'select 7']);
    assert.equal(next.stdout, '7\n');
  });

  test('a wrong password gets the native authentication error', async () => {
    const result = await psql(['-w', '-c', 'select 1'], { password: 'dbr_not_a_real_credential' });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /password authentication failed for user "alice"/);
  });

  test('sslmode=disable and sslmode=prefer both work against a gateway without TLS', async () => {
    const disabled = await psqlAs(['-A', '-t', '-c', 'select 1']);
    assert.equal(disabled.stdout, '1\n');
    const preferred = await psql(['-A', '-t', '-c', 'select 2'], { password: await gw.mint('alice', CONNECTION), sslmode: 'prefer' });
    assert.equal(preferred.code, 0, preferred.stderr);
    assert.equal(preferred.stdout, '2\n');
  });

  test('a psql session is recorded with its statements', async () => {
    const principal = `psql-rec-${Date.now()}`;
    const result = await psqlAs(['-c', 'select id from items where id < 3', '-c', 'select 1/0'], principal);
    assert.equal(result.code, 1);
    const [session] = await eventually(
      () => gw.gateway.store.listSessions({ principal }),
      (list) => list.length === 1 && list[0]!.endedAt !== undefined,
    );
    assert.ok(session, 'session recorded');
    assert.equal(session.connection, CONNECTION);
    const statements = await eventually(
      () => gw.gateway.store.listStatements(session.id),
      (list) => list.length >= 2,
    );
    assert.deepEqual(
      statements.map((s) => [s.text, s.outcome, s.errorCode ?? null]),
      [
        ['select id from items where id < 3', 'ok', null],
        ['select 1/0', 'error', '22012'],
      ],
    );
    assert.equal(statements[0]!.rows, 2);
  });
});
