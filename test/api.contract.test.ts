/**
 * The API keeps its contract: a running gateway (SQLite store, a PostgreSQL target, a real OIDC
 * provider) is called over HTTP for every operation that /api/openapi.json lists, as a caller who
 * may (each outcome the test can reach: successes and the route's own refusals), without a token,
 * with a role that may not, with an undeclared query parameter and, where a body is read, with a
 * body that is invalid, not JSON, of another media type or too large. Every answer must have a
 * status the document declares for that operation, the declared media type, and a body that
 * validates (ajv) against the declared schema, which for refusals pins the status and the codes;
 * every code must be listed in docs/errors.md. Also: every route Fastify serves is in the
 * document (HEAD comes with each GET; routes registered with `schema: { hide: true }`, the web
 * UI's static files, are not operations of the API and are left out), the document and
 * docs/api.md's route table list the same operations, and every status the document declares is
 * seen at least once, except those listed in UNREACHED with the reason.
 *
 * Known limit: response headers other than Content-Type are not part of the check.
 */

import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import { get, type IncomingMessage } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import pg from 'pg';
import { accountToken, callApi } from './support/api.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { CLI_CLIENT_ID, gatewayOidcYaml, startOidcProvider, type TestOidcProvider } from './support/oidc-provider.ts';
import { eventually } from './support/pg-db.ts';

// ajv-formats is CommonJS: its function is the module itself, or its `default` under some loaders.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv) => Ajv;

const root = new URL('..', import.meta.url);
const PASSWORD = 'a long enough password';
const METHODS = ['get', 'post', 'put', 'delete', 'patch'] as const;
const ROLES = ['user', 'approver', 'auditor', 'admin'] as const;
type Role = (typeof ROLES)[number];

/**
 * Statuses the document declares that no call here produces, each with why. Every other declared
 * status of every operation must be seen.
 */
const UNREACHED: Readonly<Record<string, string>> = {
  '* 500': 'internal errors are not provoked; the body is the same problem schema as every refusal',
  'GET /api/auth/oidc 404': 'oidc-not-configured needs a gateway without oidc.client_id; test/oidc-login.e2e.test.ts covers it',
  'POST /api/policies/test 409': 'policy-disabled needs a gateway with policy.enabled: false',
};

interface Operation {
  readonly method: string;
  /** As the document writes it: `/api/access/grants/{id}`. */
  readonly path: string;
  readonly spec: {
    readonly security?: unknown[];
    readonly 'x-drawbridge-roles'?: Role[];
    readonly requestBody?: unknown;
    readonly responses: Record<string, { content?: Record<string, { schema: object }> }>;
  };
}

interface Answer {
  readonly status: number;
  readonly type: string;
  readonly text: string;
}

