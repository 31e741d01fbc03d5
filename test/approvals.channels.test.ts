/**
 * The channels and rules of approvals beyond the API's decisions, through a real gateway in front
 * of PostgreSQL with node-postgres as the client: the blast-radius preview (EXPLAIN on the
 * target, never the statement), the live stream (Server-Sent Events) and its visibility, the
 * outgoing webhooks received by a local HTTP server that checks their signatures, and access
 * requests decided as approvals, across a gateway restart, whose credential then logs in.
 */

import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { createServer, get, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { callApi } from './support/api.ts';
import { PERMIT_ALL, startTestGateway, type TestGateway } from './support/gateway.ts';
import { asAdmin, createDatabase, eventually, gatewayClient, type ThrowawayDatabase } from './support/pg-db.ts';

const HOLD_WRITES = `
@id("writes-need-a-dba")
@reason("a write")
@approval("dba")
forbid (principal, action in [Drawbridge::Action::"sql:update", Drawbridge::Action::"sql:delete"], resource);
`;

const PASSWORD = 'a long enough password';
const SECRET = 'whsec-a-shared-secret';

interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** A webhook receiver: records every POST; `/flaky` answers 503 to the first attempt of each delivery. */
async function startReceiver(): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const refused = new Set<string>();
  const server: Server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      received.push({ path: request.url ?? '', headers: request.headers, body });
      const delivery = String(request.headers['x-drawbridge-delivery']);
      if (request.url === '/flaky' && !refused.has(delivery)) {
        refused.add(delivery);
        response.writeHead(503).end('try later');
        return;
      }
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** What a receiver does with the signature (docs/approvals.md): recompute it, compare in constant time. */
function verifies(headers: IncomingHttpHeaders, body: string, secret: string): boolean {
  const timestamp = String(headers['x-drawbridge-timestamp']);
  const given = Buffer.from(String(headers['x-drawbridge-signature']));
  const expected = Buffer.from(`v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`);
  const fresh = Math.abs(Date.now() / 1000 - Number(timestamp)) < 300;
  return fresh && given.length === expected.length && timingSafeEqual(given, expected);
}

interface Stream {
  /** The `approval` events received so far, parsed. */
  readonly events: { id: number; status: string; [key: string]: unknown }[];
  /** Waits for an event that `match` accepts. */
  next(match: (e: Stream['events'][number]) => boolean, timeoutMs?: number): Promise<Stream['events'][number]>;
  close(): void;
}

/**
 * Follows GET /api/approvals/stream as `token` would, in the background, on a connection of its
 * own (no keep-alive socket of a pool outlives the gateway).
 */
async function openStream(api: string, token: string): Promise<Stream & { ended: Promise<unknown> }> {
  const request = get(`${api}/api/approvals/stream`, { headers: { authorization: `Bearer ${token}` }, agent: false });
  request.on('error', () => {});
  const [response] = (await once(request, 'response')) as [IncomingMessage];
  assert.equal(response.statusCode, 200);
  assert.equal(response.headers['content-type']?.split(';')[0], 'text/event-stream');
  assert.equal(response.headers['cache-control'], 'no-cache');
  const events: Stream['events'] = [];
  response.on('error', () => {}); // aborted by close()
  const ended = new Promise((resolve) => response.once('close', resolve));
  void (async () => {
    let buffered = '';
    try {
      for await (const chunk of response.setEncoding('utf8')) {
        buffered += chunk as string;
        for (let end = buffered.indexOf('\n\n'); end >= 0; end = buffered.indexOf('\n\n')) {
          const block = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (/^event: approval$/m.test(block) && data) events.push(JSON.parse(data));
        }
      }
    } catch {
      // aborted
    }
  })();
  return {
    events,
    async next(match, timeoutMs = 5000) {
      const found = await eventually(
        async () => events.find(match),
        (e) => e !== undefined,
        timeoutMs,
      );
      assert.ok(found, `no such event within ${timeoutMs} ms; got ${JSON.stringify(events)}`);
      return found;
    },
    close: () => request.destroy(),
    ended,
  };
}

/** The NOTICE that names the approval a client waits for. */
const waitingFor = (client: pg.Client) =>
  new Promise<{ id: number; message: string }>((resolve) =>
    client.on('notice', (notice) => {
      const m = /^waiting for approval #(\d+) /.exec(notice.message ?? '');
      if (m) resolve({ id: Number(m[1]), message: notice.message! });
    }),
  );

describe('approvals: preview, live stream and webhooks', () => {
  let db: ThrowawayDatabase;
  let gw: TestGateway;
  let api: string;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const tokens: Record<string, string> = {};

  const login = async (name: string, roles: ('approver' | 'admin' | 'user')[], groups: string[]) => {
    await gw.gateway.accounts.createUser({ name, password: PASSWORD, roles, groups }, 'test');
    const { body } = await callApi(api, 'POST', '/api/auth/login', undefined, { username: name, password: PASSWORD });
    tokens[name] = body.token as string;
  };
  const refunded = async () =>
    (await asAdmin((c) => c.query<{ n: number }>("select count(*)::int as n from orders where status = 'refunded'"), db.name)).rows[0]!.n;
  const hooks = (path: string, approval: number) =>
    receiver.received.filter((r) => r.path === path && (JSON.parse(r.body) as { approval?: { id: number } }).approval?.id === approval);

  before(async () => {
    db = await createDatabase('approval_channels');
    await asAdmin(async (c) => {
      await c.query('create table orders (id int primary key, status text not null)');
      await c.query("insert into orders select g, 'paid' from generate_series(1, 1204) g");
      await c.query('analyze orders');
    }, db.name);
    receiver = await startReceiver();
    gw = await startTestGateway({
      connections: [
        { name: 'app', database: db.name },
        { name: 'guarded', database: db.name, access: { maxDurationMs: 3_600_000, approval: 'required', approvers: 'dba' } },
      ],
      policies: [PERMIT_ALL, HOLD_WRITES],
      extraYaml: [
        'approvals:',
        '  timeout: 20s',
        '  access_timeout: 1s',
        '  webhooks:',
        `    - url: ${receiver.url}/json`,
        `      secret: ${SECRET}`,
        `    - url: ${receiver.url}/slack`,
        '      format: slack',
        `    - url: ${receiver.url}/flaky`,
        `      secret: ${SECRET}`,
      ],
    });
    api = `http://127.0.0.1:${gw.apiPort}`;
    await login('dana', ['approver'], ['dba']);
    await login('etl-bot', ['user'], []);
    await login('uma', ['user'], []);
  });

  after(async () => {
    await gw?.close();
    await receiver?.close();
    await db?.drop();
  });

  it('a held UPDATE: the preview from EXPLAIN in the NOTICE, the API, the stream and both webhook formats; the statement never ran', async () => {
    const danas = await openStream(api, tokens['dana']!);
    const own = await openStream(api, tokens['etl-bot']!);
    const other = await openStream(api, tokens['uma']!);
    const client = await gatewayClient(gw, 'app', 'etl-bot');
    try {
      const notice = waitingFor(client);
      const update = client.query("update orders set status = 'refunded'");
      update.catch(() => {});
      const { id, message } = await notice;
      assert.match(message, /needs the approval of dba — about 1,204 rows would change$/);
      const held = await callApi(api, 'GET', `/api/approvals/${id}`, tokens['dana']);
      assert.deepEqual(held.body.preview, { rows: 1204, text: 'about 1,204 rows would change' });
      assert.equal(await refunded(), 0, 'EXPLAIN ran, the statement did not');

      const requested = await danas.next((e) => e.id === id && e.status === 'pending');
      assert.deepEqual(requested, held.body, 'the stream sends the view of GET /api/approvals/:id');
      await own.next((e) => e.id === id && e.status === 'pending');

      // The generic payload, signed; the Slack message; the flaky endpoint gets it on the second try.
      const [json] = await eventually(
        async () => hooks('/json', id),
        (r) => r.length === 1,
      );
      assert.ok(json, 'the JSON webhook was called');
      assert.ok(verifies(json.headers, json.body, SECRET), 'the signature verifies');
      assert.ok(!verifies(json.headers, json.body.replace('1204', '1205'), SECRET), 'a changed body does not');
      assert.deepEqual(JSON.parse(json.body), { event: 'approval.requested', approval: held.body });
      const slack = await eventually(
        async () => receiver.received.filter((r) => r.path === '/slack'),
        (r) => r.length >= 1,
      );
      const message1 = JSON.parse(slack.at(-1)!.body) as { text: string; blocks: unknown[] };
      assert.equal(message1.text, `Approval #${id}: etl-bot asks for a statement on app`);
      const blocks = JSON.stringify(message1.blocks);
      assert.ok(blocks.includes("```update orders set status = 'refunded'```"), blocks);
      assert.ok(blocks.includes('about 1,204 rows would change'), blocks);
      assert.ok(blocks.includes('held by policy \\"writes-need-a-dba\\"'), blocks);
      assert.ok(blocks.includes(held.body.url), blocks);
      assert.equal(slack.at(-1)!.headers['x-drawbridge-signature'], undefined, 'no secret, no signature');
      const flaky = await eventually(
        async () => hooks('/flaky', id),
        (r) => r.length === 2,
        5000,
      );
      assert.equal(flaky.length, 2, 'retried after a 503');
      assert.equal(flaky[0]!.headers['x-drawbridge-delivery'], flaky[1]!.headers['x-drawbridge-delivery']);
      assert.ok(verifies(flaky[1]!.headers, flaky[1]!.body, SECRET));

      await callApi(api, 'POST', `/api/approvals/${id}/deny`, tokens['dana'], { reason: 'too many rows' });
      await assert.rejects(update, /was denied by dana: too many rows/);
      const denied = await danas.next((e) => e.id === id && e.status === 'denied');
      assert.equal(denied.decisionReason, 'too many rows');
      await own.next((e) => e.id === id && e.status === 'denied');
      const decided = await eventually(
        async () => hooks('/json', id),
        (r) => r.length === 2,
      );
      assert.equal(JSON.parse(decided[1]!.body).event, 'approval.denied');
      assert.ok(verifies(decided[1]!.headers, decided[1]!.body, SECRET));
      assert.deepEqual(other.events, [], "another requester's stream shows none of it");
      assert.equal(await refunded(), 0);
    } finally {
      danas.close();
      own.close();
      other.close();
      await client.end();
    }
  });

  it('a prepared DELETE is previewed with its parameters, and runs once approved', async () => {
    const client = await gatewayClient(gw, 'app', 'etl-bot');
    try {
      const notice = waitingFor(client);
      const remove = client.query({ name: 'drop-one', text: 'delete from orders where id = $1', values: [1204] });
      const { id, message } = await notice;
      assert.match(message, /— about 1 row would change$/);
      const held = await callApi(api, 'GET', `/api/approvals/${id}`, tokens['dana']);
      assert.deepEqual(held.body.params, ['1204']);
      assert.deepEqual(held.body.preview, { rows: 1, text: 'about 1 row would change' });
      await callApi(api, 'POST', `/api/approvals/${id}/approve`, tokens['dana'], {});
      assert.equal((await remove).rowCount, 1);
    } finally {
      await client.end();
    }
  });

  it('a preview the target cannot give in time (a lock) is an error on the request, which goes on', async () => {
    const locker = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: db.name });
    await locker.connect();
    const client = await gatewayClient(gw, 'app', 'etl-bot');
    try {
      await locker.query('begin');
      await locker.query('lock table orders in access exclusive mode');
      const started = Date.now();
      const notice = waitingFor(client);
      const update = client.query("update orders set status = 'refunded' where id = 1");
      update.catch(() => {});
      const { id, message } = await notice;
      assert.ok(Date.now() - started < 4000, `the request was made within the preview's bound (${Date.now() - started} ms)`);
      assert.doesNotMatch(message, /would change/);
      const held = await callApi(api, 'GET', `/api/approvals/${id}`, tokens['dana']);
      assert.match(held.body.preview.error, /statement timeout|lock timeout|did not answer/);
      await locker.query('rollback');
      await callApi(api, 'POST', `/api/approvals/${id}/approve`, tokens['dana'], {});
      assert.equal((await update).rowCount, 1);
    } finally {
      await client.end();
      await locker.end();
    }
  });

  it('a stream whose client goes away is unsubscribed; one without a valid token is refused', async () => {
    const before = gw.gateway.approvals.listeners;
    const stream = await openStream(api, tokens['uma']!);
    assert.equal(gw.gateway.approvals.listeners, before + 1);
    stream.close();
    assert.equal(
      await eventually(
        async () => gw.gateway.approvals.listeners,
        (n) => n === before,
      ),
      before,
    );
    const refused = await fetch(`${api}/api/approvals/stream`, { headers: { authorization: 'Bearer dbr_ses_forged' } });
    assert.equal(refused.status, 401);
    assert.equal(gw.gateway.approvals.listeners, before);
  });

  it('an access request nobody decides expires with its approval, and the stream says so', async () => {
    const stream = await openStream(api, tokens['uma']!);
    try {
      const asked = await callApi(api, 'POST', '/api/access/requests', tokens['uma'], {
        connection: 'guarded',
        duration: '5m',
        reason: 'INC-7',
      });
      assert.equal(asked.status, 202);
      await stream.next((e) => e.id === asked.body.approval && e.status === 'pending' && e.kind === 'access' && e.duration === '5m');
      await new Promise((resolve) => setTimeout(resolve, 1100));
      assert.equal(await gw.gateway.approvals.expireOverdue(), 1);
      await stream.next((e) => e.id === asked.body.approval && e.status === 'expired');
      const listed = await callApi(api, 'GET', '/api/access/requests', tokens['uma']);
      assert.equal(listed.body.requests[0].status, 'expired');
      const late = await callApi(api, 'POST', `/api/approvals/${asked.body.approval}/approve`, tokens['dana'], {});
      assert.equal(late.status, 409);
      const pickup = await callApi(api, 'POST', `/api/access/requests/${asked.body.request}/credential`, tokens['uma']);
      assert.equal(pickup.status, 409);
      assert.equal(pickup.body.code, 'not-approved');
    } finally {
      stream.close();
    }
  });
});

