/**
 * The PostgreSQL wire protocol through the gateway, with node-postgres as the client and the
 * machine's PostgreSQL as the target: simple and extended query protocol, pipelining, cursors,
 * COPY in both directions, LISTEN/NOTIFY and notices, cancel requests, transactions, what the
 * store records, many concurrent sessions and a large result.
 *
 * Needs PostgreSQL on 127.0.0.1:5432 as postgres with trust auth. Each run works in its own
 * database (`drawbridge_proto_<hex>`), dropped at the end.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import Cursor from 'pg-cursor';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import {
  ADMIN,
  asAdmin,
  createDatabase,
  eventually,
  gatewayClient,
  sendCancel,
  sqlstate,
  type ThrowawayDatabase,
} from './support/pg-db.ts';
import { dataRow, errorFields, msg, summarize, WireClient, type WireMessage } from './support/pg-wire.ts';
import { RawPg } from './support/raw-pg.ts';

const CONNECTION = 'proto';

let db: ThrowawayDatabase;
let gw: TestGateway;
const clients: pg.Client[] = [];

/** A client through the gateway, ended in `after` if the test did not end it. */
async function connect(principal = 'alice', extra: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const client = await gatewayClient(gw, CONNECTION, principal, extra);
  client.on('error', () => {}); // a test that kills a session checks the outcome itself
  clients.push(client);
  return client;
}

async function rejects(promise: Promise<unknown>, code: string, message?: string | RegExp): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    assert.equal(sqlstate(error), code, `expected SQLSTATE ${code}, got ${sqlstate(error)}: ${String(error)}`);
    if (typeof message === 'string') assert.equal((error as Error).message, message);
    else if (message) assert.match((error as Error).message, message);
    return error as Error;
  }
  assert.fail(`expected an error with SQLSTATE ${code}`);
}

before(async () => {
  db = await createDatabase('proto');
  gw = await startTestGateway({ connections: [{ name: CONNECTION, database: db.name }] });
});

after(async () => {
  await Promise.allSettled(clients.map((client) => client.end()));
  await gw?.close();
  await db?.drop();
});

describe('simple query protocol', () => {
  test('several statements in one query string answer with one result each', async () => {
    const client = await connect();
    const results = (await client.query('select 1 as a; select 2 as b, 3 as c; select 4 as d')) as unknown as pg.QueryResult[];
    assert.ok(Array.isArray(results));
    assert.deepEqual(
      results.map((r) => r.rows),
      [[{ a: 1 }], [{ b: 2, c: 3 }], [{ d: 4 }]],
    );
  });

  test('DDL and DML report their command tags and row counts', async () => {
    const client = await connect();
    const create = await client.query('create table simple_t (id int primary key, name text)');
    assert.equal(create.command, 'CREATE');
    const insert = await client.query("insert into simple_t values (1, 'a'), (2, 'b'), (3, 'c')");
    assert.equal(insert.command, 'INSERT');
    assert.equal(insert.rowCount, 3);
    const update = await client.query("update simple_t set name = 'z' where id >= 2");
    assert.equal(update.command, 'UPDATE');
    assert.equal(update.rowCount, 2);
    const del = await client.query('delete from simple_t where id = 1');
    assert.equal(del.rowCount, 1);
    const rows = await client.query('select id, name from simple_t order by id');
    assert.deepEqual(rows.rows, [
      { id: 2, name: 'z' },
      { id: 3, name: 'z' },
    ]);
    await client.query('drop table simple_t');
  });

  test('an error keeps its SQLSTATE and message, and the session stays usable', async () => {
    const client = await connect();
    await rejects(client.query('select 1/0'), '22012', 'division by zero');
    await rejects(client.query('select * from no_such_table'), '42P01', 'relation "no_such_table" does not exist');
    await rejects(client.query('selec 1'), '42601', 'syntax error at or near "selec"');
    const error = await rejects(client.query("select 'x'::int"), '22P02', 'invalid input syntax for type integer: "x"');
    assert.equal((error as pg.DatabaseError).severity, 'ERROR');
    assert.equal((error as pg.DatabaseError).position, '8');
    assert.deepEqual((await client.query('select 42 as answer')).rows, [{ answer: 42 }]);
  });

  test('an error in the middle of a multi-statement string stops it there; the session goes on', async () => {
    const client = await connect();
    await client.query('create table multi_err_t (n int)');
    await rejects(client.query('insert into multi_err_t values (1); select 1/0; insert into multi_err_t values (2)'), '22012');
    // One query string is one implicit transaction: the first insert is rolled back too.
    assert.deepEqual((await client.query('select count(*)::int as n from multi_err_t')).rows, [{ n: 0 }]);
    await client.query('drop table multi_err_t');
  });

  test('an empty query answers with an empty result', async () => {
    const client = await connect();
    const empty = await client.query('');
    assert.deepEqual(empty.rows, []);
    const blank = await client.query('  ;  ');
    assert.deepEqual(blank.rows, []);
    assert.deepEqual((await client.query('select 1 as one')).rows, [{ one: 1 }]);
  });
});

