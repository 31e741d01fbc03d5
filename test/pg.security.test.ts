/**
 * Security of the PostgreSQL frontend, as a client sees it: every refused login looks the same
 * (28P01) whatever the reason, SCRAM is the default and binds the channel over TLS, protocol
 * versions and requests the gateway does not support are refused with a real SQLSTATE, no
 * malformed message hurts another session, cancel keys cannot be forged, and the target's own
 * password never reaches the client.
 *
 * Needs PostgreSQL on 127.0.0.1:5432 (postgres, trust), psql, and the server binaries for the
 * private cluster (see support/private-postgres.ts).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { selfSignedPair } from '../src/tls/selfsigned.ts';
import { encodeFrontend, encodeSASLInitialResponse, encodeSASLResponse, encodeStartup } from '../src/wire/pg/index.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { startPrivatePostgres, type PrivatePostgres } from './support/private-postgres.ts';
import { forgedCredential, psql, rawMessage, RawPg, rawStartup, sendCancel, PROTOCOL_3_0 } from './support/raw-pg.ts';

const MiB = 1024 * 1024;
const TARGET_SCRAM_PASSWORD = `Tgt-scram-${randomBytes(6).toString('hex')}`;
const TARGET_MD5_PASSWORD = `Tgt-md5-${randomBytes(6).toString('hex')}`;

let gw: TestGateway;
let tlsGw: TestGateway;
let passwordGw: TestGateway;
let target: PrivatePostgres;

before(async () => {
  target = await startPrivatePostgres({
    users: [
      { name: 'app_scram', password: TARGET_SCRAM_PASSWORD, method: 'scram-sha-256' },
      { name: 'app_md5', password: TARGET_MD5_PASSWORD, method: 'md5' },
    ],
  });
  const privateConnections = [
    { name: 'priv_scram', host: target.host, port: target.port, user: 'app_scram', password: TARGET_SCRAM_PASSWORD },
    { name: 'priv_md5', host: target.host, port: target.port, user: 'app_md5', password: TARGET_MD5_PASSWORD },
  ];
  gw = await startTestGateway({ connections: [{}, { name: 'other' }, ...privateConnections], maxMessageLength: MiB });
  tlsGw = await startTestGateway({ tls: await selfSignedPair() });
  passwordGw = await startTestGateway({ auth: 'password' });
});

after(async () => {
  await Promise.all([gw?.close(), tlsGw?.close(), passwordGw?.close()]);
  await target?.stop();
});

const unique = (prefix: string) => `${prefix}_${randomBytes(3).toString('hex')}`;

function client(g: TestGateway, user: string, password: string, database = 'local'): pg.Client {
  const c = new pg.Client({ host: g.host, port: g.pgPort, user, database, password, connectionTimeoutMillis: 10_000 });
  c.on('error', () => {}); // a FATAL after login also arrives as an 'error' event
  return c;
}

async function queryAs(g: TestGateway, user: string, password: string, sql: string, database = 'local'): Promise<pg.QueryResultRow[]> {
  const c = client(g, user, password, database);
  await c.connect();
  try {
    return (await c.query(sql)).rows;
  } finally {
    await c.end();
  }
}

async function loginError(
  g: TestGateway,
  user: string,
  password: string,
  database = 'local',
): Promise<{ code?: string; message: string; severity?: string }> {
  const c = client(g, user, password, database);
  try {
    await c.connect();
  } catch (error) {
    return error as { code?: string; message: string; severity?: string };
  }
  await c.end();
  assert.fail(`login as ${user} to ${database} unexpectedly succeeded`);
}

async function assertServing(g: TestGateway = gw): Promise<void> {
  const principal = unique('healthy');
  const rows = await queryAs(g, principal, await g.mint(principal, 'local'), 'select 1 as one');
  assert.deepEqual(rows, [{ one: 1 }]);
}

async function loggedIn(g: TestGateway = gw, database = 'local'): Promise<RawPg> {
  const principal = unique('raw');
  const raw = await RawPg.connect({ port: g.pgPort });
  const login = await raw.login(principal, database, await g.mint(principal, database));
  assert.equal(login.ok, true, JSON.stringify(login.error));
  return raw;
}

describe('refused logins all look alike (28P01) and the gateway keeps serving', () => {
  const cases: { name: string; setup: () => Promise<{ user: string; database: string; password: string }> }[] = [
    { name: 'wrong credential', setup: async () => ({ user: 'alice', database: 'local', password: 'not-the-credential' }) },
    {
      name: 'unknown principal',
      setup: async () => ({ user: unique('nobody'), database: 'local', password: await gw.mint(unique('someone'), 'local') }),
    },
    {
      name: 'credential minted for another principal',
      setup: async () => ({ user: 'alice', database: 'local', password: await gw.mint('bob', 'local') }),
    },
    {
      name: 'credential minted for another connection',
      setup: async () => ({ user: 'alice', database: 'local', password: await gw.mint('alice', 'other') }),
    },
    {
      name: 'expired credential',
      setup: async () => {
        const credential = await gw.mint('carol', 'local', 1);
        await sleep(20);
        return { user: 'carol', database: 'local', password: credential };
      },
    },
    { name: 'forged dbr_ credential', setup: async () => ({ user: 'alice', database: 'local', password: forgedCredential() }) },
  ];

  for (const { name, setup } of cases) {
    test(`${name}: pg and psql get FATAL 28P01`, async () => {
      const { user, database, password } = await setup();
      const error = await loginError(gw, user, database === 'local' ? password : password, database);
      assert.equal(error.code, '28P01');
      assert.equal(error.severity, 'FATAL');
      assert.equal(error.message, `password authentication failed for user "${user}"`);

      const result = await psql(`host=${gw.host} port=${gw.pgPort} user=${user} dbname=${database}`, password, ['select 1']);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, new RegExp(`FATAL:  password authentication failed for user "${user}"`));

      await assertServing();
    });
  }

  test('empty password: SCRAM (raw) and cleartext (pg) get 28P01', async () => {
    const raw = await RawPg.connect({ port: gw.pgPort });
    const login = await raw.login('alice', 'local', '');
    assert.equal(login.ok, false);
    assert.equal(login.error?.severity, 'FATAL');
    assert.equal(login.error?.code, '28P01');
    assert.equal(login.error?.message, 'password authentication failed for user "alice"');
    assert.equal(await raw.waitClosed(), true);

    const cleartext = await RawPg.connect({ port: passwordGw.pgPort });
    const refused = await cleartext.login('alice', 'local', '');
    assert.equal(refused.error?.code, '28P01');
    assert.equal(refused.error?.message, 'password authentication failed for user "alice"');
    await assertServing();
  });

  test('a refused login does not record a session; a good one records the principal', async () => {
    const principal = unique('recorded');
    await loginError(gw, principal, forgedCredential());
    await loginError(gw, principal, await gw.mint(principal, 'other'));
    assert.deepEqual(await gw.gateway.store.listSessions({ principal }), []);

    const c = client(gw, principal, await gw.mint(principal, 'local'));
    await c.connect();
    await c.query('select 1');
    const sessions = await gw.gateway.store.listSessions({ principal });
    assert.equal(sessions.length, 1);
    assert.equal(sessions[0]!.principal, principal);
    assert.equal(sessions[0]!.connection, 'local');
    assert.equal(sessions[0]!.protocol, 'postgres');
    await c.end();
  });
});

describe('SCRAM', () => {
  test('is the default: plaintext offers SCRAM-SHA-256 only', async () => {
    const raw = await RawPg.connect({ port: gw.pgPort });
    raw.startup({ user: 'alice', database: 'local' });
    const offer = await raw.message();
    assert.deepEqual(offer, { type: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256'] });
    raw.destroy();
  });

  test('over TLS offers SCRAM-SHA-256-PLUS too, and a channel-bound login works', async () => {
    const raw = await RawPg.connect({ port: tlsGw.pgPort });
    await raw.startTls();
    raw.startup({ user: 'alice', database: 'local' });
    const offer = await raw.message();
    assert.equal(offer.type, 'AuthenticationSASL');
    assert.ok(offer.type === 'AuthenticationSASL' && offer.mechanisms.includes('SCRAM-SHA-256-PLUS'));
    assert.ok(offer.type === 'AuthenticationSASL' && offer.mechanisms.includes('SCRAM-SHA-256'));
    raw.destroy();

    const bound = await RawPg.connect({ port: tlsGw.pgPort });
    await bound.startTls();
    const login = await bound.login('alice', 'local', await tlsGw.mint('alice', 'local'));
    assert.equal(login.ok, true, JSON.stringify(login.error));
    assert.deepEqual((await bound.query('select 41 + 1')).rows, [['42']]);
    bound.terminate();
  });

  test('a bad client proof gets 28P01', async () => {
    const raw = await RawPg.connect({ port: gw.pgPort });
    const login = await raw.login('alice', 'local', await gw.mint('alice', 'local'), { tamperProof: true });
    assert.equal(login.ok, false);
    assert.equal(login.error?.code, '28P01');
    assert.equal(login.error?.message, 'password authentication failed for user "alice"');
    assert.equal(await raw.waitClosed(), true);
    await assertServing();
  });

  const malformed: { name: string; run: (raw: RawPg) => Promise<void> }[] = [
    {
      name: 'garbage client-first-message',
      run: async (raw) => raw.send(encodeSASLInitialResponse('SCRAM-SHA-256', Buffer.from('garbage'))),
    },
    {
      name: 'unknown mechanism',
      run: async (raw) => raw.send(encodeSASLInitialResponse('SCRAM-SHA-1', Buffer.from('n,,n=,r=abc'))),
    },
    {
      name: 'client-final-message without proof',
      run: async (raw) => {
        raw.send(encodeSASLInitialResponse('SCRAM-SHA-256', Buffer.from('n,,n=,r=abcdefghijkl')));
        const next = await raw.message();
        assert.equal(next.type, 'AuthenticationSASLContinue');
        raw.send(encodeSASLResponse(Buffer.from('c=biws,r=abcdefghijkl')));
      },
    },
    {
      name: 'a Query instead of a password message',
      run: async (raw) => raw.send(encodeFrontend({ type: 'Query', sql: 'select 1' })),
    },
  ];
  for (const { name, run } of malformed) {
    test(`malformed SASL (${name}) gets FATAL 08P01`, async () => {
      const raw = await RawPg.connect({ port: gw.pgPort });
      raw.startup({ user: 'alice', database: 'local' });
      assert.equal((await raw.message()).type, 'AuthenticationSASL');
      await run(raw);
      const error = await raw.error();
      assert.equal(error.severity, 'FATAL');
      assert.equal(error.code, '08P01');
      assert.equal(await raw.waitClosed(), true);
      await assertServing();
    });
  }
});

test('auth: password (cleartext) works from loopback with pg, and refuses a wrong password', async () => {
  const rows = await queryAs(passwordGw, 'alice', await passwordGw.mint('alice', 'local'), 'select current_user as u');
  assert.deepEqual(rows, [{ u: 'postgres' }]);
  const error = await loginError(passwordGw, 'alice', forgedCredential());
  assert.equal(error.code, '28P01');
  assert.equal(error.message, 'password authentication failed for user "alice"');
});

describe('startup requests', () => {
  test('replication=database is refused with FATAL 0A000 (raw and psql)', async () => {
    const raw = await RawPg.connect({ port: gw.pgPort });
    raw.startup({ user: 'alice', database: 'local', replication: 'database' });
    const error = await raw.error();
    assert.equal(error.severity, 'FATAL');
    assert.equal(error.code, '0A000');
    assert.equal(await raw.waitClosed(), true);

    const result = await psql(
      `host=${gw.host} port=${gw.pgPort} user=alice dbname=local replication=database`,
      await gw.mint('alice', 'local'),
      ['IDENTIFY_SYSTEM'],
    );
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /FATAL:  replication connections are not supported/);
  });

  test('protocol 3.2 is negotiated down to 3.0, then login works', async () => {
    const raw = await RawPg.connect({ port: gw.pgPort });
    const login = await raw.login('alice', 'local', await gw.mint('alice', 'local'), { protocolVersion: (3 << 16) | 2 });
    assert.equal(login.ok, true, JSON.stringify(login.error));
    assert.deepEqual(login.messages[0], { type: 'NegotiateProtocolVersion', newestMinor: 0, unrecognized: [] });
    assert.equal(login.backendKey?.secretKey.length, 4);
    assert.deepEqual((await raw.query('select 1')).rows, [['1']]);
    raw.terminate();
  });

  test('a _pq_ option is listed as unrecognized in NegotiateProtocolVersion, then login works', async () => {
    const raw = await RawPg.connect({ port: gw.pgPort });
    const login = await raw.login('alice', 'local', await gw.mint('alice', 'local'), { params: { '_pq_.foo': 'bar' } });
    assert.equal(login.ok, true, JSON.stringify(login.error));
    assert.deepEqual(login.messages[0], { type: 'NegotiateProtocolVersion', newestMinor: 0, unrecognized: ['_pq_.foo'] });
    assert.deepEqual((await raw.query('select 1')).rows, [['1']]);
    raw.terminate();
  });

  test('protocol 2.0 gets a FATAL and the connection closes', async () => {
    const raw = await RawPg.connect({ port: gw.pgPort });
    raw.send(rawStartup(2 << 16, { user: 'alice', database: 'local' }));
    const error = await raw.error();
    assert.equal(error.severity, 'FATAL');
    assert.equal(error.code, '0A000');
    assert.match(error.message ?? '', /protocol/);
    assert.equal(await raw.waitClosed(), true);
  });

  test("GSSENCRequest is answered 'N', then login works (raw and psql gssencmode=prefer)", async () => {
    const raw = await RawPg.connect({ port: gw.pgPort });
    raw.send(encodeStartup({ type: 'GSSENCRequest' }));
    assert.equal(await raw.byte(), 0x4e);
    const login = await raw.login('alice', 'local', await gw.mint('alice', 'local'));
    assert.equal(login.ok, true, JSON.stringify(login.error));
    raw.terminate();

    const result = await psql(
      `host=${gw.host} port=${gw.pgPort} user=alice dbname=local gssencmode=prefer sslmode=disable`,
      await gw.mint('alice', 'local'),
      ['select 7'],
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), '7');
  });

  test("SSLRequest on a gateway without TLS is answered 'N', then login works", async () => {
    const raw = await RawPg.connect({ port: gw.pgPort });
    raw.send(encodeStartup({ type: 'SSLRequest' }));
    assert.equal(await raw.byte(), 0x4e);
    const login = await raw.login('alice', 'local', await gw.mint('alice', 'local'));
    assert.equal(login.ok, true, JSON.stringify(login.error));
    raw.terminate();
  });

  const pipelined: { name: string; request: 'SSLRequest' | 'GSSENCRequest'; extra: () => Buffer }[] = [
    {
      name: 'a whole StartupMessage',
      request: 'SSLRequest',
      extra: () => encodeStartup({ type: 'StartupMessage', protocolVersion: PROTOCOL_3_0, params: { user: 'alice', database: 'local' } }),
    },
    { name: 'a partial packet', request: 'SSLRequest', extra: () => Buffer.from([0, 0, 0]) },
    {
      name: 'a whole StartupMessage (GSSENCRequest)',
      request: 'GSSENCRequest',
      extra: () => encodeStartup({ type: 'StartupMessage', protocolVersion: PROTOCOL_3_0, params: { user: 'alice', database: 'local' } }),
    },
  ];
  for (const { name, request, extra } of pipelined) {
    test(`${request} with ${name} pipelined in the same packet is refused, without TLS (CVE-2021-23214)`, async () => {
      const raw = await RawPg.connect({ port: tlsGw.pgPort });
      raw.send(Buffer.concat([encodeStartup({ type: request }), extra()]));
      assert.equal(await raw.waitClosed(), true, 'the gateway must close the connection');
      const received = raw.bytes();
      assert.notEqual(received[0], 0x53, 'the gateway must not answer S (start TLS)');
      if (received.length > 0) {
        assert.equal(received[0], 0x45, `expected an ErrorResponse, got ${received.subarray(0, 16).toString('hex')}`);
        assert.match(received.toString('latin1'), /C08P01/);
      }
      await assertServing(tlsGw);
    });
  }
});

describe('malformed and oversized messages after login', () => {
  const cases: { name: string; bytes: () => Buffer; onlyHeader?: boolean }[] = [
    { name: 'a Query declaring 2 MiB (max 1 MiB), header only', bytes: () => rawMessage(0x51, Buffer.alloc(0), 2 * MiB) },
    { name: 'a message with length 3', bytes: () => rawMessage(0x51, Buffer.alloc(0), 3) },
    { name: 'a message with a negative length', bytes: () => rawMessage(0x51, Buffer.alloc(0), -1) },
    {
      name: 'a Bind with more parameters than its body holds',
      bytes: () => {
        // portal "", statement "", 0 parameter formats, 5 parameters, none present
        const body = Buffer.from([0, 0, 0, 0, 0, 5]);
        return Buffer.concat([rawMessage(0x42, body), encodeFrontend({ type: 'Sync' })]);
      },
    },
    { name: "an unknown message type ('y')", bytes: () => rawMessage(0x79, Buffer.from('hello\0')) },
    { name: 'a Query without its terminating NUL', bytes: () => rawMessage(0x51, Buffer.from('select 1')) },
    { name: 'HTTP garbage', bytes: () => Buffer.from('GET / HTTP/1.1\r\nHost: example\r\n\r\n') },
    // A complete frame (type 0x00, length 68) of random bytes: the gateway must not wait for more.
    { name: 'random garbage', bytes: () => Buffer.concat([Buffer.from([0x00, 0x00, 0x00, 0x00, 68]), randomBytes(64)]) },
  ];

  for (const { name, bytes } of cases) {
    test(`${name}: FATAL 08P01 and close; other sessions and new logins unaffected`, async () => {
      const healthy = await loggedIn();
      const raw = await loggedIn();
      const sent = Date.now();
      raw.send(bytes());
      const closed = await raw.waitClosed(5000);
      assert.equal(closed, true, 'the gateway must close the connection');
      assert.ok(Date.now() - sent < 3000, 'the gateway must not wait for a body it will not accept');
      assert.ok(raw.unread > 0, 'the gateway must say why before it closes');
      {
        const messages = await raw.until(['ErrorResponse'], 1000);
        const error = messages.at(-1);
        assert.equal(error?.type, 'ErrorResponse');
        const fields = Object.fromEntries(error.type === 'ErrorResponse' ? error.fields : []);
        assert.equal(fields.S, 'FATAL');
        assert.equal(fields.C, '08P01');
      }
      assert.deepEqual((await healthy.query('select 2 + 2')).rows, [['4']]);
      healthy.terminate();
      await assertServing();
    });
  }

  test('the oversized Query gets its FATAL 08P01 while the client still holds the body', async () => {
    const raw = await loggedIn();
    raw.send(rawMessage(0x51, Buffer.alloc(0), 2 * MiB));
    const error = await raw.error(3000);
    assert.equal(error.severity, 'FATAL');
    assert.equal(error.code, '08P01');
    assert.equal(await raw.waitClosed(), true);
  });
});

describe('cancel', () => {
  async function sleeper(): Promise<pg.Client & { processID: number; secretKey: number }> {
    const principal = unique('sleeper');
    const c = client(gw, principal, await gw.mint(principal, 'local')) as pg.Client & { processID: number; secretKey: number };
    await c.connect();
    return c;
  }
  const keyBytes = (secretKey: number) => {
    const b = Buffer.alloc(4);
    b.writeInt32BE(secretKey);
    return b;
  };

  test('a forged key or a random process id cancels nothing', async () => {
    const c = await sleeper();
    try {
      assert.equal(typeof c.processID, 'number');
      const running = c.query('select pg_sleep(1) as slept');
      await sleep(200);
      const forged = Buffer.from(keyBytes(c.secretKey));
      forged[0] = forged[0]! ^ 0xff;
      await sendCancel(gw.pgPort, c.processID, forged);
      await sendCancel(gw.pgPort, randomBytes(4).readInt32BE() & 0x7fffffff, randomBytes(4));
      const result = await running;
      assert.deepEqual(result.rows, [{ slept: '' }]);
    } finally {
      await c.end();
    }
  });

  test('the real key cancels (57014), and the session goes on', async () => {
    const c = await sleeper();
    try {
      const started = Date.now();
      const running = c.query('select pg_sleep(5)');
      await sleep(300);
      await sendCancel(gw.pgPort, c.processID, keyBytes(c.secretKey));
      await assert.rejects(running, { code: '57014' });
      assert.ok(Date.now() - started < 4000);
      assert.deepEqual((await c.query('select 1 as one')).rows, [{ one: 1 }]);
    } finally {
      await c.end();
    }
  });

  test("the client sees the gateway's cancel key, not the target's", async () => {
    const c = await sleeper();
    try {
      const { rows } = await c.query('select pg_backend_pid() as pid');
      assert.notEqual(rows[0].pid, c.processID);
    } finally {
      await c.end();
    }
  });
});

describe("the target's password never reaches the client", () => {
  for (const { connection, password, user } of [
    { connection: 'priv_scram', password: TARGET_SCRAM_PASSWORD, user: 'app_scram' },
    { connection: 'priv_md5', password: TARGET_MD5_PASSWORD, user: 'app_md5' },
  ]) {
    test(`${connection}: login and query work; no received byte holds the password`, async () => {
      const rows = await queryAs(gw, 'alice', await gw.mint('alice', connection), 'select current_user as u', connection);
      assert.deepEqual(rows, [{ u: user }]);

      const raw = await RawPg.connect({ port: gw.pgPort });
      const login = await raw.login('alice', connection, await gw.mint('alice', connection));
      assert.equal(login.ok, true, JSON.stringify(login.error));
      assert.deepEqual((await raw.query("select current_user, 'done'")).rows, [[user, 'done']]);
      raw.terminate();
      await raw.waitClosed();

      const received = raw.bytes();
      const md5 = createHash('md5')
        .update(password + user)
        .digest('hex');
      for (const secret of [password, md5, Buffer.from(password).toString('base64')]) {
        assert.equal(received.includes(Buffer.from(secret)), false, `the client received ${secret}`);
      }
      // Only the gateway's own authentication messages reach the client, not the target's.
      const auth = login.messages.filter((m) => m.type.startsWith('Authentication')).map((m) => m.type);
      assert.deepEqual(auth, ['AuthenticationSASL', 'AuthenticationSASLContinue', 'AuthenticationSASLFinal', 'AuthenticationOk']);
    });
  }
});
