/**
 * Fault injection on a PostgreSQL session: the target's backend is killed or the whole target
 * stops mid-query, the target is not listening at all, the client vanishes in the middle of a
 * big result, or reads it very slowly. In each case the client sees a native error (or the
 * rows, all of them), the gateway ends what it must on the target side, its memory stays
 * bounded, and it goes on serving everyone else.
 *
 * Needs PostgreSQL on 127.0.0.1:5432 (postgres, trust) and the server binaries for the private
 * cluster (see support/private-postgres.ts).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { encodeFrontend } from '../src/wire/pg/index.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { startPrivatePostgres, type PrivatePostgres } from './support/private-postgres.ts';
import { RawPg } from './support/raw-pg.ts';

const ADMIN = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' };
const MiB = 1024 * 1024;

let gw: TestGateway;
let doomed: PrivatePostgres;
let deadSocketDir: string;

before(async () => {
  doomed = await startPrivatePostgres();
  deadSocketDir = await mkdtemp(join(tmpdir(), 'drawbridge-dead-'));
  gw = await startTestGateway({
    connections: [
      {},
      { name: 'doomed', host: doomed.host, port: doomed.port, user: doomed.superuser },
      // A socket folder where no server listens: connecting is refused, with no port another test could take meanwhile.
      { name: 'dead', host: deadSocketDir, port: 5432 },
    ],
  });
});

after(async () => {
  await gw?.close();
  await doomed?.stop();
  await rm(deadSocketDir, { recursive: true, force: true });
});

const unique = (prefix: string) => `${prefix}_${randomBytes(3).toString('hex')}`;

async function connect(connection = 'local', applicationName?: string): Promise<pg.Client> {
  const principal = unique('fault');
  const c = new pg.Client({
    host: gw.host,
    port: gw.pgPort,
    user: principal,
    database: connection,
    password: await gw.mint(principal, connection),
    connectionTimeoutMillis: 10_000,
    ...(applicationName ? { application_name: applicationName } : {}),
  });
  c.on('error', () => {}); // a FATAL outside a query arrives as an 'error' event
  await c.connect();
  return c;
}

async function assertServing(connection = 'local'): Promise<void> {
  const c = await connect(connection);
  try {
    assert.deepEqual((await c.query('select 1 as one')).rows, [{ one: 1 }]);
  } finally {
    await c.end();
  }
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client(ADMIN);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function backendsOf(applicationName: string): Promise<number> {
  return admin(async (c) =>
    Number((await c.query('select count(*) as n from pg_stat_activity where application_name = $1', [applicationName])).rows[0].n),
  );
}

async function loginError(connection: string): Promise<{ code?: string; message: string; severity?: string }> {
  try {
    const c = await connect(connection);
    await c.end();
  } catch (error) {
    return error as { code?: string; message: string; severity?: string };
  }
  assert.fail(`login to ${connection} unexpectedly succeeded`);
}

test('the target backend is terminated mid-query: the client gets 57P01, the gateway keeps serving', async () => {
  const c = await connect();
  try {
    const pid = Number((await c.query('select pg_backend_pid() as pid')).rows[0].pid);
    // Settle into a value at once, so that the rejection is handled while we kill the backend.
    const running = c.query('select pg_sleep(5)').then(
      () => undefined,
      (error: { code?: string; message: string }) => error,
    );
    await sleep(300);
    const terminated = await admin(async (a) => (await a.query('select pg_terminate_backend($1) as ok', [pid])).rows[0].ok);
    assert.equal(terminated, true);
    const error = await running;
    assert.equal(error?.code, '57P01', error?.message);
    assert.match(error.message, /terminating connection due to administrator command/);
  } finally {
    await c.end().catch(() => {});
  }
  await assertServing();
});

test("a target's own FATAL reaches the client once, and is not followed by a second FATAL of the gateway", async () => {
  const principal = unique('raw');
  const raw = await RawPg.connect({ port: gw.pgPort });
  const login = await raw.login(principal, 'local', await gw.mint(principal, 'local'));
  assert.equal(login.ok, true, JSON.stringify(login.error));
  const pid = Number((await raw.query('select pg_backend_pid()')).rows[0]![0]);
  raw.send(encodeFrontend({ type: 'Query', sql: 'select pg_sleep(5)' }));
  await sleep(200);
  await admin((a) => a.query('select pg_terminate_backend($1)', [pid]));
  assert.equal(await raw.waitClosed(), true);
  const errors: string[] = [];
  for (;;) {
    const message = await raw.message(500).catch(() => undefined);
    if (!message) break;
    if (message.type === 'ErrorResponse') errors.push(Object.fromEntries(message.fields).C ?? '');
  }
  assert.deepEqual(errors, ['57P01']);
});

test('a target that is not listening: FATAL 08001 with a clear message', async () => {
  const error = await loginError('dead');
  assert.equal(error.severity, 'FATAL');
  assert.equal(error.code, '08001');
  assert.match(error.message, /^could not connect to target "dead"/);
  await assertServing();
});

test('a client that disconnects mid-result: the gateway ends the target backend and keeps serving', async () => {
  const applicationName = unique('abort');
  const principal = unique('aborter');
  const raw = await RawPg.connect({ port: gw.pgPort, keep: false });
  const login = await raw.login(principal, 'local', await gw.mint(principal, 'local'), { params: { application_name: applicationName } });
  assert.equal(login.ok, true, JSON.stringify(login.error));
  assert.equal(await backendsOf(applicationName), 1);

  // About 5 GB: far more than any socket buffer, so the target is still sending when we leave.
  raw.send(encodeFrontend({ type: 'Query', sql: "select repeat('x', 1000) from generate_series(1, 5000000)" }));
  for (let rows = 0; rows < 1000;) if ((await raw.frame()).type === 0x44) rows++;
  raw.destroy();

  let left = 1;
  for (const deadline = Date.now() + 5000; Date.now() < deadline; await sleep(100)) {
    left = await backendsOf(applicationName);
    if (left === 0) break;
  }
  if (left !== 0)
    await admin((a) => a.query('select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1', [applicationName]));
  assert.equal(left, 0, 'the target backend must end once its client is gone');
  await assertServing();
});

test('a slow client: memory stays bounded while it does not read, then it gets every row', async () => {
  const ROWS = 200_000; // ~200 MB of DataRows
  const principal = unique('slow');
  const raw = await RawPg.connect({ port: gw.pgPort, keep: false });
  const login = await raw.login(principal, 'local', await gw.mint(principal, 'local'));
  assert.equal(login.ok, true, JSON.stringify(login.error));

  // What the gateway can hold of a result: the JS heap and the buffers (queued writes, pooled
  // reads). Not the process's RSS: V8 compiles the SQL parser's WebAssembly with its optimizing
  // compiler once it is hot, on a background thread, which takes hundreds of MB for a second or
  // two whenever it happens to come (the known limit in docs/benchmarks.md).
  const held = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const baseline = held();
  raw.socket.pause();
  // Every row different, so that a byte sent from a buffer reused too early shows.
  raw.send(encodeFrontend({ type: 'Query', sql: `select lpad(g::text, 1000, 'x') as r from generate_series(1, ${ROWS}) g` }));
  let peak = baseline;
  for (const deadline = Date.now() + 3000; Date.now() < deadline; await sleep(100)) peak = Math.max(peak, held());
  assert.ok(peak - baseline < 64 * MiB, `memory held grew by ${((peak - baseline) / MiB).toFixed(1)} MiB while the client did not read`);

  raw.socket.resume();
  let rows = 0;
  let bytes = 0;
  for (;;) {
    const frame = await raw.frame(30_000);
    if (frame.type === 0x44) {
      rows++;
      bytes += frame.raw.length;
      const value = frame.body.toString('latin1', 6);
      if (value !== String(rows).padStart(1000, 'x')) assert.fail(`row ${rows} came as ${JSON.stringify(value.replace(/^x+/, 'x…'))}`);
    } else if (frame.type === 0x45) {
      assert.fail(`error instead of rows: ${frame.body.toString('latin1')}`);
    } else if (frame.type === 0x5a) {
      break;
    }
  }
  assert.equal(rows, ROWS);
  assert.ok(bytes > 200_000_000);
  raw.terminate();
  await assertServing();
});

describe('the target stops mid-query', () => {
  test('the client gets a FATAL 08006 or a connection error quickly; new logins get 08001; other connections work', async () => {
    const c = await connect('doomed');
    const started = Date.now();
    const running = c.query('select pg_sleep(10)').then(
      () => undefined,
      (e: { code?: string; message: string }) => e,
    );
    await sleep(300);
    await doomed.stop();
    const error = await running;
    assert.ok(error, 'the query must not succeed');
    if (process.env.DEBUG_FAULTS) console.log('stop:', error.code, error.message);
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
    assert.ok(
      error.code === '08006' || error.code === '57P01' || /terminated|closed|ECONNRESET/i.test(error.message),
      `${error.code} ${error.message}`,
    );
    await c.end().catch(() => {});

    const refused = await loginError('doomed');
    assert.equal(refused.severity, 'FATAL');
    assert.equal(refused.code, '08001');
    assert.match(refused.message, /target "doomed"/);
    await assertServing('local');
  });
});

test('a client that leaves while its statement runs: the statement is cancelled on the target', async () => {
  const applicationName = unique('sleeper');
  const c = await connect('local', applicationName);
  c.query('select pg_sleep(30)').catch(() => {});
  for (const deadline = Date.now() + 5000; Date.now() < deadline; await sleep(50)) {
    const active = await admin((a) =>
      a.query(
        "select count(*)::int as n from pg_stat_activity where application_name = $1 and query like 'select pg_sleep%' and state = 'active'",
        [applicationName],
      ),
    );
    if (active.rows[0].n === 1) break;
  }
  (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  let left = 1;
  for (const deadline = Date.now() + 5000; Date.now() < deadline && left > 0; await sleep(100)) left = await backendsOf(applicationName);
  assert.equal(left, 0, 'the sleeping statement must not outlive its client');
});

test('a target message above max_message_length ends the session with a message that names the limit', async () => {
  const small = await startTestGateway({ maxMessageLength: 64 * 1024 });
  try {
    const principal = unique('big');
    const c = new pg.Client({
      host: small.host,
      port: small.pgPort,
      user: principal,
      database: 'local',
      password: await small.mint(principal, 'local'),
    });
    c.on('error', () => {});
    await c.connect();
    await assert.rejects(c.query("select repeat('x', 100000)"), (error: Error & { code?: string }) => {
      assert.equal(error.code, '08006');
      assert.match(error.message, /above this gateway's max_message_length/);
      return true;
    });
    await c.end().catch(() => {});
  } finally {
    await small.close();
  }
});

test('a gateway that shuts down tells its clients why: FATAL 57P01', async () => {
  const stopping = await startTestGateway();
  const principal = unique('shutdown');
  const c = new pg.Client({
    host: stopping.host,
    port: stopping.pgPort,
    user: principal,
    database: 'local',
    password: await stopping.mint(principal, 'local'),
  });
  const fatal = new Promise<Error & { code?: string }>((resolve) => c.on('error', resolve));
  await c.connect();
  await stopping.close();
  const error = await fatal;
  assert.equal(error.code, '57P01');
  assert.match(error.message, /gateway shutdown/);
});
