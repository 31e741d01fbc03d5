/**
 * Service-account workflows end to end, on a running gateway in front of the machine's
 * PostgreSQL: an admin creates an agent's account with limits (`drawbridge service-accounts
 * create`, on the host); the agent's key asks for a grant and connects with node-postgres; what
 * it ran shows in `service-accounts show` (on the store and through the API, the same JSON);
 * its limits refuse a grant too long and a connection not allowed, with the gateway's words;
 * lowering them revokes the live grants beyond them and ends their sessions; rotating ends the
 * old key; disabling stops everything.
 */

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { accountToken, callApi } from './support/api.ts';
import { run, type Ran } from './support/cli.ts';
import { PERMIT_ALL, startTestGateway, type TestGateway } from './support/gateway.ts';
import { eventually } from './support/pg-db.ts';

const NO_DDL = `
@id("no-ddl")
@reason("no schema changes")
forbid (principal, action == Drawbridge::Action::"sql:ddl", resource);
`;

let gw: TestGateway;
let api: string;
let home: string;
/** A logged-in admin's session token: the CLI without --config uses it through the API. */
let admin: string;
let key: string;

/** `drawbridge …` as an admin at a terminal: on the store with `--config`, else through the API. */
function drawbridge(args: readonly string[], env: Record<string, string> = {}): Promise<Ran> {
  return run(process.execPath, ['bin/drawbridge.js', ...args], {
    XDG_CONFIG_HOME: home,
    DRAWBRIDGE_GATEWAY: api,
    DRAWBRIDGE_TOKEN: admin,
    ...env,
  });
}

const onHost = (...args: string[]) => drawbridge([...args, '--config', gw.configFile]);

async function jsonOf(ran: Ran): Promise<any> {
  assert.equal(ran.code, 0, ran.stderr);
  return JSON.parse(ran.stdout);
}

/** The agent asks for access with its key. */
const request = (connection: string, duration: string, token = key) =>
  callApi(api, 'POST', '/api/access/requests', token, { connection, duration, reason: 'nightly load' });

/** A node-postgres client connected through the gateway with a credential the agent got, and its end. */
async function connect(psql: string) {
  const client = new pg.Client({ connectionString: psql });
  const ended = new Promise<Error & { code?: string }>((resolve) => client.on('error', resolve));
  await client.connect();
  return { client, ended };
}

/** `show` without the window's edges, which move with the clock between two calls. */
const steady = (report: { usage: { since: string; until: string } }) => ({ ...report, usage: { ...report.usage, since: 0, until: 0 } });

before(async () => {
  home = await mkdtemp(join(tmpdir(), 'drawbridge-home-'));
  gw = await startTestGateway({
    connections: [
      { name: 'local', access: { maxDurationMs: 3_600_000, approval: 'none' } },
      { name: 'reporting', access: { maxDurationMs: 3_600_000, approval: 'none' } },
    ],
    policies: [PERMIT_ALL, NO_DDL],
  });
  api = `http://127.0.0.1:${gw.apiPort}`;
  admin = await accountToken(gw, 'ada', ['admin']);
});

after(async () => {
  await gw?.close();
  await rm(home, { recursive: true, force: true });
});