/** One call an operation's case makes: who, which concrete path, what body, and the status expected. */
interface Call {
  readonly as: Role | 'none' | (() => Promise<string>);
  /** Defaults to the operation's path when it has no parameters. */
  readonly path?: string | (() => Promise<string>);
  readonly body?: unknown | (() => Promise<unknown>);
  readonly status: number;
  /** Checks beyond the contract, on the parsed body. */
  readonly then?: (body: any) => void | Promise<void>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

let gw: TestGateway;
let idp: TestOidcProvider;
let api: string;
let document: { paths: Record<string, Record<string, Operation['spec']>> };
const tokens = {} as Record<Role, string>;
/** What Fastify registered, seen through its diagnostics channel (every instance made in this process). */
const registered: { method: string; url: string }[] = [];
let sessionId = '';
let firstGrantPage: { next: string | null } | undefined;
let firstUserPage: { next: string | null } | undefined;
let firstAuditPage: { next: number | null } | undefined;

const onFastify = (message: unknown) => {
  const { fastify } = message as {
    fastify: {
      addHook(name: 'onRoute', hook: (route: { method: string | string[]; url: string; schema?: { hide?: boolean } }) => void): void;
    };
  };
  fastify.addHook('onRoute', (route) => {
    // Hidden routes are not API operations (the web UI's static files, src/api/web-ui.ts).
    if (route.schema?.hide === true) return;
    for (const method of [route.method].flat()) registered.push({ method, url: route.url });
  });
};

before(async () => {
  subscribe('fastify.initialization', onFastify);
  idp = await startOidcProvider();
  gw = await startTestGateway({
    connections: [
      { name: 'local', access: { maxDurationMs: 3_600_000, approval: 'none' } },
      { name: 'guarded', access: { maxDurationMs: 3_600_000, approval: 'required', approvers: 'dba' } },
    ],
    extraYaml: gatewayOidcYaml(idp, { clientId: CLI_CLIENT_ID }),
  });
  unsubscribe('fastify.initialization', onFastify);
  api = `http://127.0.0.1:${gw.apiPort}`;
  tokens.admin = await accountToken(gw, 'ada', ['admin']);
  tokens.auditor = await accountToken(gw, 'audra', ['auditor']);
  tokens.approver = await accountToken(gw, 'april', ['approver']);
  tokens.user = await accountToken(gw, 'uma', ['user']);
  // A recorded session of ada's, for the sessions routes.
  const client = new pg.Client({
    host: '127.0.0.1',
    port: gw.pgPort,
    user: 'ada',
    database: 'local',
    password: await gw.mint('ada', 'local'),
  });
  await client.connect();
  await client.query('select 1 as one');
  await client.end();
  const sessions = await eventually(
    () => gw.gateway.store.listSessions({ principal: 'ada' }),
    (s) => s.length === 1 && s[0]!.endedAt !== undefined,
    10_000,
  );
  sessionId = sessions[0]!.id;
  // Two more grants, so that a page of one has a next.
  await gw.mint('ada', 'local');
  await gw.mint('uma', 'local');
  document = (await callApi(api, 'GET', '/api/openapi.json', undefined)).body;
});

after(async () => {
  await gw?.close();
  await idp?.close();
});

async function send(method: string, path: string, token: string | undefined, body?: { type: string; text: string }): Promise<Answer> {
  if (method === 'GET' && path.startsWith('/api/approvals/stream')) return firstEvent(path, token);
  const response = await fetch(`${api}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body ? { 'content-type': body.type } : {}),
    },
    ...(body ? { body: body.text } : {}),
  });
  return { status: response.status, type: (response.headers.get('content-type') ?? '').split(';')[0]!.trim(), text: await response.text() };
}

/**
 * An event stream's answer up to its first event (or the whole answer when it is a refusal), on a
 * connection of its own that is then dropped: the stream itself never ends.
 */
async function firstEvent(path: string, token: string | undefined): Promise<Answer> {
  const request = get(`${api}${path}`, { agent: false, headers: token ? { authorization: `Bearer ${token}` } : {} });
  const response = await new Promise<IncomingMessage>((resolve, reject) => request.once('response', resolve).once('error', reject));
  const type = (response.headers['content-type'] ?? '').split(';')[0]!.trim();
  let text = '';
  response.setEncoding('utf8');
  // A stream that sends no event in 10 s is cut: its answer then has no event, which fails the case.
  const timer = setTimeout(() => request.destroy(), 10_000);
  try {
    for await (const chunk of response) {
      text += chunk as string;
      if (type === 'text/event-stream' && /(^|\n)event: [^\n]*\n(?:[^\n]+\n)*\n/.test(text)) break;
    }
  } catch {
    // cut by the timer
  } finally {
    clearTimeout(timer);
    request.destroy();
  }
  if (type === 'text/event-stream' && eventData(text).length === 0) text += '\ndata: no event within 10 s\n\n';
  return { status: response.statusCode ?? 0, type, text };
}

const json = (value: unknown) => ({ type: 'application/json', text: JSON.stringify(value) });

/** A new session token of a new account (for calls that end or change their caller). */
async function freshToken(roles: Role[] = ['user']): Promise<string> {
  return accountToken(gw, `temp-${Math.random().toString(36).slice(2, 10)}`, roles);
}

/** A live grant of uma's, made through the API. */
async function umasGrant(): Promise<string> {
  const r = await callApi(api, 'POST', '/api/access/requests', tokens.user, { connection: 'local', duration: '5m', reason: 'contract' });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.grant as string;
}

let dbaToken: string | undefined;
/** An approver in the group `dba`, which the approvals below name. */
async function dba(): Promise<string> {
  if (dbaToken === undefined) {
    await gw.gateway.accounts.createUser({ name: 'dina', password: PASSWORD, roles: ['approver'], groups: ['dba'] }, 'test');
    dbaToken = (await callApi(api, 'POST', '/api/auth/login', undefined, { username: 'dina', password: PASSWORD })).body.token as string;
  }
  return dbaToken;
}

/** A pending approval of uma's statement, as a held statement makes it. */
async function pendingApproval(): Promise<number> {
  const now = Date.now();
  const approval = await gw.gateway.store.insertApproval({
    kind: 'statement',
    requester: 'uma',
    connection: 'local',
    statement: 'update orders set status = $1',
    params: ['refunded'],
    policy: 'updates-need-a-dba',
    reason: 'held by policy "updates-need-a-dba"',
    approvers: 'dba',
    createdAt: now,
    expiresAt: now + 600_000,
  });
  return approval.id;
}

/** An access request of uma's to `guarded`, waiting for its approval: its id and its approval's. */
async function umasAccessRequest(): Promise<{ request: string; approval: number }> {
  const r = await callApi(api, 'POST', '/api/access/requests', tokens.user, { connection: 'guarded', duration: '5m', reason: 'contract' });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  return { request: r.body.request as string, approval: r.body.approval as number };
}

/** An access request of uma's that a member of `dba` approved. */
async function umasApprovedRequest(): Promise<string> {
  const { request, approval } = await umasAccessRequest();
  const approved = await callApi(api, 'POST', `/api/approvals/${approval}/approve`, await dba(), {});
  assert.equal(approved.status, 200, JSON.stringify(approved.body));
  return request;
}

let contractBot: Promise<string> | undefined;
/** A service account whose key asked for a 30-minute grant on `local`: its name. */
function serviceAccountWithAGrant(): Promise<string> {
  contractBot ??= (async () => {
    const { key } = await gw.gateway.accounts.createServiceAccount({ name: 'contract-bot', connections: ['local', 'guarded'] }, 'test');
    const r = await callApi(api, 'POST', '/api/access/requests', key, { connection: 'local', duration: '30m', reason: 'contract' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return 'contract-bot';
  })();
  return contractBot;
}

/** An approval already decided. */
async function decidedApproval(): Promise<number> {
  const id = await pendingApproval();
  await gw.gateway.store.decideApproval(id, 'denied', Date.now(), 'dina', 'no');
  return id;
}

/** What each operation is called with, besides the checks every operation gets. */
function cases(): Record<string, readonly Call[]> {
  let revokedTwice = '';
  return {
    'GET /healthz': [{ as: 'none', status: 200 }],
    'GET /api/openapi.json': [{ as: 'none', status: 200 }],
    'POST /api/auth/login': [
      { as: 'none', body: { username: 'ada', password: PASSWORD }, status: 200 },
      { as: 'none', body: { username: 'ada', password: 'not the password' }, status: 401 },
    ],
    'POST /api/auth/refresh': [
      {
        as: 'none',
        body: async () => ({
          refreshToken: (await callApi(api, 'POST', '/api/auth/login', undefined, { username: 'uma', password: PASSWORD })).body
            .refreshToken,
        }),
        status: 200,
      },
      { as: 'none', body: { refreshToken: 'dbr_ref_unknown' }, status: 401 },
    ],
    'POST /api/auth/logout': [{ as: () => freshToken(), status: 204 }],
    'GET /api/auth/oidc': [{ as: 'none', status: 200 }],
    'POST /api/auth/oidc/session': [
      { as: async () => (await idp.userLogin('user-alice')).accessToken, status: 200 },
      { as: 'admin', status: 403 },
    ],
    'GET /api/whoami': [
      { as: 'user', status: 200 },
      { as: async () => (await idp.userLogin('user-alice')).accessToken, status: 200 },
    ],
    'GET /api/connections': [{ as: 'user', status: 200 }],
    'POST /api/access/requests': [
      { as: 'user', body: { connection: 'local', duration: '5m', reason: 'INC-1' }, status: 201 },
      { as: 'user', body: { connection: 'guarded', duration: '5m', reason: 'INC-2' }, status: 202 },
      { as: 'user', body: { connection: 'nowhere', reason: 'INC-3' }, status: 404 },
      { as: 'user', body: { connection: 'local', duration: '2h', reason: 'INC-4' }, status: 400 },
      { as: 'user', body: { connection: 'local', reason: '   ' }, status: 400 },
      {
        as: 'user',
        body: { connection: 'local', reason: 'INC-5', plan: { steps: [{ actions: ['read'], tables: ['orders'] }] } },
        status: 202,
        then: (body) => assert.match(body.plan, /^req_/),
      },
      {
        as: 'user',
        body: { connection: 'local', reason: 'INC-6', plan: { steps: [{ actions: ['fly'], tables: [] }] } },
        status: 400,
        then: (body) => assert.equal(body.code, 'invalid-plan'),
      },
    ],
    'POST /api/access/plans/{id}/finish': [
      {
        as: 'user',
        path: async () => {
          const plan = { steps: [{ actions: ['select'], tables: ['orders'] }] };
          const r = await callApi(api, 'POST', '/api/access/requests', tokens.user, { connection: 'local', reason: 'contract', plan });
          return `/api/access/plans/${r.body.plan}/finish`;
        },
        status: 200,
        then: (body) => assert.equal(body.status, 'withdrawn'),
      },
      { as: 'user', path: '/api/access/plans/req_nothing/finish', status: 404 },
    ],
    'GET /api/access/requests': [
      { as: 'user', status: 200 },
      { as: 'approver', path: '/api/access/requests?status=pending&connection=guarded&limit=1', status: 200 },
      { as: 'user', path: '/api/access/requests?principal=ada', status: 403 },
      { as: 'user', path: '/api/access/requests?status=maybe', status: 400 },
      { as: 'user', path: '/api/access/requests?before=yesterday', status: 400 },
    ],
    'GET /api/access/grants': [
      { as: 'user', status: 200 },
      {
        as: 'admin',
        path: '/api/access/grants?all=true&limit=1',
        status: 200,
        then: (body) => {
          assert.equal(body.grants.length, 1);
          assert.notEqual(body.next, null, 'more grants follow');
          firstGrantPage = body;
        },
      },
      {
        as: 'admin',
        path: async () => `/api/access/grants?all=true&limit=1000&before=${encodeURIComponent(firstGrantPage!.next!)}`,
        status: 200,
        then: (body) => {
          assert.ok(body.grants.length >= 2);
          assert.equal(body.next, null);
        },
      },
      { as: 'user', path: '/api/access/grants?principal=ada', status: 403 },
      { as: 'admin', path: '/api/access/grants?all=maybe', status: 400 },
      { as: 'admin', path: '/api/access/grants?limit=1001', status: 400 },
    ],
    'DELETE /api/access/grants/{id}': [
      { as: 'user', path: async () => `/api/access/grants/${await umasGrant()}?reason=done`, status: 204 },
      {
        as: 'user',
        path: async () => {
          revokedTwice = await umasGrant();
          await callApi(api, 'DELETE', `/api/access/grants/${revokedTwice}`, tokens.user);
          return `/api/access/grants/${revokedTwice}`;
        },
        status: 409,
      },
      { as: 'auditor', path: async () => `/api/access/grants/${await umasGrant()}`, status: 404 },
      { as: 'admin', path: '/api/access/grants/grt_nothing', status: 404 },
    ],
    'POST /api/access/revocations': [{ as: 'admin', body: { principal: 'uma', reason: 'contract' }, status: 200 }],
    'GET /api/users': [
      { as: 'auditor', status: 200 },
      {
        as: 'admin',
        path: '/api/users?limit=2',
        status: 200,
        then: (body) => {
          assert.equal(body.users.length, 2);
          firstUserPage = body;
        },
      },
      {
        as: 'admin',
        path: async () => `/api/users?after=${encodeURIComponent(firstUserPage!.next!)}&kind=user`,
        status: 200,
        then: (body) => assert.ok(body.users.every((u: { name: string }) => u.name > firstUserPage!.next!)),
      },
      { as: 'admin', path: '/api/users?kind=robot', status: 400 },
    ],
    'POST /api/users': [
      { as: 'admin', body: { name: 'carol', password: PASSWORD, roles: ['user'], groups: ['ops'] }, status: 201 },
      { as: 'admin', body: { name: 'Carol', password: PASSWORD }, status: 409 },
      { as: 'admin', body: { name: 'dave', password: 'short' }, status: 400 },
      { as: 'admin', body: { name: '-dave' }, status: 400 },
    ],
    'PUT /api/users/{name}/roles': [
      { as: 'admin', path: '/api/users/carol/roles', body: { roles: ['approver'] }, status: 200 },
      { as: 'admin', path: '/api/users/nobody/roles', body: { roles: ['user'] }, status: 404 },
    ],
    'POST /api/users/{name}/disable': [
      { as: 'admin', path: '/api/users/carol/disable', body: { reason: 'contract' }, status: 204 },
      { as: 'admin', path: '/api/users/nobody/disable', body: {}, status: 404 },
    ],
    'POST /api/users/{name}/enable': [
      { as: 'admin', path: '/api/users/carol/enable', status: 204 },
      { as: 'admin', path: '/api/users/nobody/enable', status: 404 },
    ],
    'POST /api/service-accounts': [
      { as: 'admin', body: { name: 'etl-bot', maxDuration: '10m', connections: ['local'] }, status: 201 },
      { as: 'admin', body: { name: 'etl-bot' }, status: 409 },
      { as: 'admin', body: { name: 'big-bot', maxDuration: '400d' }, status: 400 },
    ],
    'POST /api/service-accounts/{name}/rotate': [
      { as: 'admin', path: '/api/service-accounts/etl-bot/rotate', status: 200 },
      { as: 'admin', path: '/api/service-accounts/carol/rotate', status: 400 },
      { as: 'admin', path: '/api/service-accounts/nobody/rotate', status: 404 },
    ],
    'GET /api/service-accounts': [
      {
        as: 'auditor',
        path: async () => `/api/service-accounts?after=${(await serviceAccountWithAGrant()).slice(0, -1)}`,
        status: 200,
        then: (body) =>
          assert.ok(body.serviceAccounts.some((a: { name: string; key: { works: boolean } }) => a.name === 'contract-bot' && a.key.works)),
      },
      { as: 'admin', path: '/api/service-accounts?limit=1', status: 200, then: (body) => assert.equal(body.serviceAccounts.length, 1) },
      { as: 'admin', path: '/api/service-accounts?limit=0', status: 400 },
    ],
    'GET /api/service-accounts/{name}': [
      {
        as: 'auditor',
        path: async () => `/api/service-accounts/${await serviceAccountWithAGrant()}?since=7d`,
        status: 200,
        then: (body) =>
          assert.ok(body.usage.grants.issued >= 1 && body.usage.connections.some((c: { connection: string }) => c.connection === 'local')),
      },
      { as: 'admin', path: '/api/service-accounts/uma', status: 404, then: (body) => assert.equal(body.code, 'account-unknown') },
      { as: 'admin', path: '/api/service-accounts/contract-bot?since=banana', status: 400 },
    ],
    'PUT /api/service-accounts/{name}/limits': [
      {
        as: 'admin',
        path: async () => `/api/service-accounts/${await serviceAccountWithAGrant()}/limits`,
        body: { maxGrantDuration: '10m', connections: ['local'] },
        status: 200,
        then: (body) => {
          assert.deepEqual([body.account.maxGrantDuration, body.account.connections], ['10m', ['local']]);
          assert.equal(body.revokedGrants.length, 1, 'its 30-minute grant is beyond the new maximum');
        },
      },
      { as: 'admin', path: '/api/service-accounts/uma/limits', body: { maxGrantDuration: null }, status: 400 },
      { as: 'admin', path: '/api/service-accounts/contract-bot/limits', body: {}, status: 400 },
      {
        as: 'admin',
        path: '/api/service-accounts/contract-bot/limits',
        body: { maxGrant: '1h' },
        status: 400,
        then: (body) => assert.equal(body.code, 'invalid-body', 'a misspelt field is refused, not ignored'),
      },
      { as: 'admin', path: '/api/service-accounts/nobody/limits', body: { connections: null }, status: 404 },
    ],
    'GET /api/policies': [{ as: 'auditor', status: 200 }],
    'POST /api/policies/check': [
      { as: 'auditor', body: { files: [{ file: 'a.cedar', text: 'permit (principal, action, resource);' }] }, status: 200 },
      { as: 'approver', body: { files: [{ file: 'a.cedar', text: 'permit (principal, action, resource' }] }, status: 422 },
    ],
    'POST /api/policies/test': [
      { as: 'auditor', body: { connection: 'local', principal: 'uma', sql: 'select 1' }, status: 200 },
      { as: 'auditor', body: { connection: 'nowhere', principal: 'uma', sql: 'select 1' }, status: 404 },
    ],
    'GET /api/audit': [
      {
        as: 'auditor',
        path: '/api/audit?limit=2&since=1d',
        status: 200,
        then: (body) => {
          assert.equal(body.records.length, 2);
          firstAuditPage = body;
        },
      },
      {
        as: 'admin',
        path: async () => `/api/audit?after=${firstAuditPage!.next}&action=grant.issued`,
        status: 200,
        then: (body) => assert.ok(body.records.every((r: { seq: number }) => r.seq > firstAuditPage!.next!)),
      },
      { as: 'auditor', path: '/api/audit?after=two', status: 400 },
      { as: 'auditor', path: '/api/audit?until=banana', status: 400 },
    ],
    'GET /api/audit/export': [
      { as: 'auditor', status: 200 },
      { as: 'auditor', path: '/api/audit/export?since=banana', status: 400 },
    ],
    'GET /api/audit/verify': [{ as: 'auditor', status: 200, then: (body) => assert.equal(body.ok, true) }],
    'GET /api/sessions': [
      { as: 'admin', status: 200, then: (body) => assert.ok(body.sessions.some((s: { id: string }) => s.id === sessionId)) },
      { as: 'user', path: '/api/sessions?connection=local&since=1h&limit=10', status: 200 },
      { as: 'user', path: '/api/sessions?principal=ada', status: 403 },
      { as: 'admin', path: '/api/sessions?since=banana', status: 400 },
    ],
    'GET /api/approvals/stream': [
      {
        as: 'user',
        // Uma's stream gets the decision on her request, made once the stream is open.
        path: async () => {
          const id = await pendingApproval();
          const token = await dba();
          setTimeout(() => void callApi(api, 'POST', `/api/approvals/${id}/deny`, token, { reason: 'contract' }), 300);
          return '/api/approvals/stream';
        },
        status: 200,
      },
    ],
    'POST /api/access/requests/{id}/credential': [
      { as: 'user', path: async () => `/api/access/requests/${await umasApprovedRequest()}/credential`, status: 201 },
      { as: 'user', path: '/api/access/requests/req_nothing/credential', status: 404 },
      { as: 'user', path: async () => `/api/access/requests/${(await umasAccessRequest()).request}/credential`, status: 409 },
      {
        as: 'user',
        path: async () => {
          const request = await umasApprovedRequest();
          await callApi(api, 'POST', `/api/access/requests/${request}/credential`, tokens.user);
          return `/api/access/requests/${request}/credential`;
        },
        status: 409,
        then: (body) => assert.equal(body.code, 'already-issued'),
      },
    ],
    'GET /api/approvals': [
      { as: 'approver', path: '/api/approvals?status=pending&limit=1', status: 200 },
      { as: 'user', status: 200 },
      { as: 'user', path: '/api/approvals?status=maybe', status: 400 },
    ],
    'GET /api/approvals/{id}': [
      {
        as: 'approver',
        path: async () => `/api/approvals/${await pendingApproval()}`,
        status: 200,
        then: (body) => assert.deepEqual(body.params, ['refunded']),
      },
      { as: 'admin', path: '/api/approvals/424242', status: 404 },
      { as: 'auditor', path: '/api/approvals/not-a-number', status: 404 },
    ],
    'POST /api/approvals/{id}/approve': [
      { as: dba, path: async () => `/api/approvals/${await pendingApproval()}/approve`, body: {}, status: 200 },
      { as: 'approver', path: async () => `/api/approvals/${await pendingApproval()}/approve`, body: {}, status: 403 },
      { as: dba, path: '/api/approvals/424242/approve', body: {}, status: 404 },
      { as: dba, path: async () => `/api/approvals/${await decidedApproval()}/approve`, body: {}, status: 409 },
    ],
    'POST /api/approvals/{id}/deny': [
      { as: dba, path: async () => `/api/approvals/${await pendingApproval()}/deny`, body: { reason: 'too broad' }, status: 200 },
      { as: dba, path: async () => `/api/approvals/${await pendingApproval()}/deny`, body: {}, status: 400 },
      { as: 'approver', path: async () => `/api/approvals/${await pendingApproval()}/deny`, body: { reason: 'no' }, status: 403 },
      { as: dba, path: '/api/approvals/424242/deny', body: { reason: 'no' }, status: 404 },
      { as: dba, path: async () => `/api/approvals/${await decidedApproval()}/deny`, body: { reason: 'no' }, status: 409 },
    ],
    'GET /api/sessions/{id}': [
      { as: 'auditor', path: async () => `/api/sessions/${sessionId}`, status: 200 },
      {
        as: 'user',
        path: async () => `/api/sessions/${sessionId}`,
        status: 404,
        then: (body) => assert.equal(body.code, 'unknown-session'),
      },
    ],
    'GET /api/access/review': [
      {
        as: 'auditor',
        status: 200,
        then: (body) =>
          assert.ok(
            body.rows.some((r: { principal: string; usage: { sessions: number } }) => r.principal === 'ada' && r.usage.sessions === 1),
          ),
      },
      { as: 'admin', path: '/api/access/review?since=7d&until=2099-01-01&principal=uma&connection=local&unused=true', status: 200 },
      { as: 'auditor', path: '/api/access/review?connection=nowhere', status: 404 },
      { as: 'auditor', path: '/api/access/review?since=banana', status: 400 },
      { as: 'auditor', path: '/api/access/review?unused=maybe', status: 400 },
    ],
    'POST /api/access/review/certify': [
      { as: 'auditor', body: { principal: 'uma', connection: 'local', note: 'contract' }, status: 200 },
      { as: 'auditor', body: { principal: 'uma', connection: 'local', note: '  ' }, status: 400 },
      { as: 'auditor', body: { principal: 'audra', connection: 'local', note: 'my own' }, status: 403 },
      { as: 'auditor', body: { principal: 'nobody', connection: 'local', note: 'contract' }, status: 404 },
    ],
    'POST /api/access/review/revoke': [
      { as: 'admin', body: { principal: 'uma', connection: 'local', note: 'contract' }, status: 200 },
      { as: 'admin', body: { principal: 'uma', connection: 'local', note: '' }, status: 400 },
      { as: 'admin', body: { principal: 'uma', connection: 'nowhere', note: 'contract' }, status: 404 },
    ],
  };
}

// --- Reading the documents ----------------------------------------------------------------------

function operations(): Operation[] {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m]).map((m) => ({ method: m.toUpperCase(), path, spec: item[m]! })),
  );
}

/** `METHOD /path/{param}` of every row of docs/api.md's route table. */
export function apiTableRoutes(markdown: string): string[] {
  return [...markdown.matchAll(/^\|\s*(GET|POST|PUT|DELETE|PATCH)\s*\|\s*`([^`]+)`\s*\|/gm)].map(
    (m) => `${m[1]} ${m[2]!.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`,
  );
}

/** The codes of the table under `## API errors` in docs/errors.md. */
export function apiErrorCodes(markdown: string): string[] {
  const section = /^## API errors\s*$([\s\S]*?)(?=^## |(?![\s\S]))/m.exec(markdown)?.[1] ?? '';
  return [...section.matchAll(/^\|\s*`([a-z0-9-]+)`\s*\|/gm)].map((m) => m[1]!);
}

// --- Checking one answer --------------------------------------------------------------------------

const ajv = addFormats(new Ajv({ strict: true, allErrors: true }));
const validators = new Map<object, ValidateFunction>();

/** Every way `answer` breaks the contract of `operation`; empty when it keeps it. */
export function contractProblems(operation: Operation, answer: Answer, validatorOf: (schema: object) => ValidateFunction): string[] {
  const declared = operation.spec.responses[String(answer.status)];
  if (!declared) return [`status ${answer.status} is not declared (declared: ${Object.keys(operation.spec.responses).join(', ')})`];
  if (!declared.content) return answer.text === '' ? [] : [`status ${answer.status} declares no body, got ${answer.text.slice(0, 200)}`];
  const media = declared.content[answer.type];
  if (!media)
    return [`status ${answer.status} is answered as ${answer.type || 'no type'}, declared ${Object.keys(declared.content).join(', ')}`];
  const validate = validatorOf(media.schema);
  const items =
    answer.type === 'application/x-ndjson'
      ? answer.text.split('\n').filter((l) => l !== '')
      : answer.type === 'text/event-stream'
        ? eventData(answer.text)
        : [answer.text];
  const problems: string[] = [];
  for (const item of items) {
    let value: unknown;
    try {
      value = JSON.parse(item);
    } catch {
      problems.push(`not JSON: ${item.slice(0, 200)}`);
      continue;
    }
    if (!validate(value)) {
      problems.push(`body does not match the schema: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(value).slice(0, 300)}`);
    }
    if (answer.type === 'application/problem+json') {
      const p = value as { type?: string; code?: string };
      if (p.type !== `https://drawbridge.dev/problems/${p.code}`) problems.push(`problem type ${p.type} does not name code ${p.code}`);
    }
  }
  return problems;
}

/** The data of each event of a Server-Sent Events text (comments left out). */
export function eventData(text: string): string[] {
  return text
    .split('\n\n')
    .map((block) =>
      block
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).replace(/^ /, '')),
    )
    .filter((data) => data.length > 0)
    .map((data) => data.join('\n'));
}