describe('extended query protocol', () => {
  test('parameterized queries with typed parameters', async () => {
    const client = await connect();
    const { rows } = await client.query('select $1::int + $2::int as sum, $3::text as label, $4::boolean as flag, $5::numeric as amount', [
      40,
      2,
      'hello',
      true,
      '12345.6789',
    ]);
    assert.deepEqual(rows, [{ sum: 42, label: 'hello', flag: true, amount: '12345.6789' }]);
  });

  test('a named prepared statement is parsed once and reused', async () => {
    const client = await connect();
    const first = await client.query({ name: 'twice', text: 'select $1::int * 2 as doubled', values: [21] });
    const second = await client.query({ name: 'twice', text: 'select $1::int * 2 as doubled', values: [50] });
    assert.deepEqual(first.rows, [{ doubled: 42 }]);
    assert.deepEqual(second.rows, [{ doubled: 100 }]);
    const prepared = await client.query("select name, statement from pg_prepared_statements where name = 'twice'");
    assert.equal(prepared.rows.length, 1);
    assert.match(prepared.rows[0].statement, /select \$1::int \* 2/);
  });

  test('binary parameters (Buffer as bytea) and binary results', async () => {
    const client = await connect();
    const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff, 0x00, 0x80, 0x7f]);
    const echoed = await client.query('select $1::bytea as b, length($1::bytea) as n', [bytes]);
    assert.deepEqual(echoed.rows[0].b, bytes);
    assert.equal(echoed.rows[0].n, bytes.length);

    // Binary result columns, read raw (identity type parser) so the test checks the bytes on the wire.
    // pg decodes every DataRow field as UTF-8 even in binary format, so the values are chosen to
    // encode as bytes below 0x80 (a raw-wire check of arbitrary bytes is in the bytea echo above).
    const raw = { getTypeParser: () => (value: unknown) => value } as unknown as pg.CustomTypesConfig;
    const binary = await client.query({
      text: "select 42::int4 as i, 9007199254740993::int8 as big, 'héllo'::text as t, 2.0::float8 as f, true as yes, '\\x00417f'::bytea as b, $1::int4 as p",
      values: [7],
      binary: true,
      types: raw,
      rowMode: 'array',
    } as pg.QueryArrayConfig);
    assert.deepEqual(
      (binary.rows[0] as Buffer[]).map((value) => Buffer.from(value).toString('hex')),
      ['0000002a', '0020000000000001', Buffer.from('héllo').toString('hex'), '4000000000000000', '01', '00417f', '00000007'],
    );
    // And through pg's own binary parsers.
    const parsed = await client.query({ text: "select 42::int4 as i, 'héllo'::text as t, true as yes", binary: true } as pg.QueryConfig);
    assert.deepEqual(parsed.rows, [{ i: 42, t: 'héllo', yes: true }]);

    const arrays = await client.query({ text: 'select $1::int as a, $2::text as b', values: [1, 'two'], rowMode: 'array' });
    assert.deepEqual(arrays.rows, [[1, 'two']]);
  });

  test('NULL parameters and NULL results', async () => {
    const client = await connect();
    const { rows } = await client.query('select $1::text is null as was_null, $1::text as v, null::int as n, $2::int as m', [
      null,
      undefined,
    ]);
    assert.deepEqual(rows, [{ was_null: true, v: null, n: null, m: null }]);
  });

  test('a 5 MB text parameter round-trips intact', async () => {
    const client = await connect();
    const big = 'abcdefghij'.repeat(512 * 1024) + 'END';
    const { rows } = await client.query('select $1::text as t, length($1::text) as n, md5($1::text) as h', [big]);
    assert.equal(rows[0].n, big.length);
    assert.equal(rows[0].t.length, big.length);
    assert.ok(rows[0].t === big);
    const { createHash } = await import('node:crypto');
    assert.equal(rows[0].h, createHash('md5').update(big).digest('hex'));
  });

  test('unicode text survives both ways', async () => {
    const client = await connect();
    const text = 'héllo wörld — 日本語 — Ελληνικά — 😀🚀 — \u0000'.replace('\u0000', 'z');
    const { rows } = await client.query('select $1::text as t, length($1::text) as chars, octet_length($1::text) as bytes, $2 as literal', [
      text,
      'ß',
    ]);
    assert.equal(rows[0].t, text);
    assert.equal(rows[0].chars, [...text].length);
    assert.equal(rows[0].bytes, Buffer.byteLength(text));
    assert.equal(rows[0].literal, 'ß');
    const literal = await client.query("select 'ünïcödé 🎉' as u, length('ünïcödé 🎉') as n");
    assert.deepEqual(literal.rows, [{ u: 'ünïcödé 🎉', n: 9 }]);
  });

  test('an error in the extended protocol keeps its SQLSTATE and the session goes on', async () => {
    const client = await connect();
    await rejects(client.query('select $1::int / 0', [1]), '22012', 'division by zero');
    await rejects(client.query('select $1::int', ['not a number']), '22P02');
    await rejects(client.query({ name: 'broken', text: 'select from_nowhere(' }), '42601');
    assert.deepEqual((await client.query('select $1::int as x', [5])).rows, [{ x: 5 }]);
  });
});

describe('pipelining', () => {
  test('many queries written at once are answered in order; a failing one does not disturb the others', async () => {
    const client = await connect('alice', { pipeline: true } as Partial<pg.ClientConfig>);
    const queries = Array.from({ length: 60 }, (_, i) =>
      i === 30
        ? client.query('select 1/0 as boom')
        : i % 2 === 0
          ? client.query('select $1::int as n', [i])
          : client.query(`select ${i} as n`),
    );
    const settled = await Promise.allSettled(queries);
    for (const [i, outcome] of settled.entries()) {
      if (i === 30) {
        assert.equal(outcome.status, 'rejected');
        assert.equal(sqlstate((outcome as PromiseRejectedResult).reason), '22012');
      } else {
        assert.equal(outcome.status, 'fulfilled', `query ${i}: ${String((outcome as PromiseRejectedResult).reason)}`);
        assert.deepEqual((outcome as PromiseFulfilledResult<pg.QueryResult>).value.rows, [{ n: i }]);
      }
    }
    assert.deepEqual((await client.query('select 1 as after')).rows, [{ after: 1 }]);
  });

  test('queries issued without awaiting on a default client all complete in order', async () => {
    const client = await connect();
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => client.query('select $1::int as n', [i])));
    assert.deepEqual(
      results.map((r) => r.rows[0].n),
      Array.from({ length: 100 }, (_, i) => i),
    );
  });
});

