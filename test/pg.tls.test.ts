/**
 * TLS on both legs of a PostgreSQL session. Client → gateway: psql and node-postgres verify the
 * gateway's certificate, SCRAM binds the channel, and a gateway without TLS says so. Gateway →
 * target: `require` and `verify-full` against a private cluster with its own CA, with SCRAM,
 * md5 and cleartext target users; a wrong CA, a target without TLS, or a wrong target password
 * end in FATAL 08001 with a message that names the target and leaks no secret.
 *
 * Needs psql, PostgreSQL on 127.0.0.1:5432 (trust, no TLS) and the server binaries for the
 * private cluster (see support/private-postgres.ts).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TLSSocket } from 'node:tls';
import pg from 'pg';
import { encodeStartup } from '../src/wire/pg/index.ts';
import { selfSignedPair, testCertificateAuthority } from '../src/tls/selfsigned.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { startPrivatePostgres, type PrivatePostgres } from './support/private-postgres.ts';
import { psql, RawPg } from './support/raw-pg.ts';

const SCRAM_PASSWORD = `scram-${randomBytes(6).toString('hex')}`;
const MD5_PASSWORD = `md5-${randomBytes(6).toString('hex')}`;
const CLEAR_PASSWORD = `clear-${randomBytes(6).toString('hex')}`;
const WRONG_PASSWORD = `wrong-${randomBytes(6).toString('hex')}`;

function pgClient(g: TestGateway, user: string, password: string, database: string, ssl?: pg.ClientConfig['ssl']): pg.Client {
  const c = new pg.Client({
    host: g.host,
    port: g.pgPort,
    user,
    password,
    database,
    connectionTimeoutMillis: 10_000,
    ...(ssl ? { ssl } : {}),
  });
  c.on('error', () => {});
  return c;
}

async function loginError(g: TestGateway, database: string): Promise<{ code?: string; message: string; severity?: string }> {
  const c = pgClient(g, 'alice', await g.mint('alice', database), database);
  try {
    await c.connect();
  } catch (error) {
    return error as { code?: string; message: string; severity?: string };
  }
  await c.end();
  assert.fail(`login to ${database} unexpectedly succeeded`);
}

describe('client → gateway TLS', () => {
  let gw: TestGateway;
  let plainGw: TestGateway;
  let rootCert: string;
  let gatewayCert: string;

  before(async () => {
    const pair = await selfSignedPair();
    gatewayCert = pair.cert;
    gw = await startTestGateway({ tls: pair });
    plainGw = await startTestGateway();
    rootCert = join(gw.dir, 'client-root.crt');
    await writeFile(rootCert, pair.cert);
  });
  after(async () => {
    await Promise.all([gw?.close(), plainGw?.close()]);
  });

  const conninfo = (g: TestGateway, host: string, extra: string) => `host=${host} port=${g.pgPort} user=alice dbname=local ${extra}`;

  for (const host of ['127.0.0.1', 'localhost']) {
    test(`psql sslmode=verify-full with the gateway's certificate as root works (host ${host})`, async () => {
      const result = await psql(conninfo(gw, host, `sslmode=verify-full sslrootcert=${rootCert}`), await gw.mint('alice', 'local'), [
        '\\conninfo',
        'select 1',
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /SSL connection \(protocol: TLSv1\.[23]/);
      assert.match(result.stdout, /^1$/m);
    });
  }

  test('psql sslmode=verify-full with another root certificate fails', async () => {
    const other = join(gw.dir, 'other-root.crt');
    await writeFile(other, (await selfSignedPair()).cert);
    const result = await psql(conninfo(gw, '127.0.0.1', `sslmode=verify-full sslrootcert=${other}`), await gw.mint('alice', 'local'), [
      'select 1',
    ]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /certificate verify failed/);
  });

  test('psql sslmode=require works', async () => {
    const result = await psql(conninfo(gw, '127.0.0.1', 'sslmode=require'), await gw.mint('alice', 'local'), ['\\conninfo', 'select 2']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /SSL connection/);
  });

  test('psql channel_binding=require succeeds (SCRAM-SHA-256-PLUS over TLS)', async () => {
    const result = await psql(
      conninfo(gw, '127.0.0.1', `sslmode=verify-full sslrootcert=${rootCert} channel_binding=require`),
      await gw.mint('alice', 'local'),
      ['select 3'],
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), '3');
  });

  test('a raw client that claims channel binding support but does not use it is refused', async () => {
    // gs2 header 'y' over TLS while the server offers -PLUS: a downgrade (RFC 5802 §6).
    const raw = await RawPg.connect({ port: gw.pgPort });
    await raw.startTls();
    const login = await raw.login('alice', 'local', await gw.mint('alice', 'local'), { channelBinding: false });
    assert.equal(login.ok, false);
    assert.equal(login.error?.severity, 'FATAL');
    assert.match(login.error?.code ?? '', /^(08P01|28P01)$/);
  });

  test('pg with ssl { ca, servername } works over TLS', async () => {
    const c = pgClient(gw, 'alice', await gw.mint('alice', 'local'), 'local', {
      ca: gatewayCert,
      servername: 'localhost',
      rejectUnauthorized: true,
    });
    await c.connect();
    try {
      assert.deepEqual((await c.query('select 4 as four')).rows, [{ four: 4 }]);
      const stream = (c as unknown as { connection: { stream: unknown } }).connection.stream;
      assert.ok(stream instanceof TLSSocket);
    } finally {
      await c.end();
    }
  });

  test('pg rejects a gateway certificate for another name', async () => {
    const c = pgClient(gw, 'alice', await gw.mint('alice', 'local'), 'local', {
      ca: gatewayCert,
      servername: 'db.example.com',
      rejectUnauthorized: true,
    });
    await assert.rejects(c.connect(), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });

  test('a client that abandons the TLS handshake leaves nothing pending on the gateway', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    for (let i = 0; i < 5; i++) {
      const raw = await RawPg.connect({ port: gw.pgPort });
      raw.send(encodeStartup({ type: 'SSLRequest' }));
      assert.equal(await raw.byte(), 0x53);
      raw.destroy();
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.ok(timers() - before < 5, `${timers() - before} timers left behind by 5 abandoned handshakes`);
  });

  test('without TLS on the gateway: sslmode=require fails, sslmode=prefer falls back to plaintext', async () => {
    const required = await psql(conninfo(plainGw, '127.0.0.1', 'sslmode=require'), await plainGw.mint('alice', 'local'), ['select 1']);
    assert.notEqual(required.code, 0);
    assert.match(required.stderr, /server does not support SSL, but SSL was required/);

    const preferred = await psql(conninfo(plainGw, '127.0.0.1', 'sslmode=prefer'), await plainGw.mint('alice', 'local'), [
      '\\conninfo',
      'select 5',
    ]);
    assert.equal(preferred.code, 0, preferred.stderr);
    assert.doesNotMatch(preferred.stdout, /SSL connection/);
    assert.match(preferred.stdout, /^5$/m);
  });
});

describe('gateway → target TLS', () => {
  let target: PrivatePostgres;
  let gw: TestGateway;
  let caCert: string;

  before(async () => {
    const ca = await testCertificateAuthority();
    const otherCa = await testCertificateAuthority({ commonName: 'Some Other CA' });
    caCert = ca.caCert;
    target = await startPrivatePostgres({
      tls: await ca.issue(['127.0.0.1']),
      users: [
        { name: 'alice_scram', password: SCRAM_PASSWORD, method: 'scram-sha-256' },
        { name: 'bob_md5', password: MD5_PASSWORD, method: 'md5' },
        { name: 'carol_clear', password: CLEAR_PASSWORD, method: 'password' },
      ],
    });
    const at = { host: target.host, port: target.port };
    gw = await startTestGateway({
      connections: [
        { name: 'require_scram', ...at, tls: 'require', user: 'alice_scram', password: SCRAM_PASSWORD },
        { name: 'verify_scram', ...at, tls: 'verify-full', ca: caCert, user: 'alice_scram', password: SCRAM_PASSWORD },
        { name: 'verify_md5', ...at, tls: 'verify-full', ca: caCert, user: 'bob_md5', password: MD5_PASSWORD },
        { name: 'verify_clear', ...at, tls: 'verify-full', ca: caCert, user: 'carol_clear', password: CLEAR_PASSWORD },
        { name: 'plain_scram', ...at, tls: 'disable', user: 'alice_scram', password: SCRAM_PASSWORD },
        { name: 'wrong_ca', ...at, tls: 'verify-full', ca: otherCa.caCert, user: 'alice_scram', password: SCRAM_PASSWORD },
        { name: 'wrong_password', ...at, tls: 'require', user: 'alice_scram', password: WRONG_PASSWORD },
        // The machine's PostgreSQL has TLS off.
        { name: 'no_tls_target', tls: 'require' },
      ],
    });
  });
  after(async () => {
    await gw?.close();
    await target?.stop();
  });

  // The target's certificate names only 127.0.0.1 (an IP SAN), and connections use that address.
  const VERIFY_IP_BUG =
    'gateway bug: verify-full to a target given by IP checks the name "localhost" (no host/servername passed to tls.connect)';
  const working: { connection: string; user: string; ssl: boolean }[] = [
    { connection: 'require_scram', user: 'alice_scram', ssl: true },
    { connection: 'verify_scram', user: 'alice_scram', ssl: true },
    { connection: 'verify_md5', user: 'bob_md5', ssl: true },
    { connection: 'verify_clear', user: 'carol_clear', ssl: true },
    { connection: 'plain_scram', user: 'alice_scram', ssl: false },
  ];
  for (const { connection, user, ssl } of working) {
    test(`${connection}: a query works end to end, over TLS to the target: ${ssl}`, async () => {
      const c = pgClient(gw, 'alice', await gw.mint('alice', connection), connection);
      await c.connect();
      try {
        const { rows } = await c.query('select current_user as u, ssl from pg_stat_ssl where pid = pg_backend_pid()');
        assert.deepEqual(rows, [{ u: user, ssl }]);
      } finally {
        await c.end();
      }
    });
  }

  test('verify-full with the wrong CA: FATAL 08001 naming the target, no secrets', async () => {
    const error = await loginError(gw, 'wrong_ca');
    assert.equal(error.severity, 'FATAL');
    assert.equal(error.code, '08001');
    assert.match(error.message, /wrong_ca/);
    assert.match(error.message, /could not (connect|verify)|TLS .*failed|certificate/i);
    assert.doesNotMatch(error.message, new RegExp(SCRAM_PASSWORD));
    assert.doesNotMatch(error.message, /BEGIN CERTIFICATE/);
  });

  test('verify-full with the wrong CA: the message says the gateway could not verify the target, in words meant for a database user', async () => {
    const error = await loginError(gw, 'wrong_ca');
    assert.match(error.message, /gateway could not (connect to|verify) target "wrong_ca"/);
    assert.doesNotMatch(error.message, /Node\.js|--use-system-ca/);
  });

  test('tls: require against a target with TLS off: FATAL 08001', async () => {
    const error = await loginError(gw, 'no_tls_target');
    assert.equal(error.severity, 'FATAL');
    assert.equal(error.code, '08001');
    assert.match(error.message, /no_tls_target/);
    assert.match(error.message, /TLS/);
  });

  test('a wrong target password in config: FATAL 08001 "the gateway could not log in to target", no password', async () => {
    const error = await loginError(gw, 'wrong_password');
    assert.equal(error.severity, 'FATAL');
    assert.equal(error.code, '08001');
    assert.match(error.message, /^the gateway could not log in to target "wrong_password"/);
    assert.doesNotMatch(error.message, new RegExp(WRONG_PASSWORD));
    assert.doesNotMatch(error.message, new RegExp(SCRAM_PASSWORD));
  });

  test('after those refusals the gateway still serves every working connection', async () => {
    for (const { connection } of working) {
      const c = pgClient(gw, 'alice', await gw.mint('alice', connection), connection);
      await c.connect();
      assert.deepEqual((await c.query('select 1 as one')).rows, [{ one: 1 }]);
      await c.end();
    }
  });
});
