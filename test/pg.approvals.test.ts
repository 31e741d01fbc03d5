/**
 * Statements held for approval, through a real gateway in front of PostgreSQL, with node-postgres
 * as the client: the client is told which approval it waits for, an approver decides through the
 * API, and the statement runs once (approved) or fails with the reason (denied, expired); a
 * client that leaves cancels its request; nobody approves their own request or twice.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { encodeFrontend, errorFieldsToObject } from '../src/wire/pg/index.ts';
import { callApi } from './support/api.ts';
import { HOLD_UPDATES, PERMIT_ALL, startTestGateway, type TestGateway } from './support/gateway.ts';
import { asAdmin, createDatabase, eventually, gatewayClient, type ThrowawayDatabase } from './support/pg-db.ts';
import { errorOf, RawPg } from './support/raw-pg.ts';

const PASSWORD = 'a long enough password';

describe('statements held for approval', () => {
  let db: ThrowawayDatabase;
  let gw: TestGateway;
  let api: string;
  const tokens: Record<string, string> = {};

  const login = async (name: string, roles: ('approver' | 'admin' | 'user')[], groups: string[]) => {
    await gw.gateway.accounts.createUser({ name, password: PASSWORD, roles, groups }, 'test');
    const { body } = await callApi(api, 'POST', '/api/auth/login', undefined, { username: name, password: PASSWORD });
    tokens[name] = body.token as string;
  };

  /** The NOTICE that names the approval a client waits for: its number. */
  const waitingFor = (client: pg.Client) =>
    new Promise<{ id: number; message: string }>((resolve) =>
      client.on('notice', (notice) => {
        const m = /^waiting for approval #(\d+) \((http:\/\/[^)]+\/approvals\/\d+)\)/.exec(notice.message ?? '');
        if (m) resolve({ id: Number(m[1]), message: notice.message! });
      }),
    );

  const status = async (id: number) => (await callApi(api, 'GET', `/api/approvals/${id}`, tokens['dana'])).body.status as string;
  const paid = async () =>
    (await asAdmin((c) => c.query<{ n: number }>('select count(*)::int as n from orders where status = $1', ['refunded']), db.name)).rows[0]!.n;

  before(async () => {
    db = await createDatabase('approvals');
    await asAdmin(async (c) => {
      await c.query('create table orders (id int primary key, status text not null)');
      await c.query("insert into orders select g, 'paid' from generate_series(1, 10) g");
    }, db.name);
    gw = await startTestGateway({
      connections: [{ name: 'app', database: db.name }],
      policies: [PERMIT_ALL, HOLD_UPDATES],
      extraYaml: ['approvals:', '  timeout: 2s'],
    });
    api = `http://127.0.0.1:${gw.apiPort}`;
    await login('dana', ['approver'], ['dba']);
    await login('olga', ['approver'], ['ops']);
    await login('etl-bot', ['approver'], ['dba']);
  });

  after(async () => {
    await gw?.close();
    await db?.drop();
  });

  it('an UPDATE waits with a NOTICE naming the approval; approved, it runs once, and the session goes on', async () => {
    const client = await gatewayClient(gw, 'app', 'etl-bot');
    try {
      const notice = waitingFor(client);
      const update = client.query("update orders set status = 'refunded' where id in (1, 2)");
      const { id, message } = await notice;
      assert.match(message, /held by policy "updates-need-a-dba": an UPDATE on app needs the approval of dba/);
      const pending = await callApi(api, 'GET', `/api/approvals/${id}`, tokens['dana']);
      assert.equal(pending.status, 200);
      assert.equal(pending.body.status, 'pending');
      assert.equal(pending.body.statement, "update orders set status = 'refunded' where id in (1, 2)");
      assert.equal(pending.body.requester, 'etl-bot');
      assert.equal(await paid(), 0, 'nothing ran while held');
      // In the meantime the gateway serves everyone else.
      const other = await gatewayClient(gw, 'app', 'someone');
      assert.equal((await other.query('select count(*)::int as n from orders')).rows[0].n, 10);
      await other.end();

      // Not by the requester, nor by an approver of another group.
      const own = await callApi(api, 'POST', `/api/approvals/${id}/approve`, tokens['etl-bot'], {});
      assert.equal(own.status, 403);
      assert.equal(own.body.code, 'self-approval');
      const wrongGroup = await callApi(api, 'POST', `/api/approvals/${id}/approve`, tokens['olga'], {});
      assert.equal(wrongGroup.status, 403);
      assert.equal(wrongGroup.body.code, 'not-approver');

      const approved = await callApi(api, 'POST', `/api/approvals/${id}/approve`, tokens['dana'], { reason: 'ticket 42' });
      assert.equal(approved.status, 200, JSON.stringify(approved.body));
      assert.equal(approved.body.status, 'approved');
      assert.equal(approved.body.decidedBy, 'dana');
      assert.equal((await update).rowCount, 2);
      assert.equal(await paid(), 2);
      const again = await callApi(api, 'POST', `/api/approvals/${id}/approve`, tokens['dana'], {});
      assert.equal(again.status, 409);
      assert.equal(again.body.code, 'not-pending');
      assert.equal((await client.query('select 1 as one')).rows[0].one, 1);

      // The same text again is a new request.
      const second = waitingFor(client);
      const rerun = client.query("update orders set status = 'refunded' where id in (1, 2)");
      assert.ok((await second).id > id);
      await callApi(api, 'POST', `/api/approvals/${(await second).id}/approve`, tokens['dana'], {});
      assert.equal((await rerun).rowCount, 2);
    } finally {
      await client.end();
    }
    const actions = (await gw.gateway.store.listAudit({ limit: 1000 })).map((r) => r.action);
    assert.ok(actions.includes('approval.requested') && actions.includes('approval.approved'), actions.join(' '));
  });

  it('psql waits on the NOTICE, and prints UPDATE once approved', async () => {
    const password = await gw.mint('etl-bot', 'app');
    const conninfo = `host=127.0.0.1 port=${gw.pgPort} dbname=app user=etl-bot sslmode=disable`;
    let stderr = '';
    const child = spawn('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-d', conninfo, '-c', "update orders set status = 'refunded' where id = 9"], {
      env: { ...process.env, PGPASSWORD: password },
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (stdout += t));
    const id = await new Promise<number>((resolve, reject) => {
      child.stderr.setEncoding('utf8').on('data', (t: string) => {
        stderr += t;
        const m = /NOTICE: {2}waiting for approval #(\d+) \(http:\/\/[^)]+\/approvals\/\d+\)/.exec(stderr);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (code) => reject(new Error(`psql exited (${code}) before the notice: ${stderr}`)));
    });
    await callApi(api, 'POST', `/api/approvals/${id}/approve`, tokens['dana'], {});
    const [code] = (await once(child, 'exit')) as [number];
    assert.equal(code, 0, stderr);
    assert.equal(stdout.trim(), 'UPDATE 1');
  });

  it('denied, the client gets 42501 with who denied it and why; a denial needs a reason', async () => {
    const client = await gatewayClient(gw, 'app', 'etl-bot');
    try {
      const notice = waitingFor(client);
      const update = client.query("update orders set status = 'refunded' where id = 3");
      // The refusal may reach the client before the API answers the denial: handled from now on.
      update.catch(() => {});
      const { id } = await notice;
      const bare = await callApi(api, 'POST', `/api/approvals/${id}/deny`, tokens['dana'], {});
      assert.equal(bare.status, 400);
      assert.equal(bare.body.code, 'reason-required');
      await callApi(api, 'POST', `/api/approvals/${id}/deny`, tokens['dana'], { reason: 'use the refund job' });
      await assert.rejects(update, (error: Error & { code?: string }) => {
        assert.equal(error.code, '42501');
        assert.equal(error.message, `approval #${id} was denied by dana: use the refund job`);
        return true;
      });
      assert.equal((await client.query('select 2 as two')).rows[0].two, 2, 'the session goes on');
    } finally {
      await client.end();
    }
  });

  it('nobody decides: the request expires and the client is told', async () => {
    const client = await gatewayClient(gw, 'app', 'etl-bot');
    try {
      const notice = waitingFor(client);
      const update = client.query("update orders set status = 'refunded' where id = 4");
      const { id } = await notice;
      await assert.rejects(update, (error: Error & { code?: string }) => {
        assert.equal(error.code, '42501');
        assert.match(error.message, new RegExp(`^approval #${id} expired: nobody decided within 2 s`));
        return true;
      });
      assert.equal(await status(id), 'expired');
    } finally {
      await client.end();
    }
  });

  it('a client that leaves while held cancels its request', async () => {
    const client = await gatewayClient(gw, 'app', 'etl-bot');
    client.on('error', () => {});
    const notice = waitingFor(client);
    client.query("update orders set status = 'refunded' where id = 5").catch(() => {});
    const { id } = await notice;
    await client.end();
    assert.equal(await eventually(() => status(id), (s) => s !== 'pending'), 'cancelled');
    const late = await callApi(api, 'POST', `/api/approvals/${id}/approve`, tokens['dana'], {});
    assert.equal(late.status, 409);
  });

  it('a prepared UPDATE (extended protocol) is held at each Execute, with its parameters', async () => {
    const client = await gatewayClient(gw, 'app', 'etl-bot');
    try {
      for (const orderId of [6, 7]) {
        const notice = waitingFor(client);
        const update = client.query({ name: 'refund', text: "update orders set status = 'refunded' where id = $1", values: [orderId] });
        const { id } = await notice;
        const held = await callApi(api, 'GET', `/api/approvals/${id}`, tokens['dana']);
        assert.equal(held.body.statement, "update orders set status = 'refunded' where id = $1");
        assert.deepEqual(held.body.params, [String(orderId)]);
        await callApi(api, 'POST', `/api/approvals/${id}/approve`, tokens['dana'], {});
        assert.equal((await update).rowCount, 1);
      }
    } finally {
      await client.end();
    }
  });

  it('an approval is for the text it held: a statement prepared again under the same name is a new request', async () => {
    const raw = await RawPg.connect({ port: gw.pgPort });
    try {
      assert.ok((await raw.login('etl-bot', 'app', await gw.mint('etl-bot', 'app'))).ok);
      const run = (sql: string) =>
        raw.send(
          Buffer.concat([
            encodeFrontend({ type: 'Parse', name: 's1', sql, paramTypes: [] }),
            encodeFrontend({ type: 'Bind', portal: '', statement: 's1', paramFormats: [], params: [], resultFormats: [] }),
            encodeFrontend({ type: 'Execute', portal: '', maxRows: 0 }),
            encodeFrontend({ type: 'Sync' }),
          ]),
        );
      const approvalOf = async () => {
        const notice = (await raw.until(['NoticeResponse'])).at(-1)!;
        assert.equal(notice.type, 'NoticeResponse');
        const text = notice.type === 'NoticeResponse' ? (errorFieldsToObject(notice.fields).message ?? '') : '';
        return Number(/^waiting for approval #(\d+)/.exec(text)![1]);
      };
      const before = await paid();
      run("update orders set status = 'refunded' where id = 8");
      const first = await approvalOf();
      await callApi(api, 'POST', `/api/approvals/${first}/approve`, tokens['dana'], {});
      const done = await raw.until(['ReadyForQuery']);
      assert.ok(done.some((m) => m.type === 'CommandComplete' && m.tag === 'UPDATE 1'), JSON.stringify(done));

      // The same name, another text: not covered by the approval before.
      raw.send(Buffer.concat([encodeFrontend({ type: 'Close', target: 'S', name: 's1' }), encodeFrontend({ type: 'Sync' })]));
      await raw.until(['ReadyForQuery']);
      run("update orders set status = 'refunded' where id > 0");
      const second = await approvalOf();
      assert.notEqual(second, first);
      const held = await callApi(api, 'GET', `/api/approvals/${second}`, tokens['dana']);
      assert.equal(held.body.statement, "update orders set status = 'refunded' where id > 0");
      await callApi(api, 'POST', `/api/approvals/${second}/deny`, tokens['dana'], { reason: 'not that one' });
      const refused = await raw.until(['ReadyForQuery'], 5000, false);
      assert.match(errorOf(refused)?.message ?? '', /denied by dana: not that one/, JSON.stringify(refused));
      assert.equal(await paid(), before + 1, 'only the approved text ran (id 8)');
    } finally {
      raw.socket.destroy();
    }
  });

  it('requesters see their own approvals; approvers see all, a page at a time', async () => {
    const mine = await callApi(api, 'GET', '/api/approvals?limit=2', tokens['etl-bot']);
    assert.equal(mine.status, 200);
    assert.equal(mine.body.approvals.length, 2);
    assert.ok(mine.body.next);
    const next = await callApi(api, 'GET', `/api/approvals?limit=100&before=${mine.body.next}`, tokens['etl-bot']);
    assert.ok(next.body.approvals.every((a: { id: number }) => a.id < mine.body.approvals[1].id));
    const pending = await callApi(api, 'GET', '/api/approvals?status=pending', tokens['dana']);
    assert.deepEqual(pending.body.approvals, []);
  });
});

describe('a held statement of a masked session', () => {
  let db: ThrowawayDatabase;
  let gw: TestGateway;

  before(async () => {
    db = await createDatabase('approvals_masked');
    await asAdmin((c) => c.query('create table customers (id int primary key, email text)'), db.name);
    // Statements may run, results are masked (no data:unmasked), updates are held for a dba.
    gw = await startTestGateway({
      connections: [{ name: 'app', database: db.name }],
      policies: ['permit (principal, action in Drawbridge::Action::"sql:any", resource);\n', HOLD_UPDATES],
    });
  });

  after(async () => {
    await gw?.close();
    await db?.drop();
  });

  it('approvers, the audit log and the stream see the statement and its parameters masked; the target gets them as sent', async () => {
    const api = `http://127.0.0.1:${gw.apiPort}`;
    await gw.gateway.accounts.createUser({ name: 'dana', password: PASSWORD, roles: ['approver'], groups: ['dba'] }, 'test');
    const token = (await callApi(api, 'POST', '/api/auth/login', undefined, { username: 'dana', password: PASSWORD })).body.token as string;
    await asAdmin((c) => c.query("insert into customers values (1, 'old@example.com')"), db.name);
    const client = await gatewayClient(gw, 'app', 'etl-bot');
    try {
      const notice = new Promise<number>((resolve) =>
        client.on('notice', (n) => {
          const m = /^waiting for approval #(\d+)/.exec(n.message ?? '');
          if (m) resolve(Number(m[1]));
        }),
      );
      const update = client.query({
        text: "update customers set email = 'jane.doe@example.com' where id = 1 and email <> $1",
        values: ['john.roe@example.com'],
      });
      const id = await notice;
      const held = (await callApi(api, 'GET', `/api/approvals/${id}`, token)).body;
      const seen = JSON.stringify(held);
      assert.doesNotMatch(seen, /jane\.doe@example\.com|john\.roe@example\.com/, seen);
      assert.match(held.statement, /update customers set email = '.+' where id = 1/);
      await callApi(api, 'POST', `/api/approvals/${id}/approve`, token, {});
      assert.equal((await update).rowCount, 1);
      const stored = await asAdmin((c) => c.query('select email from customers where id = 1'), db.name);
      assert.equal(stored.rows[0].email, 'jane.doe@example.com', 'the target ran the statement as sent');
      const audit = JSON.stringify(await gw.gateway.store.listAudit({ limit: 1000 }));
      assert.doesNotMatch(audit, /jane\.doe@example\.com|john\.roe@example\.com/);
    } finally {
      await client.end();
    }
  });
});