describe('access requests decided as approvals, across a gateway restart', () => {
  let db: ThrowawayDatabase;
  let dir: string;
  let gw: TestGateway | undefined;

  const start = () =>
    startTestGateway({
      store: `sqlite:${join(dir, 'state.db')}`,
      connections: [{ name: 'guarded', database: db.name, access: { maxDurationMs: 3_600_000, approval: 'required', approvers: 'dba' } }],
      extraYaml: ['approvals:', '  access_timeout: 10m'],
    });
  const token = async (gateway: TestGateway, name: string) =>
    (await callApi(`http://127.0.0.1:${gateway.apiPort}`, 'POST', '/api/auth/login', undefined, { username: name, password: PASSWORD }))
      .body.token as string;

  before(async () => {
    db = await createDatabase('access_approvals');
    dir = await mkdtemp(join(tmpdir(), 'drawbridge-access-approvals-'));
  });

  after(async () => {
    await gw?.close();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('asked before the restart, approved after it by a member of the connection’s approvers; the credential logs in once picked up', async () => {
    const first = await start();
    let api = `http://127.0.0.1:${first.apiPort}`;
    await first.gateway.accounts.createUser({ name: 'uma', password: PASSWORD, roles: ['user'] }, 'test');
    await first.gateway.accounts.createUser({ name: 'dina', password: PASSWORD, roles: ['approver'], groups: ['dba'] }, 'test');
    await first.gateway.accounts.createUser({ name: 'olga', password: PASSWORD, roles: ['approver'], groups: ['ops'] }, 'test');
    const asked = await callApi(api, 'POST', '/api/access/requests', await token(first, 'uma'), {
      connection: 'guarded',
      duration: '30m',
      reason: 'INC-42',
    });
    assert.equal(asked.status, 202, JSON.stringify(asked.body));
    assert.equal(typeof asked.body.approval, 'number');
    assert.equal(asked.body.url, `${api}/approvals/${asked.body.approval}`);
    const denyMe = await callApi(api, 'POST', '/api/access/requests', await token(first, 'uma'), {
      connection: 'guarded',
      reason: 'INC-43',
    });
    // A live stream does not keep the gateway from stopping: it ends with it.
    const watching = await openStream(api, await token(first, 'dina'));
    const stopping = Date.now();
    await first.close();
    await watching.ended;
    assert.ok(Date.now() - stopping < 5000, `the gateway stopped in ${Date.now() - stopping} ms with a stream open`);

    gw = await start();
    api = `http://127.0.0.1:${gw.apiPort}`;
    const uma = await token(gw, 'uma');
    const dina = await token(gw, 'dina');
    const pending = await callApi(api, 'GET', `/api/approvals/${asked.body.approval}`, dina);
    assert.equal(pending.status, 200);
    assert.equal(pending.body.kind, 'access');
    assert.equal(pending.body.status, 'pending');
    assert.equal(pending.body.request, asked.body.request);
    assert.equal(pending.body.duration, '30m');
    assert.equal(pending.body.reason, 'INC-42');
    assert.equal(pending.body.approvers, 'dba');
    const early = await callApi(api, 'POST', `/api/access/requests/${asked.body.request}/credential`, uma);
    assert.equal(early.status, 409);
    assert.match(early.body.detail, /is pending: it waits for an approver/);
    const wrongGroup = await callApi(api, 'POST', `/api/approvals/${asked.body.approval}/approve`, await token(gw, 'olga'), {});
    assert.equal(wrongGroup.body.code, 'not-approver');

    const approved = await callApi(api, 'POST', `/api/approvals/${asked.body.approval}/approve`, dina, { reason: 'on call' });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    const listed = await callApi(api, 'GET', '/api/access/requests', uma);
    const mine = listed.body.requests.find((r: { request: string }) => r.request === asked.body.request);
    assert.equal(mine.status, 'granted');
    assert.equal(mine.decidedBy, 'dina');
    assert.equal(mine.grant, null, 'the credential waits to be picked up');
    assert.equal(mine.approval, asked.body.approval);

    const picked = await callApi(api, 'POST', `/api/access/requests/${asked.body.request}/credential`, uma);
    assert.equal(picked.status, 201, JSON.stringify(picked.body));
    assert.match(picked.body.credential, /^dbr_/);
    const expiresIn = Date.parse(picked.body.expiresAt) - Date.parse(approved.body.decidedAt);
    assert.ok(Math.abs(expiresIn - 30 * 60_000) < 1000, `the grant ends 30 minutes after the approval (${expiresIn} ms)`);
    const client = new pg.Client({
      host: '127.0.0.1',
      port: gw.pgPort,
      user: 'uma',
      database: 'guarded',
      password: picked.body.credential,
    });
    await client.connect();
    try {
      assert.equal((await client.query('select current_database() as db')).rows[0].db, db.name);
    } finally {
      await client.end();
    }
    const again = await callApi(api, 'POST', `/api/access/requests/${asked.body.request}/credential`, uma);
    assert.equal(again.status, 409);
    assert.equal(again.body.code, 'already-issued');
    const grants = await callApi(api, 'GET', '/api/access/grants', uma);
    const grant = grants.body.grants.find((g: { grant: string }) => g.grant === picked.body.grant);
    assert.equal(grant.grantedBy, 'dina');
    assert.equal(grant.reason, 'INC-42');
    const someoneElses = await callApi(api, 'POST', `/api/access/requests/${asked.body.request}/credential`, dina);
    assert.equal(someoneElses.status, 404);

    // Denied: the requester reads who and why, and gets no credential.
    await callApi(api, 'POST', `/api/approvals/${denyMe.body.approval}/deny`, dina, { reason: 'not during the freeze' });
    const refused = await callApi(api, 'POST', `/api/access/requests/${denyMe.body.request}/credential`, uma);
    assert.equal(refused.status, 409);
    assert.equal(refused.body.detail, `access request ${denyMe.body.request} is denied: it was denied by dina: not during the freeze`);
    const after = await callApi(api, 'GET', '/api/access/requests?status=denied', uma);
    assert.equal(after.body.requests[0].decisionReason, 'not during the freeze');

    const actions = (await gw.gateway.store.listAudit({ limit: 1000 })).map((r) => `${r.actor} ${r.action}`);
    for (const expected of [
      'uma access.requested',
      'uma approval.requested',
      'dina approval.approved',
      'dina grant.issued',
      'dina approval.denied',
    ]) {
      assert.ok(actions.includes(expected), `${expected} in ${actions.join(', ')}`);
    }
  });
});
