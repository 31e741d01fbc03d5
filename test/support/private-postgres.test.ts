import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { testCertificateAuthority } from '../../src/tls/selfsigned.ts';
import { startPrivatePostgres, type PrivatePostgres } from './private-postgres.ts';

describe('private PostgreSQL', () => {
  let server: PrivatePostgres;
  let caCert: string;
  before(async () => {
    const ca = await testCertificateAuthority();
    caCert = ca.caCert;
    server = await startPrivatePostgres({
      tls: await ca.issue(['localhost', '127.0.0.1']),
      users: [
        { name: 'alice', password: 's3cret-scram', method: 'scram-sha-256' },
        { name: 'bob', password: 's3cret-md5', method: 'md5' },
        { name: 'carol', password: 's3cret-clear', method: 'password' },
      ],
    });
  });
  after(async () => {
    const dataDir = server.dataDir;
    await server.stop();
    assert.equal(existsSync(dataDir), false);
  });

  async function query(config: pg.ClientConfig, sql: string): Promise<Record<string, unknown>> {
    const client = new pg.Client({ host: server.host, port: server.port, database: 'postgres', ...config });
    await client.connect();
    try {
      return (await client.query(sql)).rows[0];
    } finally {
      await client.end();
    }
  }

  it('verifies TLS against the CA by name and by IP (verify-full)', async () => {
    const viaName = await query(
      { user: 'alice', password: 's3cret-scram', ssl: { ca: caCert, servername: 'localhost', rejectUnauthorized: true } },
      'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
    );
    assert.equal(viaName.ssl, true);
    const viaIp = await query({ user: server.superuser, ssl: { ca: caCert, rejectUnauthorized: true } }, 'SELECT current_user AS u');
    assert.equal(viaIp.u, 'postgres');
    await assert.rejects(query({ user: server.superuser, ssl: { ca: caCert, servername: 'db.example.com' } }, 'SELECT 1'), {
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
    });
  });

  it('authenticates scram, md5 and cleartext users and refuses a wrong password', async () => {
    assert.equal((await query({ user: 'alice', password: 's3cret-scram' }, 'SELECT current_user AS u')).u, 'alice');
    assert.equal((await query({ user: 'bob', password: 's3cret-md5' }, 'SELECT current_user AS u')).u, 'bob');
    assert.equal((await query({ user: 'carol', password: 's3cret-clear' }, 'SELECT current_user AS u')).u, 'carol');
    const stored = await query({ user: server.superuser }, "SELECT left(rolpassword, 3) AS p FROM pg_authid WHERE rolname = 'bob'");
    assert.equal(stored.p, 'md5');
    await assert.rejects(query({ user: 'alice', password: 'wrong' }, 'SELECT 1'), { code: '28P01' });
  });
});
