/**
 * Interactive OIDC login, end to end: the real CLI against a running gateway and a real
 * OpenID Provider (oidc-provider), with a scripted person at the provider's pages.
 *
 * - `drawbridge login`: the device authorization grant; the test reads the code the CLI prints
 *   and enters it at the provider's verification page, as a person on their phone would.
 * - `drawbridge login --browser`: authorization code with PKCE; the test is the browser that
 *   opens the printed URL, logs in, consents and follows the redirect to the CLI's loopback
 *   listener.
 * Either way the CLI trades the access token for a gateway session, saved 0600; `whoami` then
 * reports `via session` (the gateway session, not the IdP token, is what the CLI sends).
 * Refusals: consent denied, a code that expires, a token for another audience, a token that is
 * not an OIDC one, a gateway without OIDC.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { oidcRoutes } from '../src/api/oidc-routes.ts';
import { buildApi } from '../src/api/server.ts';
import type { GatewaySessions } from '../src/identity/gateway-sessions.ts';
import { callApi } from './support/api.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import {
  AGENT_CLIENT_ID,
  CLI_CLIENT_ID,
  gatewayOidcYaml,
  startOidcProvider,
  TEST_AUDIENCE,
  type TestOidcProvider,
} from './support/oidc-provider.ts';

let gw: TestGateway;
let idp: TestOidcProvider;
let home: string;
let api: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

interface Running {
  /** Resolves with the first match of `pattern` in what the CLI wrote to stderr so far. */
  stderrMatch(pattern: RegExp): Promise<RegExpExecArray>;
  readonly done: Promise<Run>;
}

/** Runs the CLI as a person at a terminal would, with its own config folder; never opens a browser. */
function cli(args: readonly string[], options: { env?: Record<string, string>; gateway?: string } = {}): Running {
  const child = spawn(process.execPath, ['bin/drawbridge.js', ...args], {
    env: {
      ...process.env,
      XDG_CONFIG_HOME: home,
      DRAWBRIDGE_GATEWAY: options.gateway ?? api,
      DRAWBRIDGE_TOKEN: '',
      BROWSER: 'none',
      ...options.env,
    },
  });
  let stdout = '';
  let stderr = '';
  const waiting = new Set<() => void>();
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d;
    for (const check of waiting) check();
  });
  child.stdin.end();
  const done = new Promise<Run>((resolve) => child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr })));
  return {
    done,
    stderrMatch: (pattern) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(stderr);
          if (match) {
            waiting.delete(check);
            resolve(match);
          }
        };
        waiting.add(check);
        check();
        void done.then(() => {
          if (waiting.delete(check)) reject(new Error(`the CLI ended without printing ${pattern}: ${stderr}`));
        });
      }),
  };
}

const call = (method: string, path: string, token: string | undefined, body?: unknown) => callApi(api, method, path, token, body);

const sessionFile = () => join(home, 'drawbridge', 'session.json');

async function savedToken(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  return JSON.parse(await readFile(sessionFile(), 'utf8')).token as string;
}

const DEVICE_PROMPT = /To sign in, open (\S+) and enter code (\S+)\n/;
const BROWSER_PROMPT = /To sign in, open (\S+)\n/;

before(async () => {
  home = await mkdtemp(join(tmpdir(), 'drawbridge-home-'));
  idp = await startOidcProvider();
  gw = await startTestGateway({
    connections: [{ name: 'local', access: { maxDurationMs: 3_600_000, approval: 'none' } }],
    extraYaml: gatewayOidcYaml(idp, { clientId: CLI_CLIENT_ID }),
  });
  api = `http://127.0.0.1:${gw.apiPort}`;
});

after(async () => {
  await gw?.close();
  await idp?.close();
  await rm(home, { recursive: true, force: true });
});