describe('cursors', () => {
  test('pg-cursor reads 100,000 rows in batches', async () => {
    const client = await connect();
    const cursor = client.query(new Cursor('select g as n, md5(g::text) as h from generate_series(1, 100000) g order by g'));
    let count = 0;
    let batches = 0;
    let expected = 1;
    for (;;) {
      const rows = await cursor.read(7_000);
      if (rows.length === 0) break;
      batches++;
      for (const row of rows) {
        assert.equal(row.n, expected++);
        count++;
      }
    }
    await cursor.close();
    assert.equal(count, 100_000);
    assert.equal(batches, Math.ceil(100_000 / 7_000));
    assert.deepEqual((await client.query('select 1 as ok')).rows, [{ ok: 1 }]);
  });

  test('DECLARE … CURSOR and FETCH inside a transaction', async () => {
    const client = await connect();
    await client.query('begin');
    await client.query('declare c cursor for select g from generate_series(1, 25) g');
    const first = await client.query('fetch 10 from c');
    const second = await client.query('fetch 10 from c');
    const third = await client.query('fetch 10 from c');
    const fourth = await client.query('fetch 10 from c');
    assert.deepEqual(
      first.rows.map((r) => r.g),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
    assert.equal(second.rows[0].g, 11);
    assert.equal(third.rowCount, 5);
    assert.equal(fourth.rowCount, 0);
    await client.query('close c');
    await client.query('commit');
    await rejects(client.query('fetch 1 from c'), '34000', 'cursor "c" does not exist');
  });
});

describe('COPY', () => {
  test('COPY FROM STDIN 50,000 rows, then COPY TO STDOUT gives them back', async () => {
    const client = await connect();
    await client.query('create table copy_t (id int primary key, name text, note text)');
    const lines: string[] = [];
    for (let i = 1; i <= 50_000; i++) lines.push(`${i}\tname-${i}\t${i % 7 === 0 ? '\\N' : `note ü ${i}`}\n`);
    const input = lines.join('');

    const ingest = client.query(copyFrom('copy copy_t from stdin'));
    await pipeline(Readable.from(chunks(input, 64 * 1024)), ingest);
    assert.equal(ingest.rowCount, 50_000);
    assert.deepEqual((await client.query('select count(*)::int as n, count(note)::int as notes from copy_t')).rows, [
      { n: 50_000, notes: 50_000 - Math.floor(50_000 / 7) },
    ]);

    const parts: Buffer[] = [];
    const out = client.query(copyTo('copy (select * from copy_t order by id) to stdout'));
    await pipeline(
      out,
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          parts.push(chunk);
          done();
        },
      }),
    );
    assert.equal(Buffer.concat(parts).toString('utf8'), input);
    assert.equal(out.rowCount, 50_000);
    await client.query('drop table copy_t');
  });

  test('COPY FROM STDIN with a bad row fails with the row named, and the session stays usable', async () => {
    const client = await connect();
    await client.query('create table copy_bad_t (id int, name text)');
    const ingest = client.query(copyFrom('copy copy_bad_t from stdin'));
    const error = await pipeline(Readable.from(['1\tone\n', '2\ttwo\n', 'three\tthree\n', '4\tfour\n']), ingest).then(
      () => assert.fail('the COPY should have failed'),
      (e: unknown) => e,
    );
    assert.equal(sqlstate(error), '22P02');
    assert.match((error as Error).message, /invalid input syntax for type integer: "three"/);
    assert.match(String((error as pg.DatabaseError).where), /COPY copy_bad_t, line 3/);
    assert.deepEqual((await client.query('select count(*)::int as n from copy_bad_t')).rows, [{ n: 0 }]);
    await client.query('drop table copy_bad_t');
  });
});

describe('asynchronous messages', () => {
  test('LISTEN/NOTIFY between two gateway sessions delivers the payload', async () => {
    const listener = await connect('alice');
    const notifier = await connect('bob');
    const received = new Promise<pg.Notification>((resolve) => listener.on('notification', resolve));
    await listener.query('listen drawbridge_events');
    await notifier.query("select pg_notify('drawbridge_events', $1)", ['payload with ünïcode']);
    const notification = await withTimeout(received, 5_000, 'notification');
    assert.equal(notification.channel, 'drawbridge_events');
    assert.equal(notification.payload, 'payload with ünïcode');
    assert.equal(typeof notification.processId, 'number');

    // A NOTIFY arriving while the listener is idle (no query running) still reaches it.
    const second = new Promise<pg.Notification>((resolve) => listener.once('notification', resolve));
    await notifier.query("notify drawbridge_events, 'second'");
    assert.equal((await withTimeout(second, 5_000, 'second notification')).payload, 'second');
  });

  test('a NOTICE reaches the client', async () => {
    const client = await connect();
    const notices: { message?: string | undefined; severity?: string | undefined; code?: string | undefined }[] = [];
    client.on('notice', (notice) => notices.push(notice));
    await client.query("DO $$ BEGIN RAISE NOTICE 'hello %', 1; END $$");
    assert.equal(notices.length, 1);
    assert.equal(notices[0]!.message, 'hello 1');
    assert.equal(notices[0]!.severity, 'NOTICE');
    assert.equal(notices[0]!.code, '00000');
    await client.query("DO $$ BEGIN RAISE WARNING 'careful'; END $$");
    assert.equal(notices[1]?.severity, 'WARNING');
    assert.equal(notices[1]?.message, 'careful');
  });
});