function validatorOf(schema: object): ValidateFunction {
  let validate = validators.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    validators.set(schema, validate);
  }
  return validate;
}

// --- The tests ------------------------------------------------------------------------------------

describe('the API contract', () => {
  const seen = new Set<string>();
  const failures: string[] = [];

  async function check(operation: Operation, label: string, answer: Answer, expected?: number): Promise<string | undefined> {
    const key = `${operation.method} ${operation.path}`;
    seen.add(`${key} ${answer.status}`);
    const problems = contractProblems(operation, answer, validatorOf);
    if (expected !== undefined && answer.status !== expected)
      problems.unshift(`expected ${expected}, got ${answer.status}: ${answer.text.slice(0, 300)}`);
    for (const p of problems) failures.push(`${key} (${label}): ${p}`);
    return problems.length === 0 ? answer.text : undefined;
  }

  test('every operation answers only what the document declares, to every kind of caller', async () => {
    const all = cases();
    const missing = operations()
      .map((o) => `${o.method} ${o.path}`)
      .filter((key) => !all[key]);
    assert.deepEqual(missing, [], 'an operation without cases in test/api.contract.test.ts: add them');

    for (const operation of operations()) {
      const key = `${operation.method} ${operation.path}`;
      const plainPath = operation.path.includes('{') ? undefined : operation.path;
      const roles = operation.spec['x-drawbridge-roles'];
      const isPublic = Array.isArray(operation.spec.security) && operation.spec.security.length === 0;
      const allowed: Role = roles ? roles[0]! : 'user';
      for (const [i, c] of (all[key] ?? []).entries()) {
        const token = c.as === 'none' ? undefined : typeof c.as === 'function' ? await c.as() : tokens[c.as];
        const path = typeof c.path === 'function' ? await c.path() : (c.path ?? plainPath);
        assert.ok(path, `${key}: case ${i} needs a path`);
        const body = typeof c.body === 'function' ? await (c.body as () => Promise<unknown>)() : c.body;
        const answer = await send(operation.method, path, token, body === undefined ? undefined : json(body));
        const text = await check(operation, `case ${i}`, answer, c.status);
        if (text !== undefined && c.then) await c.then(text === '' ? undefined : JSON.parse(text));
      }
      // The same path as the first case, for the checks every operation gets.
      const first = all[key]![0]!;
      const path = typeof first.path === 'string' ? first.path.split('?')[0]! : (plainPath ?? operation.path.replace(/\{[^}]+\}/g, 'x'));
      const withQuery = `${path}${path.includes('?') ? '&' : '?'}no_such_parameter=1`;
      await check(operation, 'unknown query parameter', await send(operation.method, withQuery, tokens[allowed]), 400);
      if (!isPublic) {
        await check(operation, 'no token', await send(operation.method, path, undefined), 401);
        await check(operation, 'a token that does not verify', await send(operation.method, path, 'dbr_ses_forged'), 401);
      }
      const refused = roles && ROLES.find((r) => !roles.includes(r));
      if (refused) await check(operation, `as ${refused}`, await send(operation.method, path, tokens[refused]), 403);
      if (operation.spec.requestBody) {
        await check(operation, 'invalid body', await send(operation.method, path, tokens[allowed], json([1])), 400);
      }
      if (operation.method !== 'GET') {
        const token = isPublic ? undefined : tokens[allowed];
        await check(operation, 'not JSON', await send(operation.method, path, token, { type: 'application/json', text: '{"a":' }), 400);
        await check(
          operation,
          'another media type',
          await send(operation.method, path, token, { type: 'application/xml', text: '<a/>' }),
          415,
        );
        const large = json({ reason: 'x'.repeat(70 * 1024) });
        await check(operation, 'too large', await send(operation.method, path, token, large), 413);
      }
    }
    assert.deepEqual(failures, [], `\n${failures.join('\n')}`);
  });

  test('every status the document declares is seen, unless UNREACHED says why not', () => {
    const unseen = operations().flatMap((o) =>
      Object.keys(o.spec.responses)
        .map((status) => `${o.method} ${o.path} ${status}`)
        .filter((s) => !seen.has(s) && !UNREACHED[s] && !UNREACHED[`* ${s.split(' ').at(-1)}`]),
    );
    assert.deepEqual(unseen, []);
  });

  test('every route Fastify serves is in the document; HEAD only with a documented GET', () => {
    const documented = new Set(operations().map((o) => `${o.method} ${o.path}`));
    const served = registered.map((r) => `${r.method} ${r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`);
    assert.ok(served.length >= documented.size, 'the diagnostics channel saw the routes');
    const undocumented = served.filter((s) => !documented.has(s) && !(s.startsWith('HEAD ') && documented.has(`GET ${s.slice(5)}`)));
    assert.deepEqual(undocumented, []);
    assert.deepEqual(
      [...documented].filter((d) => !served.includes(d)),
      [],
      'documented but not served',
    );
  });

  test('docs/api.md lists exactly the operations of the document', () => {
    const table = apiTableRoutes(readFileSync(new URL('docs/api.md', root), 'utf8'));
    const documented = operations().map((o) => `${o.method} ${o.path}`);
    assert.deepEqual(
      documented.filter((d) => !table.includes(d)),
      [],
      'in /api/openapi.json, missing from the route table of docs/api.md',
    );
    assert.deepEqual(
      table.filter((t) => !documented.includes(t)),
      [],
      'in the route table of docs/api.md, not served',
    );
  });

  test('every error code the document declares is listed in docs/errors.md', () => {
    const listed = apiErrorCodes(readFileSync(new URL('docs/errors.md', root), 'utf8'));
    assert.ok(listed.length >= 20, `only ${listed.length} codes parsed from docs/errors.md`);
    const declared = new Set<string>();
    for (const o of operations()) {
      for (const response of Object.values(o.spec.responses)) {
        const schema = response.content?.['application/problem+json']?.schema as
          { properties?: { code?: { enum?: string[] } } } | undefined;
        for (const code of schema?.properties?.code?.enum ?? []) declared.add(code);
      }
    }
    assert.deepEqual(
      [...declared].filter((c) => !listed.includes(c)),
      [],
    );
  });
});