describe('drawbridge login with the device flow', () => {
  test('the gateway names its provider, client and audience', async () => {
    const settings = await call('GET', '/api/auth/oidc', undefined);
    assert.equal(settings.status, 200);
    assert.deepEqual(settings.body, { issuer: idp.issuer, clientId: CLI_CLIENT_ID, audience: TEST_AUDIENCE });
  });

  test('the person enters the printed code at the provider; the session is saved 0600', async () => {
    const login = cli(['login']);
    const [, url, code] = await login.stderrMatch(DEVICE_PROMPT);
    assert.ok(url!.startsWith(`${idp.issuer}/`), url);
    assert.match(code!, /^[A-Z]{4}-[A-Z]{4}$/);
    await idp.completeDeviceLogin(url!, 'user-alice');
    const out = await login.done;
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, new RegExp(`^logged in to ${api} as alice until \\S+ \\(session saved in ${sessionFile()}\\)\\n$`));
    assert.equal((await stat(sessionFile())).mode & 0o777, 0o600);
    assert.match(await savedToken(), /^dbr_ses_/);
  });

  test('whoami is the IdP user, through the gateway session', async () => {
    const me = await cli(['whoami', '--json']).done;
    assert.equal(me.code, 0, me.stderr);
    const body = JSON.parse(me.stdout);
    assert.deepEqual(
      { name: body.name, kind: body.kind, groups: body.groups, via: body.via },
      { name: 'alice', kind: 'user', groups: ['dba', 'oncall'], via: 'session' },
    );
    assert.ok(body.roles.includes('user'));
  });

  test('the session carries the roles of role_groups (dba → admin)', async () => {
    const body = JSON.parse((await cli(['whoami', '--json']).done).stdout);
    assert.ok(body.roles.includes('admin'), `roles: ${body.roles}`);
  });

  test('access request works with the session', async () => {
    const granted = await cli(['access', 'request', 'local', '--reason', 'x']).done;
    assert.equal(granted.code, 0, granted.stderr);
    assert.match(granted.stdout, /^dbr_\S+\ngrant \S+ on local, expires /);
  });

  test('logout ends the session', async () => {
    const token = await savedToken();
    const out = await cli(['logout']).done;
    assert.equal(out.code, 0, out.stderr);
    assert.equal((await call('GET', '/api/whoami', token)).status, 401);
    await assert.rejects(stat(sessionFile()));
    const after = await cli(['whoami']).done;
    assert.equal(after.code, 1);
  });

  test('consent denied: exit 1, a clear message, no session', async () => {
    const login = cli(['login']);
    const [, url] = await login.stderrMatch(DEVICE_PROMPT);
    await idp.completeDeviceLogin(url!, 'user-alice', { deny: true });
    const out = await login.done;
    assert.equal(out.code, 1);
    assert.match(out.stderr, /^drawbridge: sign-in was denied at the OIDC provider$/m);
    await assert.rejects(stat(sessionFile()));
  });

  test('a code nobody enters expires: exit 1, a clear message', async () => {
    idp.setDeviceFlow({ codeTtl: 2 });
    try {
      const out = await cli(['login']).done;
      assert.equal(out.code, 1);
      assert.match(out.stderr, /^drawbridge: the code expired before sign-in finished: run `drawbridge login` again$/m);
    } finally {
      idp.setDeviceFlow({ codeTtl: 120 });
    }
  });
});

