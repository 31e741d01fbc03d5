/**
 * The access review on a store seeded by real sessions: a gateway in front of the machine's
 * PostgreSQL (a throwaway database), people and an agent that ask for access through the API and
 * connect with node-postgres through the gateway: alice reads (and is refused a DROP), bob writes,
 * carl is granted access and never connects, dora never asks, the agent etl-bot reads. Then the
 * report, through the API and the CLI (on the store with --config, and through the API), must say
 * what policy allows each of them, what they were granted and what they used, and flag what they
 * never used; an auditor certifies, an admin revokes (bob's live session ends), each decision is
 * on the report and in the audit log, and a grant after a revoke is flagged.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { PolicyEngine } from '../src/policy/cedar/engine.ts';
import type { ReviewReport, ReviewRow } from '../src/review/report.ts';
import { accountToken, callApi } from './support/api.ts';
import { cli, run } from './support/cli.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { asAdmin, createDatabase, eventually, type ThrowawayDatabase } from './support/pg-db.ts';

const AGENTS_READ_ONLY = `
@id("agents-read-only") @reason("agents only read")
forbid (principal is Drawbridge::Agent, action in Drawbridge::Action::"sql:write", resource);
`;

let db: ThrowawayDatabase;
let gw: TestGateway;
let api: string;
const tokens: Record<string, string> = {};
let etlKey = '';
const grants: Record<string, string> = {};
/** bob's session, still open when an admin revokes his access. */
let bob: { client: pg.Client; ended: Promise<Error & { code?: string }> };

/** Asks for access to `connection` through the API with `token`, and connects with the credential. */
async function connect(who: string, token: string, connection = 'orders'): Promise<pg.Client> {
  const granted = await callApi(api, 'POST', '/api/access/requests', token, { connection, duration: '1h', reason: 'review test' });
  assert.equal(granted.status, 201, JSON.stringify(granted.body));
  grants[who] = granted.body.grant;
  const client = new pg.Client({ host: gw.host, port: gw.pgPort, user: who, database: connection, password: granted.body.credential });
  await client.connect();
  return client;
}

before(async () => {
  db = await createDatabase('review');
  await asAdmin(async (client) => {
    await client.query('CREATE TABLE customers (id int PRIMARY KEY, name text, email text)');
    await client.query('CREATE TABLE orders (id int PRIMARY KEY, customer int, amount numeric)');
    await client.query(`INSERT INTO customers VALUES (1, 'Grace', 'grace@example.com')`);
    await client.query('INSERT INTO orders VALUES (1, 1, 10)');
  }, db.name);
  gw = await startTestGateway({
    connections: [
      { name: 'orders', database: db.name, access: { maxDurationMs: 4 * 3_600_000, approval: 'none' } },
      { name: 'payments', database: db.name, access: { maxDurationMs: 3_600_000, approval: 'required', approvers: 'dba' } },
    ],
    policies: [PolicyEngine.defaultPackText(), AGENTS_READ_ONLY],
  });
  api = `http://127.0.0.1:${gw.apiPort}`;
  tokens.ada = await accountToken(gw, 'ada', ['admin']);
  tokens.audra = await accountToken(gw, 'audra', ['auditor']);
  for (const name of ['alice', 'bob', 'carl', 'dora']) tokens[name] = await accountToken(gw, name, ['user']);
  etlKey = (await gw.gateway.accounts.createServiceAccount({ name: 'etl-bot', connections: ['orders'] }, 'test')).key;

  // alice reads, and is refused a DROP.
  const alice = await connect('alice', tokens.alice!);
  await alice.query('select * from customers where id = 1');
  await alice.query('select * from customers where id = 2');
  await alice.query('select c.name, sum(o.amount) from customers c join orders o on o.customer = c.id group by c.name');
  await assert.rejects(alice.query('drop table customers'), (error: Error & { code?: string }) => error.code === '42501');
  await alice.end();
  // bob writes, and stays connected.
  const client = await connect('bob', tokens.bob!);
  const ended = new Promise<Error & { code?: string }>((resolve) => client.on('error', resolve));
  await client.query('insert into orders values (2, 1, 25)');
  await client.query('update orders set amount = 30 where id = 2');
  await client.query('select count(*) from orders');
  bob = { client, ended };
  // carl asks and never connects; dora never asks.
  const carl = await callApi(api, 'POST', '/api/access/requests', tokens.carl, {
    connection: 'orders',
    duration: '1h',
    reason: 'just in case',
  });
  assert.equal(carl.status, 201);
  grants.carl = carl.body.grant;
  // The agent reads.
  const etl = await connect('etl-bot', etlKey);
  await etl.query('select id, amount from orders');
  await etl.end();

  // Recorded in batches: wait until every statement is in the store.
  await eventually(
    async () => (await gw.gateway.store.statementActivity({ since: 0, until: Date.now() + 60_000 }, 100)).reduce((n, s) => n + s.count, 0),
    (n) => n === 8,
    10_000,
  );
});