describe('cancel requests', () => {
  function keyOf(client: pg.Client): { processId: number; secretKey: number } {
    const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
    assert.equal(typeof processID, 'number', 'the gateway sent BackendKeyData');
    return { processId: processID, secretKey };
  }

  test('a CancelRequest with the key the gateway gave cancels the running query', async () => {
    const client = await connect();
    const { processId, secretKey } = keyOf(client);
    const started = Date.now();
    const sleeping = client.query('select pg_sleep(10)');
    await new Promise((resolve) => setTimeout(resolve, 300));
    await sendCancel(gw.host, gw.pgPort, processId, secretKey);
    await rejects(sleeping, '57014', 'canceling statement due to user request');
    assert.ok(Date.now() - started < 5_000, `cancel took ${Date.now() - started} ms`);
    assert.deepEqual((await client.query('select 1 as still_here')).rows, [{ still_here: 1 }]);
  });

  test('a forged key (wrong secret, or unknown process id) cancels nothing', async () => {
    const client = await connect();
    const { processId, secretKey } = keyOf(client);
    const sleeping = client.query('select pg_sleep(1) as slept');
    await new Promise((resolve) => setTimeout(resolve, 200));
    await sendCancel(gw.host, gw.pgPort, processId, (secretKey ^ 0x5a5a5a5a) | 0);
    await sendCancel(gw.host, gw.pgPort, (processId % 2_000_000_000) + 1, secretKey);
    const { rows } = await sleeping;
    assert.deepEqual(rows, [{ slept: '' }]);
  });

  test("the target's own process id is not a key: the gateway hands out its own", async () => {
    const client = await connect();
    const { processId } = keyOf(client);
    const { rows } = await client.query('select pg_backend_pid() as pid');
    assert.notEqual(rows[0].pid, processId);
  });
});

describe('transactions', () => {
  test('ROLLBACK discards and COMMIT keeps, as seen from another session', async () => {
    const client = await connect();
    const other = await connect('bob');
    await client.query('create table tx_t (n int)');
    await client.query('begin');
    await client.query('insert into tx_t values (1)');
    assert.deepEqual((await other.query('select count(*)::int as n from tx_t')).rows, [{ n: 0 }], 'not visible before commit');
    await client.query('rollback');
    assert.deepEqual((await client.query('select count(*)::int as n from tx_t')).rows, [{ n: 0 }]);
    await client.query('begin');
    await client.query('insert into tx_t values (2), (3)');
    await client.query('commit');
    assert.deepEqual((await other.query('select array_agg(n order by n) as ns from tx_t')).rows, [{ ns: [2, 3] }]);
    await client.query('drop table tx_t');
  });

  test('after an error inside a transaction every statement fails with 25P02 until ROLLBACK', async () => {
    const client = await connect();
    await client.query('begin');
    await client.query('select 1');
    await rejects(client.query('select 1/0'), '22012');
    await rejects(client.query('select 1'), '25P02', 'current transaction is aborted, commands ignored until end of transaction block');
    await rejects(client.query('select $1::int', [1]), '25P02');
    await client.query('rollback');
    assert.deepEqual((await client.query('select 2 as two')).rows, [{ two: 2 }]);
  });
});