describe('drawbridge login --browser', () => {
  test('the browser signs in and lands on the loopback listener; the session is saved 0600', async () => {
    const login = cli(['login', '--browser']);
    const [, url] = await login.stderrMatch(BROWSER_PROMPT);
    const authorize = new URL(url!);
    assert.equal(authorize.origin, idp.issuer);
    assert.equal(authorize.searchParams.get('client_id'), CLI_CLIENT_ID);
    assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(authorize.searchParams.get('resource'), TEST_AUDIENCE);
    assert.ok(authorize.searchParams.get('state') && authorize.searchParams.get('nonce'));
    assert.match(authorize.searchParams.get('redirect_uri')!, /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    const landed = await idp.browserLogin(url!, 'user-alice');
    assert.equal(landed.status, 200);
    assert.match(landed.body, /Signed in to Drawbridge/);
    const out = await login.done;
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /^logged in to \S+ as alice until /);
    assert.equal((await stat(sessionFile())).mode & 0o777, 0o600);

    const me = JSON.parse((await cli(['whoami', '--json']).done).stdout);
    assert.deepEqual({ name: me.name, via: me.via }, { name: 'alice', via: 'session' });
    const granted = await cli(['access', 'request', 'local', '--reason', 'x']).done;
    assert.equal(granted.code, 0, granted.stderr);
    const token = await savedToken();
    assert.equal((await cli(['logout']).done).code, 0);
    assert.equal((await call('GET', '/api/whoami', token)).status, 401);
  });

  test('consent denied in the browser: the browser and the terminal say so, exit 1', async () => {
    const login = cli(['login', '--browser']);
    const [, url] = await login.stderrMatch(BROWSER_PROMPT);
    const landed = await idp.browserLogin(url!, 'user-alice', { deny: true });
    assert.equal(landed.status, 400);
    assert.match(landed.body, /denied/);
    const out = await login.done;
    assert.equal(out.code, 1);
    assert.match(out.stderr, /^drawbridge: sign-in was denied at the OIDC provider$/m);
    await assert.rejects(stat(sessionFile()));
  });

  test('a request to the listener with another state does not end the wait', async () => {
    const login = cli(['login', '--browser']);
    const [, url] = await login.stderrMatch(BROWSER_PROMPT);
    const redirect = new URL(new URL(url!).searchParams.get('redirect_uri')!);
    const forged = await fetch(`${redirect.href}?code=stolen&state=not-ours`);
    assert.equal(forged.status, 400);
    assert.equal((await idp.browserLogin(url!, 'user-alice')).status, 200);
    assert.equal((await login.done).code, 0);
    assert.equal((await cli(['logout']).done).code, 0);
  });
});

describe('POST /api/auth/oidc/session', () => {
  test('an access token for another audience is refused (401)', async () => {
    const other = await idp.signUserToken({ sub: 'user-alice', preferred_username: 'alice', aud: 'urn:another:api' });
    const r = await call('POST', '/api/auth/oidc/session', other);
    assert.equal(r.status, 401);
    assert.equal(r.body.code, 'unauthenticated');
  });

  test('a person’s OIDC access token buys a session of the login shape', async () => {
    const { accessToken } = await idp.userLogin('user-alice');
    const r = await call('POST', '/api/auth/oidc/session', accessToken);
    assert.equal(r.status, 200);
    assert.deepEqual(Object.keys(r.body).sort(), ['expiresAt', 'principal', 'refreshExpiresAt', 'refreshToken', 'token']);
    assert.equal(r.body.principal, 'alice');
    const again = await call('POST', '/api/auth/oidc/session', r.body.token);
    assert.equal(again.status, 403, 'a session does not mint another one');
    assert.equal(again.body.code, 'oidc-token-required');
    await call('POST', '/api/auth/logout', r.body.token);
  });

  test("an agent's client-credentials token is refused: service accounts do not get sessions", async () => {
    const r = await call('POST', '/api/auth/oidc/session', await idp.clientCredentialsToken());
    assert.equal(r.status, 403);
    assert.equal(r.body.code, 'oidc-token-required');
  });
});

describe('a gateway without OIDC', () => {
  const sessions = {} as GatewaySessions;

  test('GET /api/auth/oidc is 404 oidc-not-configured, without a provider or without client_id', async () => {
    for (const oidc of [undefined, { issuer: idp.issuer, audience: TEST_AUDIENCE, clientId: undefined }]) {
      const app = buildApi({ version: 'test', routes: oidcRoutes({ oidc, sessions }) });
      const r = await app.inject({ method: 'GET', url: '/api/auth/oidc' });
      assert.equal(r.statusCode, 404);
      assert.equal(r.json().code, 'oidc-not-configured');
      await app.close();
    }
  });

  test('drawbridge login says to use a local account, exit 1', async () => {
    const app = buildApi({ version: 'test', routes: oidcRoutes({ oidc: undefined, sessions }) });
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const { port } = app.server.address() as { port: number };
      const out = await cli(['login'], { gateway: `http://127.0.0.1:${port}` }).done;
      assert.equal(out.code, 1);
      assert.match(out.stderr, /^drawbridge: this gateway has no OIDC provider configured: log in with a local account \(--user NAME\)$/m);
    } finally {
      await app.close();
    }
  });
});