after(async () => {
  await bob?.client.end().catch(() => {});
  await gw?.close();
  await db?.drop();
});

const rowOf = (report: ReviewReport, principal: string, connection: string): ReviewRow => {
  const row = report.rows.find((r) => r.principal === principal && r.connection === connection);
  assert.ok(row, `a row for ${principal} on ${connection}`);
  return row;
};
const flags = (row: ReviewRow) => row.flags.map((f) => f.code);
const policyOf = (row: ReviewRow) => Object.fromEntries(row.statements.map((s) => [s.kind, s.outcome]));

async function reportAs(token: string, query = ''): Promise<ReviewReport> {
  const answer = await callApi(api, 'GET', `/api/access/review${query}`, token);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body as ReviewReport;
}

describe('the access review report', () => {
  test('every principal on every connection: what policy allows, what was granted, what was used', async () => {
    const report = await reportAs(tokens.audra!);
    const principals = [...new Set(report.rows.map((r) => r.principal))];
    assert.deepEqual(principals, ['ada', 'alice', 'audra', 'bob', 'carl', 'dora', 'etl-bot']);
    assert.equal(report.rows.length, 14, 'every principal on both connections');
    assert.equal(report.policy.enabled, true);
    assert.equal(Date.parse(report.until) - Date.parse(report.since), 30 * 86_400_000, 'the last 30 days by default');

    const alice = rowOf(report, 'alice', 'orders');
    assert.deepEqual(alice.access, { via: 'at-once', why: 'asks; granted at once by policy', maxDuration: '4h', approvers: null });
    assert.deepEqual(policyOf(alice), {
      read: 'allow',
      insert: 'allow',
      update: 'allow',
      delete: 'allow',
      ddl: 'allow',
      admin: 'allow',
      code: 'allow',
    });
    assert.deepEqual(alice.grants.issued, 1);
    assert.deepEqual(alice.grants.grantedBy, ['policy']);
    assert.equal(alice.usage.sessions, 1);
    assert.equal(alice.usage.byCategory.read, 3);
    assert.equal(alice.usage.byCategory.write, 0);
    assert.equal(alice.usage.refused, 1, 'the refused DROP is counted apart');
    assert.deepEqual(alice.usage.tablesRead, ['customers', 'orders']);
    assert.deepEqual(flags(alice), ['unused-writes', 'unused-ddl']);
    assert.match(
      alice.flags[0]!.message,
      /alice may write on orders \(insert, update, delete\) but ran no write in the last 30d, only reads/,
    );

    const bobs = rowOf(report, 'bob', 'orders');
    assert.equal(bobs.usage.byCategory.write, 2);
    assert.deepEqual(bobs.usage.byKind, { insert: 1, update: 1, select: 1 });
    assert.deepEqual(bobs.usage.tablesWritten, ['orders']);
    assert.equal(bobs.usage.liveSessions, 1);
    assert.deepEqual(bobs.grants.liveIds, [grants.bob]);
    assert.deepEqual(flags(bobs), ['unused-ddl'], 'writes were used: no write flag');

    const carl = rowOf(report, 'carl', 'orders');
    assert.deepEqual(carl.grants.liveUnused, [grants.carl]);
    assert.deepEqual(flags(carl), ['unused-live-grant']);
    assert.match(carl.flags[0]!.suggestion, /drawbridge access review revoke carl orders --note/);

    assert.deepEqual(flags(rowOf(report, 'dora', 'orders')), ['unused-access']);
    const payments = rowOf(report, 'dora', 'payments');
    assert.deepEqual([payments.access.via, payments.access.approvers], ['approval', 'dba']);
    assert.deepEqual(flags(payments), ['unused-access']);

    const etl = rowOf(report, 'etl-bot', 'orders');
    assert.equal(etl.kind, 'service-account');
    assert.deepEqual(
      etl.statements.filter((s) => s.outcome === 'deny').map((s) => [s.kind, s.policy]),
      [
        ['insert', 'agents-read-only'],
        ['update', 'agents-read-only'],
        ['delete', 'agents-read-only'],
        ['code', 'no-agent-code'],
      ],
    );
    assert.deepEqual(flags(etl), ['unused-ddl'], 'an agent that may not write has no unused writes');
    const elsewhere = rowOf(report, 'etl-bot', 'payments');
    assert.equal(elsewhere.access.via, 'none');
    assert.match(elsewhere.access.why, /payments is not among etl-bot's connections/);
  });

  test('filters: a principal, a connection, only the flagged rows; a misspelt connection is refused', async () => {
    const flagged = await reportAs(tokens.ada!, '?unused=true&connection=orders');
    assert.ok(flagged.rows.length > 0 && flagged.rows.every((r) => r.flags.length > 0 && r.connection === 'orders'));
    assert.deepEqual(
      (await reportAs(tokens.audra!, '?principal=carl')).rows.map((r) => r.connection),
      ['orders', 'payments'],
    );
    const future = await reportAs(
      tokens.audra!,
      `?since=${new Date(Date.now() + 60_000).toISOString()}&until=2099-01-01&principal=alice&connection=orders`,
    );
    assert.equal(future.rows[0]!.usage.sessions, 0, 'nothing was used in a window that starts later');
    const misspelt = await callApi(api, 'GET', '/api/access/review?connection=order', tokens.audra);
    assert.deepEqual([misspelt.status, misspelt.body.code], [404, 'unknown-connection']);
    const user = await callApi(api, 'GET', '/api/access/review', tokens.alice);
    assert.equal(user.status, 403, 'a plain user reads no review');
  });

  test('the CLI on the store (--config) reads the same report, as JSON and as a table', async () => {
    const json = await cli('access', 'review', '--config', gw.configFile, '--json');
    assert.equal(json.code, 0, json.stderr);
    const local = JSON.parse(json.stdout) as ReviewReport;
    const viaApi = await reportAs(tokens.audra!);
    const digest = (r: ReviewReport) =>
      r.rows.map((row) => [row.principal, row.connection, row.access.via, flags(row), row.usage.statements, row.usage.refused]);
    assert.deepEqual(digest(local), digest(viaApi));

    const text = await cli('access', 'review', '--config', gw.configFile, '--principal', 'alice');
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stdout,
      /^access review of .* \(30d\), policies [0-9a-f]{12}\n2 rows, 2 flagged, 0 certified, 0 revoked\n\nPRINCIPAL +CONNECTION +ACCESS +POLICY ALLOWS +GRANTS +USED +TABLES +DECISION\n/,
    );
    assert.match(
      text.stdout,
      /\nalice +orders +at once, 4h +read write ddl admin code +1, 1 live +1 session, 3 read, 1 refused +customers, orders +—\n/,
    );
    assert.match(text.stdout, /alice +payments +approval \(dba\), 1h/);
    assert.match(text.stdout, /flags \(rights never used\):\n {2}alice on orders\n {4}unused-writes: alice may write on orders/);
    assert.match(text.stdout, / {6}→ a policy that forbids sql:write to alice on orders/);

    const usage = await cli('access', 'review', '--config', gw.configFile, '--since', 'yesterday');
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--since: "yesterday" is neither a duration/);
  });
});