describe('recording', () => {
  test('the store holds the session and its statements with rows and outcomes', async () => {
    const principal = `recorded-${Date.now()}`;
    const before = Date.now();
    const client = await gatewayClient(gw, CONNECTION, principal);
    const localPort = (client as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort;
    await client.query('select g from generate_series(1, 5) g');
    await rejects(client.query('select 1/0'), '22012');
    await client.query('select $1::int as n', [7]);
    await client.end();

    const sessions = await eventually(
      () => gw.gateway.store.listSessions({ principal }),
      (list) => list.length === 1 && list[0]!.endedAt !== undefined,
    );
    assert.equal(sessions.length, 1);
    const session = sessions[0]!;
    assert.equal(session.protocol, 'postgres');
    assert.equal(session.principal, principal);
    assert.equal(session.connection, CONNECTION);
    assert.equal(session.clientAddress, `127.0.0.1:${localPort}`);
    assert.ok(session.startedAt >= before - 1000 && session.startedAt <= Date.now(), 'start time');
    assert.ok(session.endedAt !== undefined && session.endedAt >= session.startedAt, 'end time after start');

    const statements = await eventually(
      () => gw.gateway.store.listStatements(session.id),
      (list) => list.length >= 3,
    );
    assert.deepEqual(
      statements.map((s) => ({ seq: s.seq, text: s.text, outcome: s.outcome, errorCode: s.errorCode })),
      [
        { seq: 1, text: 'select g from generate_series(1, 5) g', outcome: 'ok', errorCode: undefined },
        { seq: 2, text: 'select 1/0', outcome: 'error', errorCode: '22012' },
        { seq: 3, text: 'select $1::int as n', outcome: 'ok', errorCode: undefined },
      ],
    );
    assert.equal(statements[0]!.rows, 5);
    assert.ok(!statements[1]!.rows, 'a failed statement returned no rows');
    assert.equal(statements[2]!.rows, 1);
    assert.equal(statements[1]!.errorMessage, 'division by zero');
    for (const s of statements) {
      assert.ok(s.startedAt >= session.startedAt && s.durationMs >= 0);
    }
  });

  test('DML row counts and a cancelled statement are recorded', async () => {
    const principal = `recorded-dml-${Date.now()}`;
    const client = await gatewayClient(gw, CONNECTION, principal);
    await client.query('create table rec_t (n int)');
    await client.query('insert into rec_t select generate_series(1, 12)');
    await client.query('update rec_t set n = n + 1 where n <= 4');
    await client.query('drop table rec_t');
    const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
    const sleeping = client.query('select pg_sleep(10)');
    await new Promise((resolve) => setTimeout(resolve, 200));
    await sendCancel(gw.host, gw.pgPort, processID, secretKey);
    await rejects(sleeping, '57014');
    await client.query('select 1'); // pg rejects on ErrorResponse; this waits for the ReadyForQuery behind it
    await client.end();
    const [session] = await eventually(
      () => gw.gateway.store.listSessions({ principal }),
      (list) => list.length === 1 && list[0]!.endedAt !== undefined,
    );
    assert.ok(session);
    const statements = await eventually(
      () => gw.gateway.store.listStatements(session.id),
      (list) => list.length >= 6,
    );
    assert.deepEqual(
      statements.map((s) => [s.text, s.rows, s.outcome]),
      [
        ['create table rec_t (n int)', 0, 'ok'],
        ['insert into rec_t select generate_series(1, 12)', 12, 'ok'],
        ['update rec_t set n = n + 1 where n <= 4', 4, 'ok'],
        ['drop table rec_t', 0, 'ok'],
        ['select pg_sleep(10)', statements[4]?.rows, 'error'],
        ['select 1', 1, 'ok'],
      ],
    );
    assert.equal(statements[4]!.errorCode, '57014');
    assert.equal(statements[4]!.errorMessage, 'canceling statement due to user request');
  });
  test('multi-statement strings, pipelined queries and COPY are recorded in order with their row counts', async () => {
    const principal = `recorded-pipe-${Date.now()}`;
    const client = await gatewayClient(gw, CONNECTION, principal, { pipeline: true } as Partial<pg.ClientConfig>);
    await client.query('select 1 as a; select g from generate_series(1, 3) g');
    const settled = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) => (i === 3 ? client.query('select 1/0') : client.query('select $1::int as n', [i]))),
    );
    assert.deepEqual(
      settled.map((r) => r.status),
      ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
    );
    await client.end();
    const copier = await gatewayClient(gw, CONNECTION, principal);
    await copier.query('create temp table rec_copy (n int)');
    await pipeline(Readable.from(['1\n2\n3\n4\n']), copier.query(copyFrom('copy rec_copy from stdin')));
    const out = copier.query(copyTo('copy rec_copy to stdout'));
    await pipeline(out, new Writable({ write: (_chunk, _encoding, done) => done() }));
    await copier.end();

    const sessions = await eventually(
      () => gw.gateway.store.listSessions({ principal }),
      (list) => list.length === 2 && list.every((s) => s.endedAt !== undefined),
    );
    const [second, first] = sessions;
    assert.ok(first && second);
    const piped = await eventually(
      () => gw.gateway.store.listStatements(first.id),
      (list) => list.length >= 7,
    );
    assert.deepEqual(
      piped.map((st) => [st.seq, st.text, st.rows ?? null, st.outcome, st.errorCode ?? null]),
      [
        [1, 'select 1 as a; select g from generate_series(1, 3) g', 4, 'ok', null],
        [2, 'select $1::int as n', 1, 'ok', null],
        [3, 'select $1::int as n', 1, 'ok', null],
        [4, 'select $1::int as n', 1, 'ok', null],
        [5, 'select 1/0', piped[4]?.rows ?? null, 'error', '22012'],
        [6, 'select $1::int as n', 1, 'ok', null],
        [7, 'select $1::int as n', 1, 'ok', null],
      ],
    );
    const copied = await eventually(
      () => gw.gateway.store.listStatements(second.id),
      (list) => list.length >= 3,
    );
    assert.deepEqual(
      copied.map((st) => [st.text, st.rows ?? null, st.outcome]),
      [
        ['create temp table rec_copy (n int)', 0, 'ok'],
        ['copy rec_copy from stdin', 4, 'ok'],
        ['copy rec_copy to stdout', 4, 'ok'],
      ],
    );
  });

  test('a statement sent together with Terminate runs on the target and is recorded with its real outcome', async () => {
    const principal = `recorded-term-${Date.now()}`;
    const plainGw = await startTestGateway({ auth: 'password', connections: [{ name: CONNECTION, database: db.name }] });
    try {
      await asAdmin((c) => c.query('create table if not exists term_t (n int)'), db.name);
      const wire = await WireClient.login({
        host: plainGw.host,
        port: plainGw.pgPort,
        user: principal,
        database: CONNECTION,
        password: await plainGw.mint(principal, CONNECTION),
      });
      wire.write(Buffer.concat([msg.query('insert into term_t values (1), (2)'), msg.terminate()]));
      await wire.untilClosed();
      // The target did run it (PostgreSQL reads the Query before the Terminate).
      await eventually(
        () => asAdmin((c) => c.query('select count(*)::int as n from term_t'), db.name),
        (r) => r.rows[0].n === 2,
      );
      assert.deepEqual((await asAdmin((c) => c.query('select count(*)::int as n from term_t'), db.name)).rows, [{ n: 2 }]);
      const [session] = await eventually(
        () => plainGw.gateway.store.listSessions({ principal }),
        (list) => list.length === 1 && list[0]!.endedAt !== undefined,
      );
      assert.ok(session);
      const statements = await eventually(
        () => plainGw.gateway.store.listStatements(session.id),
        (list) => list.length >= 1 && list[0]!.outcome !== 'cancelled',
        1_000,
      );
      assert.deepEqual(
        statements.map((st) => [st.text, st.rows ?? null, st.outcome]),
        [['insert into term_t values (1), (2)', 2, 'ok']],
      );
    } finally {
      await plainGw.close();
    }
  });

  test('a client that drops its connection mid-query ends the session in the store', async () => {
    const principal = `recorded-drop-${Date.now()}`;
    const client = await gatewayClient(gw, CONNECTION, principal);
    client.on('error', () => {});
    const sleeping = client.query('select pg_sleep(3)').catch((error: unknown) => error);
    await new Promise((resolve) => setTimeout(resolve, 200));
    (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await sleeping;
    const [session] = await eventually(
      () => gw.gateway.store.listSessions({ principal }),
      (list) => list.length === 1 && list[0]!.endedAt !== undefined,
    );
    assert.ok(session?.endedAt !== undefined, 'the session has ended');
    const statements = await eventually(
      () => gw.gateway.store.listStatements(session.id),
      (list) => list.length >= 1,
    );
    assert.deepEqual(
      statements.map((st) => [st.text, st.outcome]),
      [['select pg_sleep(3)', 'cancelled']],
    );
  });
});

