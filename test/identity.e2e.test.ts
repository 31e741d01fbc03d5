/**
 * From nothing to a working psql session with only short-lived credentials, for a person and
 * for an agent, through the CLI and the API of a running gateway: bootstrap an admin on the
 * store, log in, ask for access, connect with psql and node-postgres, get refused what policy
 * does not allow, revoke, disable. The same through a real OIDC provider's tokens. Role checks
 * on every admin endpoint.
 */

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { callApi } from './support/api.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { AGENT_CLIENT_ID, gatewayOidcYaml, startOidcProvider, type TestOidcProvider } from './support/oidc-provider.ts';

let gw: TestGateway;
let idp: TestOidcProvider;
let home: string;
let api: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI as a person at a terminal would, with its own config folder. */
function cli(args: readonly string[], options: { input?: string; env?: Record<string, string> } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/drawbridge.js', ...args], {
      env: { ...process.env, XDG_CONFIG_HOME: home, DRAWBRIDGE_GATEWAY: api, DRAWBRIDGE_TOKEN: '', ...options.env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

const call = (method: string, path: string, token: string | undefined, body?: unknown) => callApi(api, method, path, token, body);

function psql(uri: string, sql: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile('psql', [uri, '-X', '-At', '-c', sql], { timeout: 20_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

before(async () => {
  home = await mkdtemp(join(tmpdir(), 'drawbridge-home-'));
  idp = await startOidcProvider();
  gw = await startTestGateway({
    connections: [
      { name: 'local', access: { maxDurationMs: 3_600_000, approval: 'none' } },
      { name: 'guarded', access: { maxDurationMs: 3_600_000, approval: 'required' } },
    ],
    extraYaml: gatewayOidcYaml(idp),
  });
  api = `http://127.0.0.1:${gw.apiPort}`;
});

after(async () => {
  await gw?.close();
  await idp?.close();
  await rm(home, { recursive: true, force: true });
});

describe('a person, with a local account', () => {
  let token: string;

  test("the first admin is made on the gateway's host, and logs in; the session is saved 0600", async () => {
    const created = await cli(['users', 'create', 'root-admin', '--role', 'admin', '--password-stdin', '--config', gw.configFile], {
      input: 'correct horse battery staple\n',
    });
    assert.equal(created.code, 0, created.stderr);
    const login = await cli(['login', '--user', 'root-admin', '--password-stdin'], { input: 'correct horse battery staple\n' });
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stdout, /logged in to .* as root-admin/);
    const file = join(home, 'drawbridge', 'session.json');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const whoami = await cli(['whoami', '--json']);
    assert.deepEqual(JSON.parse(whoami.stdout), { name: 'root-admin', kind: 'user', roles: ['admin'], groups: [], via: 'session' });
    token = JSON.parse((await import('node:fs')).readFileSync(file, 'utf8')).token;
  });

  test('a wrong password is refused, and says nothing about which part was wrong', async () => {
    const wrong = await cli(['login', '--user', 'root-admin', '--password-stdin'], { input: 'not the password\n' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /wrong user name or password/);
    const unknown = await cli(['login', '--user', 'nobody', '--password-stdin'], { input: 'whatever it is\n' });
    assert.equal(unknown.stderr, wrong.stderr);
  });

  test('`access request` gives a 30-minute credential with ready-made connection strings that psql uses', async () => {
    const result = await cli(['access', 'request', 'local', '--duration', '30m', '--reason', 'INC-4411 refund check']);
    assert.equal(result.code, 0, result.stderr);
    const [credential, grantLine, psqlLine, jdbcLine, envLine] = result.stdout.trim().split('\n');
    assert.match(credential ?? '', /^dbr_[A-Za-z0-9_-]{43}$/);
    assert.match(grantLine ?? '', /^grant grt_\w+ on local, expires /);
    assert.match(jdbcLine ?? '', /JDBC: jdbc:postgresql:\/\/127\.0\.0\.1:\d+\/local\?user=root-admin&password=dbr_/);
    assert.match(envLine ?? '', /PGUSER=root-admin PGDATABASE=local PGPASSWORD=dbr_/);
    const uri = /psql "([^"]+)"/.exec(psqlLine ?? '')?.[1];
    assert.ok(uri);
    const out = await psql(uri, 'select current_user');
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout.trim(), 'postgres', 'the gateway logs in to the target as its own role');
    const expires = Date.parse(/expires (\S+)/.exec(grantLine ?? '')?.[1] ?? '');
    assert.ok(Math.abs(expires - (Date.now() + 30 * 60_000)) < 60_000);
  });

  test('policy caps the duration, and a connection that needs approval leaves the request pending', async () => {
    const tooLong = await cli(['access', 'request', 'local', '--duration', '2h', '--reason', 'long job']);
    assert.equal(tooLong.code, 1);
    assert.match(tooLong.stderr, /local grants at most 1h/);
    const pending = await cli(['access', 'request', 'guarded', '--duration', '30m', '--reason', 'needs a DBA']);
    assert.equal(pending.code, 0, pending.stderr);
    assert.match(pending.stdout, /^request \S+ for guarded \(30m\) waits for an approver/);
    const id = /^request (\S+)/.exec(pending.stdout)?.[1];
    const listed = await call('GET', '/api/access/requests?status=pending', token);
    assert.deepEqual(
      listed.body.requests
        .filter((r: { request: string }) => r.request === id)
        .map((r: { status: string; connection: string; duration: string }) => [r.status, r.connection, r.duration]),
      [['pending', 'guarded', '30m']],
    );
    const noReason = await call('POST', '/api/access/requests', token, { connection: 'local' });
    assert.equal(noReason.status, 400);
    assert.equal(noReason.body.code, 'invalid-body');
  });

  test('revoking through the API ends the live session within 5 s', async () => {
    const granted = await call('POST', '/api/access/requests', token, { connection: 'local', duration: '10m', reason: 'revocation demo' });
    assert.equal(granted.status, 201);
    const client = new pg.Client({ connectionString: granted.body.connect.psql });
    const ended = new Promise<Error & { code?: string }>((resolve) => client.on('error', resolve));
    await client.connect();
    const revokedAt = Date.now();
    const revoke = await cli(['access', 'revoke', granted.body.grant, '--reason', 'demo over']);
    assert.equal(revoke.code, 0, revoke.stderr);
    const error = await ended;
    assert.ok(Date.now() - revokedAt < 5000);
    assert.equal(error.code, '57P01');
    assert.match(error.message, /was revoked by root-admin: demo over/);
  });

  test('a logged-in admin manages accounts through the API with the same commands', async () => {
    const created = await cli(['users', 'create', 'bob', '--role', 'approver', '--json']);
    assert.equal(created.code, 0, created.stderr);
    assert.deepEqual(JSON.parse(created.stdout).roles, ['approver']);
    const bot = await cli(['service-accounts', 'create', 'api-bot', '--max-duration', '5m']);
    assert.equal(bot.code, 0, bot.stderr);
    assert.match(bot.stdout.split('\n')[0] ?? '', /^dbr_sak_/);
    const listed = await cli(['users', 'list']);
    assert.match(listed.stdout, /^bob +user +approver +enabled$/m);
    assert.match(listed.stdout, /^api-bot +service-account +user +enabled$/m);
    const disabled = await cli(['users', 'disable', 'bob', '--reason', 'left']);
    assert.equal(disabled.code, 0, disabled.stderr);
    assert.match((await cli(['users', 'list'])).stdout, /^bob +user +approver +disabled$/m);
  });

  test('logout ends the gateway session', async () => {
    const out = await cli(['logout']);
    assert.equal(out.code, 0);
    assert.equal((await call('GET', '/api/whoami', token)).status, 401);
    const after = await cli(['whoami']);
    assert.equal(after.code, 1);
    assert.match(after.stderr, /drawbridge login/);
  });
});

describe('an agent, with a service-account key', () => {
  let key: string;

  test('an admin creates it on the host; the key is printed once', async () => {
    const created = await cli([
      'service-accounts',
      'create',
      'etl-bot',
      '--max-duration',
      '10m',
      '--connection',
      'local',
      '--config',
      gw.configFile,
    ]);
    assert.equal(created.code, 0, created.stderr);
    key = created.stdout.split('\n')[0] ?? '';
    assert.match(key, /^dbr_sak_[A-Za-z0-9_-]{43}$/);
  });

  test('with DRAWBRIDGE_TOKEN it asks for a grant within its limits, and connects', async () => {
    const env = { DRAWBRIDGE_TOKEN: key };
    assert.deepEqual(JSON.parse((await cli(['whoami', '--json'], { env })).stdout).kind, 'service-account');
    const granted = await cli(['access', 'request', 'local', '--duration', '5m', '--reason', 'nightly load', '--json'], { env });
    assert.equal(granted.code, 0, granted.stderr);
    const body = JSON.parse(granted.stdout);
    const client = new pg.Client({ connectionString: body.connect.psql });
    await client.connect();
    assert.deepEqual((await client.query('select 1 as one')).rows, [{ one: 1 }]);
    await client.end();
    const tooLong = await cli(['access', 'request', 'local', '--duration', '30m', '--reason', 'x'], { env });
    assert.match(tooLong.stderr, /at most 10m to etl-bot/);
    const elsewhere = await cli(['access', 'request', 'guarded', '--reason', 'x'], { env });
    assert.equal(elsewhere.code, 1);
    assert.match(elsewhere.stderr, /no connection "guarded" that etl-bot may ask for/);
    const admin = await call('GET', '/api/users', key);
    assert.equal(admin.status, 403, 'a key can do nothing but ask for grants');
  });

  test('disabling it ends its live sessions and its key stops working', async () => {
    const granted = await call('POST', '/api/access/requests', key, { connection: 'local', duration: '5m', reason: 'long load' });
    const client = new pg.Client({ connectionString: granted.body.connect.psql });
    const ended = new Promise<Error & { code?: string }>((resolve) => client.on('error', resolve));
    await client.connect();
    const disabled = await cli(['service-accounts', 'disable', 'etl-bot', '--config', gw.configFile, '--reason', 'compromised']);
    assert.equal(disabled.code, 0, disabled.stderr);
    assert.equal((await ended).code, '57P01');
    assert.equal((await call('GET', '/api/whoami', key)).status, 401);
    const minted = await cli(['grant', '--config', gw.configFile, '--principal', 'etl-bot', '--connection', 'local']);
    assert.equal(minted.code, 2, 'not even the local administrator mints for a disabled account');
    assert.match(minted.stderr, /etl-bot is disabled/);
  });
});

describe('OIDC tokens', () => {
  test("an agent's client-credentials token is a service account that may ask for grants", async () => {
    const token = await idp.clientCredentialsToken();
    const me = await call('GET', '/api/whoami', token);
    assert.equal(me.status, 200);
    assert.deepEqual(
      { name: me.body.name, kind: me.body.kind, via: me.body.via },
      { name: AGENT_CLIENT_ID, kind: 'service-account', via: 'oidc' },
    );
    const granted = await call('POST', '/api/access/requests', token, { connection: 'local', duration: '5m', reason: 'plan 17' });
    assert.equal(granted.status, 201);
    assert.match(granted.body.credential, /^dbr_/);
  });

  test("a person's token carries the roles of their groups; a forged one is no one", async () => {
    const login = await idp.userLogin('user-alice');
    const me = await call('GET', '/api/whoami', login.accessToken);
    assert.equal(me.status, 200);
    assert.equal(me.body.name, 'alice');
    assert.ok(me.body.roles.includes('admin'), 'group dba carries admin');
    assert.equal((await call('GET', '/api/users', login.accessToken)).status, 200);
    const forged = `${login.accessToken.slice(0, -4)}AAAA`;
    assert.equal((await call('GET', '/api/whoami', forged)).status, 401);
    assert.equal((await call('GET', '/api/whoami', login.idToken)).status, 401, 'an ID token is not for the gateway');
  });
});

describe('role checks', () => {
  let user: string;
  let auditor: string;
  let admin: string;

  before(async () => {
    const make = async (name: string, role: string) => {
      const r = await cli(['users', 'create', name, '--role', role, '--password-stdin', '--config', gw.configFile], {
        input: 'a long enough password\n',
      });
      assert.equal(r.code, 0, r.stderr);
      return (await call('POST', '/api/auth/login', undefined, { username: name, password: 'a long enough password' })).body
        .token as string;
    };
    user = await make('plain-user', 'user');
    auditor = await make('auditor-1', 'auditor');
    admin = await make('admin-2', 'admin');
  });

  const adminOnly: [string, string, unknown][] = [
    ['POST', '/api/users', { name: 'x-user' }],
    ['PUT', '/api/users/x-user/roles', { roles: ['user'] }],
    ['POST', '/api/users/x-user/disable', {}],
    ['POST', '/api/users/x-user/enable', undefined],
    ['POST', '/api/service-accounts', { name: 'x-bot' }],
    ['POST', '/api/service-accounts/x-bot/rotate', undefined],
    ['POST', '/api/access/revocations', { principal: 'nobody' }],
  ];

  test('without a token every non-public endpoint is 401', async () => {
    for (const [method, path, body] of [
      ...adminOnly,
      ['GET', '/api/users', undefined] as [string, string, unknown],
      ['GET', '/api/whoami', undefined] as [string, string, unknown],
    ]) {
      const r = await call(method, path, undefined, body);
      assert.equal(r.status, 401, `${method} ${path}`);
      assert.equal(r.body.code, 'unauthenticated');
    }
  });

  test('a user and an auditor get 403 on every admin endpoint; an admin does not', async () => {
    for (const [method, path, body] of adminOnly) {
      assert.equal((await call(method, path, user, body)).status, 403, `user: ${method} ${path}`);
      assert.equal((await call(method, path, auditor, body)).status, 403, `auditor: ${method} ${path}`);
      assert.notEqual((await call(method, path, admin, body)).status, 403, `admin: ${method} ${path}`);
    }
  });

  test('reading accounts is for admins and auditors; a user sees only their own grants', async () => {
    assert.equal((await call('GET', '/api/users', user)).status, 403);
    assert.equal((await call('GET', '/api/users', auditor)).status, 200);
    assert.equal((await call('GET', '/api/access/grants?principal=root-admin', user)).status, 403);
    assert.equal((await call('GET', '/api/access/grants?principal=root-admin&all=true', auditor)).status, 200);
    const mine = await call('POST', '/api/access/requests', user, { connection: 'local', duration: '5m', reason: 'own' });
    assert.equal((await call('DELETE', `/api/access/grants/${mine.body.grant}`, auditor)).status, 404, "someone else's grant is not there");
    assert.equal((await call('DELETE', `/api/access/grants/${mine.body.grant}`, user)).status, 204);
  });

  test('the OpenAPI document lists every route with its roles', async () => {
    const doc = (await call('GET', '/api/openapi.json', undefined)).body;
    assert.deepEqual(doc.paths['/api/users'].post['x-drawbridge-roles'], ['admin']);
    assert.ok(doc.paths['/api/access/requests'].post.requestBody);
    assert.deepEqual(doc.paths['/api/auth/login'].post.security, []);
  });
});