describe('the checks themselves', () => {
  const operation: Operation = {
    method: 'GET',
    path: '/x',
    spec: {
      responses: {
        '200': {
          content: {
            'application/json': {
              schema: {
                type: 'object',
                properties: { a: { type: 'string', nullable: true } },
                required: ['a'],
                additionalProperties: false,
              },
            },
          },
        },
        '204': {},
        '404': {
          content: {
            'application/problem+json': {
              schema: {
                type: 'object',
                properties: { type: { type: 'string' }, code: { type: 'string', enum: ['unknown-x'] } },
                required: ['type', 'code'],
              },
            },
          },
        },
      },
    },
  };
  const ok = (status: number, type: string, text: string) => contractProblems(operation, { status, type, text }, validatorOf);

  test('an answer that keeps the contract passes', () => {
    assert.deepEqual(ok(200, 'application/json', '{"a":null}'), []);
    assert.deepEqual(ok(204, '', ''), []);
    assert.deepEqual(ok(404, 'application/problem+json', '{"type":"https://drawbridge.dev/problems/unknown-x","code":"unknown-x"}'), []);
  });

  test('an undeclared status, media type, property, or code fails', () => {
    assert.match(ok(409, 'application/problem+json', '{}')[0] ?? '', /status 409 is not declared/);
    assert.match(ok(200, 'text/plain', 'a')[0] ?? '', /answered as text\/plain/);
    assert.match(ok(200, 'application/json', '{"a":"x","b":1}')[0] ?? '', /must NOT have additional properties/);
    assert.match(ok(200, 'application/json', '{"a":1}')[0] ?? '', /must be string/);
    assert.match(ok(204, '', 'x')[0] ?? '', /declares no body/);
    assert.match(
      ok(404, 'application/problem+json', '{"type":"https://drawbridge.dev/problems/other","code":"other"}')[0] ?? '',
      /must be equal to one of the allowed values/,
    );
  });

  test('the events of a Server-Sent Events answer are read, comments left out', () => {
    assert.deepEqual(eventData(': hello\n\nevent: approval\ndata: {"a":\ndata: 1}\n\n: heartbeat\n\nevent: approval\ndata: 2\n\n'), [
      '{"a":\n1}',
      '2',
    ]);
    assert.match(ok(200, 'text/event-stream', 'event: x\ndata: {"a":1}\n\n')[0] ?? '', /answered as text\/event-stream/);
  });

  test('the tables of docs/api.md and docs/errors.md are read', () => {
    assert.deepEqual(apiTableRoutes('| Method | Path |\n|---|---|\n| GET | `/api/a/:id` | any |\n| POST | `/b` | x |\n'), [
      'GET /api/a/{id}',
      'POST /b',
    ]);
    assert.deepEqual(
      apiErrorCodes('## Other\n| `x` | 1 |\n## API errors\n\n| `code` | HTTP |\n|---|---|\n| `a-b` | 400 |\n## Next\n| `c` |'),
      ['code', 'a-b'],
    );
  });
});
