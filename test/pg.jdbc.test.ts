/**
 * JDBC through the gateway: pgjdbc (Debian's libpostgresql-jdbc-java) runs test/jdbc/JdbcSmoke.java
 * against the gateway's PostgreSQL listener, logging in with a minted credential, and the
 * checks assert what a Java application would see: metadata, server-side prepared statements
 * with typed parameters, batches, rollback, SQLSTATEs, and cursor-based fetch.
 *
 * Needs javac, java and /usr/share/java/postgresql.jar (.ci/run installs them; only their
 * absence skips), and PostgreSQL on 127.0.0.1:5432 as postgres with trust auth.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { startTestGateway } from './support/gateway.ts';

const run = promisify(execFile);

const JAR = '/usr/share/java/postgresql.jar';
const SOURCE = fileURLToPath(new URL('./jdbc/JdbcSmoke.java', import.meta.url));
const ADMIN = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' };

interface CheckLine {
  check: string;
  ok: boolean;
  value: unknown;
  error?: string;
  sqlstate?: string;
}

async function onPath(command: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${command}`]);
    return true;
  } catch {
    return false;
  }
}

const missing = [
  ...((await onPath('javac')) ? [] : ['javac']),
  ...((await onPath('java')) ? [] : ['java']),
  ...(existsSync(JAR) ? [] : [JAR]),
];
const skipReason = missing.length > 0 ? `JDBC toolchain missing: ${missing.join(', ')} (.ci/run installs it)` : undefined;

const database = `drawbridge_jdbc_${randomBytes(4).toString('hex')}`;
let workDir: string | undefined;
let gateway: Awaited<ReturnType<typeof startTestGateway>> | undefined;
let checks = new Map<string, CheckLine>();
let rawOutput = '';
let badLogin = new Map<string, CheckLine>();

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(ADMIN);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

before(async () => {
  if (skipReason !== undefined) return;
  workDir = await mkdtemp(join(tmpdir(), 'drawbridge-jdbc-'));
  await admin((c) => c.query(`CREATE DATABASE ${database}`));

  gateway = await startTestGateway({
    connections: [
      {
        name: 'jdbc',
        type: 'postgres',
        host: '127.0.0.1',
        port: 5432,
        database,
        user: 'postgres',
        password: undefined,
        tls: 'disable',
        ca: undefined,
      },
    ],
  });
  const credential = await gateway.mint('alice', 'jdbc');

  await run('javac', ['-encoding', 'UTF-8', '-cp', JAR, '-d', workDir, SOURCE], { timeout: 120_000 });
  // No sslmode in the URL: pgjdbc's default is what an application gets.
  const url = `jdbc:postgresql://${gateway.host}:${gateway.pgPort}/jdbc?prepareThreshold=1&connectTimeout=10&socketTimeout=60&ApplicationName=drawbridge-jdbc-test`;
  const smoke = async (password: string): Promise<{ lines: Map<string, CheckLine>; output: string }> => {
    const result = await run('java', ['-cp', `${workDir}${delimiter}${JAR}`, 'JdbcSmoke', url, 'alice', password], {
      timeout: 120_000,
      maxBuffer: 16 * 1024 * 1024,
    }).catch((error: { stdout?: string; stderr?: string; code?: unknown }) => {
      // Exit status 1 means some check failed: the lines still say which; the tests below report it.
      if (error.code === 1 && typeof error.stdout === 'string') return { stdout: error.stdout, stderr: error.stderr ?? '' };
      throw error;
    });
    const lines = result.stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as CheckLine);
    return { lines: new Map(lines.map((line) => [line.check, line])), output: `${result.stdout}${result.stderr}` };
  };
  ({ lines: checks, output: rawOutput } = await smoke(credential));
  // A credential the gateway never minted, shaped like a real one.
  ({ lines: badLogin } = await smoke(`dbr_${randomBytes(24).toString('base64url')}`));
});

after(async () => {
  await gateway?.close();
  if (skipReason === undefined) {
    await admin((c) => c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`));
  }
  if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
});

/** The value of a check that must have passed; fails with what the program printed. */
function passed(name: string): unknown {
  const line = checks.get(name);
  assert.ok(line, `check '${name}' did not run; JdbcSmoke printed:\n${rawOutput}`);
  assert.equal(line.ok, true, `check '${name}' failed: ${line.error ?? ''} (SQLSTATE ${line.sqlstate ?? '-'})`);
  return line.value;
}

test('JDBC: connects through the gateway with a minted credential', { skip: skipReason }, () => {
  assert.equal(passed('connect'), true);
});

test('JDBC: a credential the gateway did not mint is refused with SQLSTATE 28P01', { skip: skipReason }, () => {
  const line = badLogin.get('connect');
  assert.ok(line, 'JdbcSmoke printed no connect line for the bad credential');
  assert.equal(line.ok, false, 'a made-up credential was accepted');
  assert.equal(line.sqlstate, '28P01', `unexpected refusal: ${line.error ?? ''}`);
  assert.equal(badLogin.size, 1, 'checks ran after a refused login');
});

test('JDBC: DatabaseMetaData names PostgreSQL', { skip: skipReason }, () => {
  const value = passed('metadata') as { product: string; version: string; driver: string };
  assert.equal(value.product, 'PostgreSQL');
  assert.match(value.version, /^\d+(\.\d+)?/);
});

test('JDBC: a named server-side prepared statement round-trips int, text, timestamp, bytea and null', { skip: skipReason }, () => {
  const runs = passed('prepared') as Array<Record<string, unknown>>;
  assert.deepEqual(
    runs,
    [0, 1, 2].map((round) => ({
      i: 42 + round,
      t: `héllo, wörld ✓ ${round}`,
      ts: '2024-02-29 13:45:30.123456',
      b: `000102ff80${round.toString(16).padStart(2, '0')}`,
      n: null,
      nWasNull: true,
    })),
  );
});

test('JDBC: executeBatch inserts 100 rows and they read back', { skip: skipReason }, () => {
  assert.deepEqual(passed('batch'), { updated: 100, count: 100 });
});

test('JDBC: rollback undoes the transaction', { skip: skipReason }, () => {
  assert.deepEqual(passed('rollback'), { before: 100, inside: 91, after: 100 });
});

test('JDBC: division by zero is SQLSTATE 22012 and the connection stays usable', { skip: skipReason }, () => {
  const value = passed('sqlstate') as { statement: string; message: string; prepared: string; after: number };
  assert.equal(value.statement, '22012');
  assert.match(value.message, /division by zero/);
  assert.equal(value.prepared, '22012');
  assert.equal(value.after, 42);
});

test('JDBC: setFetchSize(500) in a transaction reads 10,000 rows through a cursor', { skip: skipReason }, () => {
  assert.deepEqual(passed('fetch'), { rows: 10_000, sum: 50_005_000 });
});

test('JDBC: the connection closes cleanly', { skip: skipReason }, () => {
  assert.equal(passed('close'), null);
});