describe('a service account for an agent', () => {
  test('is created on the host with its limits; the key is printed once, alone on the first line', async () => {
    const created = await onHost('service-accounts', 'create', 'etl-bot', '--max-grant', '10m', '--connections', 'local');
    assert.equal(created.code, 0, created.stderr);
    const [first, note] = created.stdout.split('\n');
    key = first ?? '';
    assert.match(key, /^dbr_sak_[A-Za-z0-9_-]{43}$/);
    assert.equal(note, 'service account etl-bot: keep this key secret; it is shown once');
    const [listed] = await jsonOf(await onHost('service-accounts', 'list', '--json'));
    assert.deepEqual(
      { ...listed, createdAt: 0, key: { ...listed.key, id: 0, createdAt: 0 } },
      {
        name: 'etl-bot',
        createdAt: 0,
        disabledAt: null,
        lastUsedAt: null,
        maxGrantDuration: '10m',
        connections: ['local'],
        key: { id: 0, createdAt: 0, works: true },
        retiredKeys: 0,
      },
    );
    const table = await drawbridge(['service-accounts', 'list']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^etl-bot +enabled +10m +local +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +never$/m);
  });

  test('its key gets a grant, node-postgres runs statements through the gateway, and show reports them', async () => {
    const granted = await request('local', '5m');
    assert.equal(granted.status, 201, JSON.stringify(granted.body));
    const { client } = await connect(granted.body.connect.psql);
    assert.deepEqual((await client.query('select 1 as one')).rows, [{ one: 1 }]);
    assert.deepEqual((await client.query('select 2 as two')).rows, [{ two: 2 }]);
    await assert.rejects(client.query('create table etl_scratch (id int)'), (e: Error & { code?: string }) => {
      assert.equal(e.code, '42501');
      assert.match(e.message, /blocked by policy "no-ddl"/);
      return true;
    });
    await assert.rejects(client.query('select * from no_such_table_here'), { code: '42P01' });
    await client.end();
    await eventually(
      () => gw.gateway.store.listSessions({ principal: 'etl-bot' }),
      (s) => s.length === 1 && s[0]!.endedAt !== undefined,
      10_000,
    );

    const local = await jsonOf(await onHost('service-accounts', 'show', 'etl-bot', '--json'));
    assert.equal(Date.parse(local.usage.until) - Date.parse(local.usage.since), 30 * 86_400_000, 'the default window is 30 days');
    assert.ok(local.lastUsedAt !== null, 'its key was accepted');
    assert.deepEqual(local.usage.grants.issued, 1);
    assert.deepEqual(local.usage.grants.live, 1);
    assert.deepEqual([local.usage.grants.last.grant, local.usage.grants.last.state], [granted.body.grant, 'live']);
    assert.deepEqual([local.usage.sessions.started, local.usage.sessions.live], [1, 0]);
    assert.deepEqual(local.usage.statements, { count: 4, refused: 1, failed: 1 });
    assert.deepEqual(
      local.usage.connections.map((c: Record<string, unknown>) => ({ ...c, lastUsedAt: typeof c.lastUsedAt })),
      [{ connection: 'local', allowed: true, grants: 1, sessions: 1, statements: 4, refused: 1, failed: 1, lastUsedAt: 'string' }],
    );
    // Through the API, as a logged-in admin: the same report.
    const remote = await jsonOf(await drawbridge(['service-accounts', 'show', 'etl-bot', '--since', '7d', '--json']));
    assert.equal(Date.parse(remote.usage.until) - Date.parse(remote.usage.since), 7 * 86_400_000);
    assert.deepEqual(steady(remote), steady(local));

    const text = await drawbridge(['service-accounts', 'show', 'etl-bot']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^etl-bot: service account, enabled, created /);
    assert.match(text.stdout, /^ {2}limits {6}grants of at most 10m, on local only$/m);
    assert.match(text.stdout, /^ {2}grants {6}1 issued, 1 live now; last grt_\w+ on local, .*, live \(expires .*\)$/m);
    assert.match(text.stdout, /^ {2}statements {2}4, of which 1 refused by the gateway and 1 failed on the target$/m);
    assert.match(text.stdout, /^local +yes +1 +1 +4 +1 +1 +\d{4}-/m);

    const nobody = await onHost('service-accounts', 'show', 'nobody');
    assert.deepEqual([nobody.code, nobody.stderr], [1, 'drawbridge: no service account named nobody\n']);
    const remoteNobody = await drawbridge(['service-accounts', 'show', 'nobody']);
    assert.deepEqual([remoteNobody.code, remoteNobody.stderr], [1, 'drawbridge: no service account named nobody\n']);
  });

  test('its limits refuse a grant too long and a connection it may not use, saying which limit', async () => {
    const tooLong = await request('local', '30m');
    assert.deepEqual([tooLong.status, tooLong.body.code, tooLong.body.detail], [400, 'too-long', 'local grants at most 10m to etl-bot']);
    const elsewhere = await request('reporting', '5m');
    assert.deepEqual(
      [elsewhere.status, elsewhere.body.code, elsewhere.body.detail],
      [404, 'not-allowed', 'no connection "reporting" that etl-bot may ask for'],
    );
    const asAgent = await drawbridge(['access', 'request', 'local', '--duration', '30m', '--reason', 'x'], { DRAWBRIDGE_TOKEN: key });
    assert.deepEqual([asAgent.code, asAgent.stderr], [1, 'drawbridge: local grants at most 10m to etl-bot\n']);
    // The key does nothing but ask for grants: not even read its own usage.
    assert.equal((await callApi(api, 'GET', '/api/service-accounts/etl-bot', key)).status, 403);
  });

  test('lowering a limit revokes the live grants beyond it, and their sessions end', async () => {
    const raised = await drawbridge(['service-accounts', 'limits', 'etl-bot', '--max-grant', '1h', '--connections', 'local,reporting']);
    assert.equal(raised.code, 0, raised.stderr);
    assert.equal(raised.stdout, 'etl-bot: grants of at most 1h, on local, reporting only\nno live grant was beyond the new limits\n');
    const onReporting = await request('reporting', '10m');
    const long = await request('local', '30m');
    const short = await request('local', '5m');
    assert.deepEqual([onReporting.status, long.status, short.status], [201, 201, 201]);
    const reporting = await connect(onReporting.body.connect.psql);
    const kept = await connect(short.body.connect.psql);

    const lowered = await onHost('service-accounts', 'limits', 'etl-bot', '--max-grant', '15m', '--connections', 'local', '--json');
    const body = await jsonOf(lowered);
    assert.deepEqual([body.account.maxGrantDuration, body.account.connections], ['15m', ['local']]);
    assert.deepEqual([...body.revokedGrants].sort(), [onReporting.body.grant, long.body.grant].sort());
    const ended = await reporting.ended;
    assert.equal(ended.code, '57P01');
    assert.match(ended.message, /was revoked by local-admin: limits changed: etl-bot may no longer use reporting/);
    assert.deepEqual((await kept.client.query('select 3 as three')).rows, [{ three: 3 }], 'a grant within the new limits is kept');
    await kept.client.end();

    const [event] = await gw.gateway.store.listAudit({ action: 'service-account.limits', limit: 10, afterSeq: 0 }).then((all) => all.slice(-1));
    assert.deepEqual([event?.actor, event?.subject], ['local-admin', 'etl-bot']);
    assert.deepEqual(event?.details, {
      from: { maxGrantMs: 3_600_000, connections: ['local', 'reporting'] },
      to: { maxGrantMs: 900_000, connections: ['local'] },
      grantsRevoked: body.revokedGrants,
    });
    assert.ok(!JSON.stringify(event).includes(key), 'no secret on record');
    const refused = await request('local', '20m');
    assert.deepEqual([refused.status, refused.body.detail], [400, 'local grants at most 15m to etl-bot']);

    const bad = await onHost('service-accounts', 'limits', 'etl-bot', '--max-grant', 'soon');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /"soon" is not a duration/);
    const user = await drawbridge(['service-accounts', 'limits', 'ada', '--max-grant', '1h']);
    assert.deepEqual([user.code, user.stderr], [1, 'drawbridge: ada is a user: limits are for service accounts\n']);
  });

  test('rotating ends the old key at once', async () => {
    const rotated = await onHost('service-accounts', 'rotate', 'etl-bot');
    assert.equal(rotated.code, 0, rotated.stderr);
    const fresh = rotated.stdout.split('\n')[0]!;
    assert.match(fresh, /^dbr_sak_/);
    assert.equal((await callApi(api, 'GET', '/api/whoami', key)).status, 401);
    assert.equal((await request('local', '5m', key)).status, 401);
    assert.equal((await callApi(api, 'GET', '/api/whoami', fresh)).status, 200);
    const shown = await jsonOf(await onHost('service-accounts', 'show', 'etl-bot', '--json'));
    assert.equal(shown.retiredKeys, 1);
    key = fresh;
  });

  test('disabling stops everything: its sessions end, its key and its credentials stop working', async () => {
    const granted = await request('local', '5m');
    assert.equal(granted.status, 201);
    const live = await connect(granted.body.connect.psql);
    const disabled = await drawbridge(['service-accounts', 'disable', 'etl-bot', '--reason', 'key leaked in a CI log']);
    assert.equal(disabled.code, 0, disabled.stderr);
    const ended = await live.ended;
    assert.equal(ended.code, '57P01');
    assert.match(ended.message, /was revoked by ada: key leaked in a CI log/);
    assert.equal((await request('local', '5m')).status, 401);
    const again = new pg.Client({ connectionString: granted.body.connect.psql });
    await assert.rejects(again.connect(), { code: '28P01' });
    const shown = await jsonOf(await onHost('service-accounts', 'show', 'etl-bot', '--json'));
    assert.notEqual(shown.disabledAt, null);
    assert.equal(shown.key.works, false);
    assert.equal(shown.usage.grants.live, 0);

    const enabled = await onHost('service-accounts', 'enable', 'etl-bot');
    assert.equal(enabled.code, 0, enabled.stderr);
    assert.equal((await request('local', '5m')).status, 201, 'enabled again, the same key works');
  });
});