describe('load', () => {
  test('20 concurrent sessions each running 50 queries all succeed', async () => {
    const sessions = await Promise.all(Array.from({ length: 20 }, (_, i) => connect(`load-${i}`)));
    await Promise.all(
      sessions.map(async (client, i) => {
        for (let q = 0; q < 50; q++) {
          const { rows } =
            q % 2 === 0
              ? await client.query('select $1::int * 1000 + $2::int as v', [i, q])
              : await client.query(`select ${i * 1000 + q} as v`);
          assert.equal(rows[0].v, i * 1000 + q);
        }
      }),
    );
    await Promise.all(sessions.map((client) => client.end()));
  });

  test('a 1,000,000-row result (about 100 MB) streams through while another session keeps answering', async () => {
    const big = await connect('bulk');
    const small = await connect('interactive');
    const cursor = big.query(new Cursor("select g, repeat('x', 92) as pad from generate_series(1, 1000000) g", [], { rowMode: 'array' }));
    let rows = 0;
    let bytes = 0;
    let last = 0;
    let answered = 0;
    const reading = (async () => {
      for (;;) {
        const batch = await cursor.read(50_000);
        if (batch.length === 0) break;
        for (const row of batch as unknown as [number, string][]) {
          rows++;
          last = row[0];
          bytes += row[1].length + 8;
        }
      }
      await cursor.close();
    })();
    const poking = (async () => {
      for (let i = 0; i < 5; i++) {
        const { rows: r } = await small.query('select $1::int as i', [i]);
        assert.equal(r[0].i, i);
        answered++;
      }
    })();
    await Promise.all([reading, poking]);
    assert.equal(rows, 1_000_000);
    assert.equal(last, 1_000_000);
    assert.ok(bytes >= 100_000_000);
    assert.equal(answered, 5);
  });
});