describe('decisions', () => {
  test('an auditor certifies; nobody certifies their own access; only an admin revokes', async () => {
    const certified = await callApi(api, 'POST', '/api/access/review/certify', tokens.audra, {
      principal: 'alice',
      connection: 'orders',
      note: 'reads orders for the refunds desk',
    });
    assert.equal(certified.status, 200, JSON.stringify(certified.body));
    assert.equal(certified.body.decision, 'certified');
    assert.equal(certified.body.by, 'audra');

    const own = await callApi(api, 'POST', '/api/access/review/certify', tokens.audra, {
      principal: 'audra',
      connection: 'orders',
      note: 'mine',
    });
    assert.deepEqual([own.status, own.body.code], [403, 'self-review']);
    const blank = await callApi(api, 'POST', '/api/access/review/certify', tokens.audra, {
      principal: 'alice',
      connection: 'orders',
      note: ' ',
    });
    assert.deepEqual([blank.status, blank.body.code], [400, 'note-required']);
    const auditorRevokes = await callApi(api, 'POST', '/api/access/review/revoke', tokens.audra, {
      principal: 'bob',
      connection: 'orders',
      note: 'x',
    });
    assert.deepEqual([auditorRevokes.status, auditorRevokes.body.code], [403, 'forbidden']);

    const row = rowOf(await reportAs(tokens.ada!, '?principal=alice'), 'alice', 'orders');
    assert.deepEqual(row.decision && [row.decision.decision, row.decision.by, row.decision.note], [
      'certified',
      'audra',
      'reads orders for the refunds desk',
    ]);
    const [event] = await gw.gateway.store.listAudit({ action: 'review.certified' });
    assert.deepEqual(
      [event?.actor, event?.subject, event?.details.connection, event?.details.note],
      ['audra', 'alice', 'orders', 'reads orders for the refunds desk'],
    );
  });

  test("an admin revokes bob's access: his live session ends with a FATAL that says why, and it is on record", async () => {
    const revokedAt = Date.now();
    const revoked = await callApi(api, 'POST', '/api/access/review/revoke', tokens.ada, {
      principal: 'bob',
      connection: 'orders',
      note: 'moved to another team',
    });
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.deepEqual(revoked.body.grantsRevoked, [grants.bob]);
    const error = await bob.ended;
    assert.ok(Date.now() - revokedAt < 5000, `ended after ${Date.now() - revokedAt} ms`);
    assert.equal(error.code, '57P01');
    assert.equal(
      error.message,
      `terminating connection: access grant ${grants.bob} was revoked by ada: access review: moved to another team`,
    );

    const [event] = await gw.gateway.store.listAudit({ action: 'review.revoked' });
    assert.deepEqual([event?.actor, event?.subject, event?.details.grantsRevoked], ['ada', 'bob', [grants.bob]]);
    const [grantEvent] = await gw.gateway.store.listAudit({ action: 'grant.revoked', subject: grants.bob });
    assert.equal(grantEvent?.details.reason, 'access review: moved to another team');

    const row = rowOf(await reportAs(tokens.audra!, '?principal=bob'), 'bob', 'orders');
    assert.equal(row.decision?.decision, 'revoked');
    assert.deepEqual(row.grants.liveIds, []);
  });

  test('the CLI decides on the store as local-admin, and through the API as the logged-in reviewer', async () => {
    const local = await cli('access', 'review', 'certify', 'dora', 'payments', '--note', 'on call next quarter', '--config', gw.configFile);
    assert.equal(local.code, 0, local.stderr);
    assert.match(local.stdout, /^certified dora's access to payments \(rvd_[0-9a-f]{32}\): on call next quarter\n$/);

    const env = { DRAWBRIDGE_TOKEN: tokens.ada!, DRAWBRIDGE_GATEWAY: api };
    const anonymous = await runWith(
      { DRAWBRIDGE_GATEWAY: api, XDG_CONFIG_HOME: gw.dir },
      'access',
      'review',
      'revoke',
      'carl',
      'orders',
      '--note',
      'x',
    );
    assert.equal(anonymous.code, 1, 'no token, no decision');
    assert.match(anonymous.stderr, /a valid bearer token is required/);
    const withToken = await runWith(env, 'access', 'review', 'revoke', 'carl', 'orders', '--note', 'never used it');
    assert.equal(withToken.code, 0, withToken.stderr);
    assert.match(
      withToken.stdout,
      new RegExp(
        `^revoked carl's access to orders \\(rvd_[0-9a-f]+\\): never used it\\nended ${grants.carl}; their live sessions end within seconds\\n$`,
      ),
    );
    const json = await runWith(env, 'access', 'review', '--principal', 'carl', '--connection', 'orders', '--json');
    const carl = (JSON.parse(json.stdout) as ReviewReport).rows[0]!;
    assert.deepEqual([carl.decision?.decision, carl.decision?.by, carl.grants.live], ['revoked', 'ada', 0]);

    const refused = await runWith(env, 'access', 'review', 'certify', 'ada', 'orders', '--note', 'mine');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /ada cannot certify their own access/);
    const unknown = await cli('access', 'review', 'certify', 'nobody', 'orders', '--note', 'x', '--config', gw.configFile);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no account and no grant named "nobody"/);
    const noNote = await cli('access', 'review', 'revoke', 'carl', 'orders', '--config', gw.configFile);
    assert.equal(noNote.code, 2);

    const events = await gw.gateway.store.listAudit({ action: 'review.certified', subject: 'dora' });
    assert.equal(events[0]?.actor, 'local-admin');
  });

  test('access granted again after a revoke is flagged', async () => {
    const again = await callApi(api, 'POST', '/api/access/requests', tokens.bob, {
      connection: 'orders',
      duration: '1h',
      reason: 'back again',
    });
    assert.equal(again.status, 201);
    const row = rowOf(await reportAs(tokens.audra!, '?principal=bob&connection=orders'), 'bob', 'orders');
    assert.ok(flags(row).includes('regranted-after-revoke'), JSON.stringify(row.flags));
    assert.match(
      row.flags.find((f) => f.code === 'regranted-after-revoke')!.message,
      /ada revoked bob's access to orders on .* \(moved to another team\)/,
    );
  });
});

/** The CLI with environment variables (a token and the gateway), as an agent or a logged-in reviewer runs it. */
const runWith = (env: Record<string, string>, ...args: string[]) => run(process.execPath, ['bin/drawbridge.js', ...args], env);