describe('raw wire messages, compared with the server answering directly', () => {
  // A second gateway with cleartext login (loopback) so that the raw client needs no SCRAM.
  let plain: TestGateway;
  const open: WireClient[] = [];

  before(async () => {
    plain = await startTestGateway({ auth: 'password', connections: [{ name: CONNECTION, database: db.name }] });
  });
  after(async () => {
    await Promise.allSettled(open.map((c) => c.close()));
    await plain?.close();
  });

  async function viaGateway(principal = 'wire'): Promise<WireClient> {
    const client = await WireClient.login({
      host: plain.host,
      port: plain.pgPort,
      user: principal,
      database: CONNECTION,
      password: await plain.mint(principal, CONNECTION),
    });
    open.push(client);
    return client;
  }
  async function direct(): Promise<WireClient> {
    const client = await WireClient.login({ host: ADMIN.host, port: ADMIN.port, user: ADMIN.user, database: db.name });
    open.push(client);
    return client;
  }
  /** Sends the same bytes to the gateway and to the server; returns both answers up to `ready` ReadyForQuery messages. */
  async function both(bytes: Buffer, ready = 1, principal?: string): Promise<{ gateway: WireMessage[]; server: WireMessage[] }> {
    const [g, d] = await Promise.all([viaGateway(principal), direct()]);
    g.write(bytes);
    d.write(bytes);
    const [gateway, server] = await Promise.all([g.untilReady(ready), d.untilReady(ready)]);
    await Promise.all([g.close(), d.close()]);
    return { gateway, server };
  }

  test('an extended-protocol batch with one Sync: an error in the middle skips the rest, as the server does', async () => {
    const principal = `wire-batch-${Date.now()}`;
    const batch = Buffer.concat([
      msg.parse('', 'select 1 as a'),
      msg.bind('', ''),
      msg.execute(''),
      msg.parse('', 'select 1/0'),
      msg.bind('', ''),
      msg.execute(''),
      msg.parse('', 'select 3 as c'),
      msg.bind('', ''),
      msg.execute(''),
      msg.sync(),
    ]);
    const { gateway, server } = await both(batch, 1, principal);
    assert.deepEqual(summarize(gateway), summarize(server));
    assert.deepEqual(
      gateway.map((m) => m.type),
      ['1', '2', 'D', 'C', '1', 'E', 'Z'], // 1/0 is folded when planned, so it fails at Bind
    );

    const [session] = await eventually(
      () => plain.gateway.store.listSessions({ principal }),
      (list) => list.length === 1 && list[0]!.endedAt !== undefined,
    );
    assert.ok(session);
    const statements = await eventually(
      () => plain.gateway.store.listStatements(session.id),
      (list) => list.length >= 2,
    );
    assert.deepEqual(
      statements.slice(0, 2).map((st) => [st.text, st.outcome, st.errorCode ?? null]),
      [
        ['select 1 as a', 'ok', null],
        ['select 1/0', 'error', '22012'],
      ],
    );
    // The third was never executed: it is either not recorded or recorded as not run.
    if (statements[2]) assert.notEqual(statements[2].outcome, 'ok');
  });

  test('several simple queries in one write, the middle one failing, answer like the server', async () => {
    const bytes = Buffer.concat([msg.query('select 1 as a'), msg.query('select 1/0'), msg.query("select 'three' as c"), msg.query('')]);
    const { gateway, server } = await both(bytes, 4);
    assert.deepEqual(summarize(gateway), summarize(server));
    assert.deepEqual(
      gateway.map((m) => m.type),
      ['T', 'D', 'C', 'Z', 'E', 'Z', 'T', 'D', 'C', 'Z', 'I', 'Z'],
    );
  });

  test('messages split into single bytes are reassembled', async () => {
    const g = await viaGateway();
    const bytes = Buffer.concat([
      msg.parse('s1', 'select $1::text || $2::text as joined'),
      msg.bind('', 's1', [Buffer.from('ab'), Buffer.from('ü')]),
      msg.execute(''),
      msg.sync(),
      msg.query('select 42 as n'),
    ]);
    await g.writeByteByByte(bytes);
    const answer = await g.untilReady(2);
    assert.deepEqual(
      summarize(answer).filter((line) => line.startsWith('D') || line.startsWith('Z')),
      [
        `D ${JSON.stringify([Buffer.from('abü').toString('hex')])}`,
        'Z I',
        `D ${JSON.stringify([Buffer.from('42').toString('hex')])}`,
        'Z I',
      ],
    );
  });

  test('binary parameters and binary result columns carry exact bytes', async () => {
    const blob = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x80, 0x0a, 0x0d]);
    const int8 = Buffer.from('7fffffffffffffff', 'hex');
    const bytes = Buffer.concat([
      msg.parse('', 'select $1::bytea as b, $2::int8 as i, 1.5::float8 as f, null::text as n, -2::int4 as neg', [17, 20]),
      msg.bind('', '', [blob, int8], [1], [1]),
      msg.describe('P', ''),
      msg.execute(''),
      msg.sync(),
    ]);
    const { gateway, server } = await both(bytes);
    assert.deepEqual(summarize(gateway), summarize(server));
    const row = gateway.find((m) => m.type === 'D');
    assert.ok(row);
    assert.deepEqual(dataRow(row.body), [blob, int8, Buffer.from('3ff8000000000000', 'hex'), null, Buffer.from('fffffffe', 'hex')]);
  });

  test('Describe of a statement, and a portal read in slices (PortalSuspended), answer like the server', async () => {
    const bytes = Buffer.concat([
      msg.parse('five', 'select g, repeat($1::text, g) as r from generate_series(1, 5) g'),
      msg.describe('S', 'five'),
      msg.sync(),
      msg.query('begin'),
      msg.bind('p', 'five', [Buffer.from('ab')]),
      msg.execute('p', 2),
      msg.execute('p', 2),
      msg.execute('p', 2),
      msg.sync(),
      msg.query('commit'),
    ]);
    const { gateway, server } = await both(bytes, 4);
    assert.deepEqual(summarize(gateway), summarize(server));
    assert.deepEqual(gateway.map((m) => m.type).join(''), '1tTZ' + 'CZ' + '2DDsDDsDCZ' + 'CZ');
  });

  test('transaction status in ReadyForQuery follows the target (I, T, E)', async () => {
    const bytes = Buffer.concat([msg.query('begin'), msg.query('select 1/0'), msg.query('select 1'), msg.query('rollback')]);
    const { gateway, server } = await both(bytes, 4);
    assert.deepEqual(summarize(gateway), summarize(server));
    assert.deepEqual(
      gateway.filter((m) => m.type === 'Z').map((m) => m.body.toString('latin1')),
      ['T', 'E', 'E', 'I'],
    );
    assert.equal(errorFields(gateway.filter((m) => m.type === 'E')[1]!.body).C, '25P02');
  });

  test('Flush without Sync gets answers as they come; a later Sync ends the batch', async () => {
    const g = await viaGateway();
    g.write(Buffer.concat([msg.parse('', 'select 7 as n'), msg.bind('', ''), msg.execute(''), msg.flush()]));
    const early: WireMessage[] = [];
    while (early.at(-1)?.type !== 'C') early.push(await g.next(5_000));
    assert.deepEqual(summarize(early), ['1 ', '2 ', `D ${JSON.stringify([Buffer.from('7').toString('hex')])}`, 'C SELECT 1']);
    g.write(msg.sync());
    assert.deepEqual(summarize(await g.untilReady()), ['Z I']);
  });

  test('a lone Sync, an empty extended query and COPY FROM STDIN aborted by CopyFail answer like the server', async () => {
    await asAdmin((c) => c.query('create table if not exists wire_copy_t (n int)'), db.name);
    const bytes = Buffer.concat([
      msg.sync(),
      msg.parse('', ''),
      msg.bind('', ''),
      msg.execute(''),
      msg.sync(),
      msg.query('copy wire_copy_t from stdin'),
      msg.raw('d', Buffer.from('1\n2\n')),
      msg.raw('f', Buffer.from('changed my mind\0')),
      msg.query('select count(*) from wire_copy_t'),
    ]);
    const { gateway, server } = await both(bytes, 4);
    assert.deepEqual(summarize(gateway), summarize(server));
    const error = gateway.find((m) => m.type === 'E');
    assert.ok(error);
    assert.equal(errorFields(error.body).C, '57014');
    assert.match(errorFields(error.body).M ?? '', /changed my mind/);
  });

  test('COPY FROM STDIN through CopyData and CopyDone answers like the server', async () => {
    await asAdmin((c) => c.query('create table if not exists wire_copy_ok (n int, s text)'), db.name);
    const lines = Array.from({ length: 1000 }, (_, i) => `${i}\tv${i}\n`).join('');
    const bytes = Buffer.concat([
      msg.query('begin'),
      msg.query('copy wire_copy_ok from stdin'),
      msg.raw('d', Buffer.from(lines)),
      msg.raw('c', Buffer.alloc(0)),
      msg.query('select count(*) from wire_copy_ok'),
      msg.query('rollback'),
    ]);
    const { gateway, server } = await both(bytes, 4);
    assert.deepEqual(summarize(gateway), summarize(server));
    assert.ok(summarize(gateway).includes('C COPY 1000'));
  });

  test('a FunctionCall (fast-path) answers like the server', async () => {
    // int4pl(40, 2): function oid 177, two text-format int4 arguments, text result.
    const args = [Buffer.from('40'), Buffer.from('2')];
    const body = Buffer.concat([
      Buffer.from([0, 0, 0, 177]),
      Buffer.from([0, 1, 0, 0]), // one format code: text
      Buffer.from([0, 2]),
      ...args.flatMap((a) => [Buffer.from([0, 0, 0, a.length]), a]),
      Buffer.from([0, 0]), // result format: text
    ]);
    const { gateway, server } = await both(msg.raw('F', body));
    assert.deepEqual(summarize(gateway), summarize(server));
    assert.deepEqual(
      gateway.map((m) => m.type),
      ['V', 'Z'],
    );
    assert.equal(gateway[0]!.body.subarray(4).toString(), '42');
  });

  test('an unknown message type ends the session with a FATAL protocol violation; the next login works', async () => {
    const g = await viaGateway();
    g.write(msg.raw('!', Buffer.from('junk')));
    const answer = await g.untilClosed();
    const fatal = answer.find((m) => m.type === 'E');
    assert.ok(fatal, 'a FATAL ErrorResponse before the connection closes');
    assert.equal(errorFields(fatal.body).S, 'FATAL');
    assert.equal(errorFields(fatal.body).C, '08P01');
    const next = await viaGateway();
    next.write(msg.query('select 1'));
    assert.deepEqual(
      (await next.untilReady()).map((m) => m.type),
      ['T', 'D', 'C', 'Z'],
    );
  });
});

function* chunks(text: string, size: number): Generator<Buffer> {
  const bytes = Buffer.from(text, 'utf8');
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    }),
  ]);
}

describe('client encodings other than UTF-8', () => {
  test("a LATIN1 session gets the target's error in LATIN1, and goes on", async () => {
    const client = await connect();
    await client.query("SET client_encoding = 'LATIN1'");
    await assert.rejects(client.query("DO $$ BEGIN RAISE EXCEPTION 'caf%', chr(233); END $$"), { code: 'P0001' });
    assert.deepEqual((await client.query('select 1 as one')).rows, [{ one: 1 }]);
  });

  test('a statement that is not UTF-8 is refused with 22021, alone, and the session goes on', async () => {
    const raw = await RawPg.connect({ port: gw.pgPort });
    try {
      assert.ok((await raw.login('alice', CONNECTION, await gw.mint('alice', CONNECTION))).ok);
      const latin1 = (sql: string) => Buffer.from(sql, 'latin1');
      const message = (type: string, body: Buffer) => {
        const head = Buffer.alloc(5);
        head.write(type, 0, 'latin1');
        head.writeUInt32BE(body.length + 4, 1);
        return Buffer.concat([head, body]);
      };
      raw.send(message('Q', Buffer.concat([latin1("select 'caf\u00e9'"), Buffer.from([0])])));
      const refused = await raw.until(['ReadyForQuery'], 5000, false);
      assert.deepEqual(
        refused.map((m) => m.type),
        ['ErrorResponse', 'ReadyForQuery'],
      );
      // A batch of the extended protocol: the unreadable Parse fails it up to Sync.
      raw.send(
        Buffer.concat([
          message('P', Buffer.concat([Buffer.from([0]), latin1("select 'caf\u00e9'"), Buffer.from([0, 0, 0])])),
          message('B', Buffer.from([0, 0, 0, 0, 0, 0, 0, 0])),
          message('E', Buffer.from([0, 0, 0, 0, 0])),
          message('S', Buffer.alloc(0)),
        ]),
      );
      const batch = await raw.until(['ReadyForQuery'], 5000, false);
      assert.deepEqual(
        batch.map((m) => m.type),
        ['ErrorResponse', 'ReadyForQuery'],
      );
      const error = batch[0];
      assert.ok(error?.type === 'ErrorResponse');
      assert.equal(error.fields.find(([code]) => code === 'C')?.[1], '22021');
      const after = await raw.query('select 1');
      assert.deepEqual(after.rows, [['1']]);
    } finally {
      raw.destroy();
    }
  });
});
