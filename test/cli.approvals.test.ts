/**
 * `drawbridge approvals …` and `drawbridge access credential` as people run them: child
 * processes of the CLI against a running gateway in front of PostgreSQL, through its API with
 * the caller's token (DRAWBRIDGE_TOKEN). An agent's UPDATE waits while an approver lists, shows
 * and decides it; `list --watch` follows requests and decisions as they happen; an access request
 * is approved from the CLI and its credential, picked up from the CLI, logs in with psql.
 */

import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { callApi } from './support/api.ts';
import { HOLD_UPDATES, PERMIT_ALL, startTestGateway, type TestGateway } from './support/gateway.ts';
import { asAdmin, createDatabase, eventually, gatewayClient, type ThrowawayDatabase } from './support/pg-db.ts';

const ROOT = resolve(import.meta.dirname, '..');
const NODE = join(ROOT, 'node_modules/.bin/node');
const BIN = join(ROOT, 'bin/drawbridge.js');
const PASSWORD = 'a long enough password';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

describe('drawbridge approvals', () => {
  let db: ThrowawayDatabase;
  let gw: TestGateway;
  let api: string;
  const tokens: Record<string, string> = {};

  const env = (as: string) => ({ ...process.env, NO_COLOR: '1', DRAWBRIDGE_GATEWAY: api, DRAWBRIDGE_TOKEN: tokens[as]!, PAGER: 'cat' });
  const spawnCli = (as: string, args: readonly string[]): ChildProcess =>
    spawn(NODE, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: env(as) });
  const cli = async (as: string, ...args: string[]): Promise<Run> => {
    const child = spawnCli(as, args);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const [code] = (await once(child, 'close')) as [number | null];
    return { code, stdout, stderr };
  };
  const login = async (name: string, roles: ('approver' | 'user')[], groups: string[]) => {
    await gw.gateway.accounts.createUser({ name, password: PASSWORD, roles, groups }, 'test');
    tokens[name] = (await callApi(api, 'POST', '/api/auth/login', undefined, { username: name, password: PASSWORD })).body.token as string;
  };
  /** A held UPDATE of etl-bot's: its approval number, and the query that waits. */
  const held = async (client: pg.Client, sql: string) => {
    const notice = new Promise<number>((resolve) =>
      client.on('notice', (n) => {
        const m = /^waiting for approval #(\d+) /.exec(n.message ?? '');
        if (m) resolve(Number(m[1]));
      }),
    );
    const query = client.query(sql);
    query.catch(() => {});
    return { id: await notice, query };
  };

  before(async () => {
    db = await createDatabase('cli_approvals');
    await asAdmin(async (c) => {
      await c.query('create table orders (id int primary key, status text not null)');
      await c.query("insert into orders select g, 'paid' from generate_series(1, 40) g");
      await c.query('analyze orders');
    }, db.name);
    gw = await startTestGateway({
      connections: [
        { name: 'app', database: db.name },
        { name: 'guarded', database: db.name, access: { maxDurationMs: 3_600_000, approval: 'required', approvers: 'dba' } },
      ],
      policies: [PERMIT_ALL, HOLD_UPDATES],
    });
    api = `http://127.0.0.1:${gw.apiPort}`;
    await login('dana', ['approver'], ['dba']);
    await login('etl-bot', ['user'], []);
  });

  after(async () => {
    await gw?.close();
    await db?.drop();
  });

  it('list, show, approve and deny a held statement; the requester cannot decide it; a denial needs a reason', async () => {
    const client = await gatewayClient(gw, 'app', 'etl-bot');
    try {
      const first = await held(client, "update orders set status = 'refunded' where id <= 3");
      const list = await cli('dana', 'approvals', 'list');
      assert.equal(list.code, 0, list.stderr);
      const [head, row] = list.stdout.split('\n');
      assert.match(head ?? '', /^#\s+STATUS\s+REQUESTER\s+CONNECTION\s+REQUEST\s+BLAST RADIUS\s+CREATED \(UTC\)$/);
      assert.match(
        row ?? '',
        new RegExp(
          `^${first.id}\\s+pending\\s+etl-bot\\s+app\\s+update orders set status = 'refunded' where id <= 3\\s+about \\d rows? would change\\s+\\d{4}-`,
        ),
      );

      const json = await cli('dana', 'approvals', 'list', '--json');
      assert.deepEqual(
        JSON.parse(json.stdout).approvals.map((a: { id: number; status: string }) => [a.id, a.status]),
        [[first.id, 'pending']],
      );

      const show = await cli('dana', 'approvals', 'show', `#${first.id}`);
      assert.equal(show.code, 0, show.stderr);
      assert.match(show.stdout, new RegExp(`^approval #${first.id}  pending  \\(held statement\\)\n`));
      assert.match(show.stdout, /\nstatement:\n {4}update orders set status = 'refunded' where id <= 3\n/);
      assert.match(show.stdout, /\nwhy: {9}held by policy "updates-need-a-dba": an UPDATE on app needs the approval of dba\n/);
      assert.match(show.stdout, /\npreview: {5}about \d rows? would change \(estimate\)\n/);
      assert.match(show.stdout, new RegExp(`\\nurl: {9}${api}/approvals/${first.id}\\n`));

      const own = await cli('etl-bot', 'approvals', 'approve', String(first.id));
      assert.equal(own.code, 1);
      assert.match(own.stderr, /this needs one of the roles approver, admin/);
      const bare = await cli('dana', 'approvals', 'deny', String(first.id));
      assert.equal(bare.code, 2);
      assert.match(bare.stderr, /approvals deny needs --reason TEXT/);

      const approved = await cli('dana', 'approvals', 'approve', String(first.id), '--reason', 'ticket 7');
      assert.equal(approved.code, 0, approved.stderr);
      assert.equal(approved.stdout, `approved #${first.id}: etl-bot's statement runs now, once\n`);
      assert.equal((await first.query).rowCount, 3);

      const second = await held(client, "update orders set status = 'refunded' where id = 9");
      const denied = await cli('dana', 'approvals', 'deny', String(second.id), '--reason', 'use the refund job', '--json');
      assert.equal(denied.code, 0, denied.stderr);
      assert.equal(JSON.parse(denied.stdout).decisionReason, 'use the refund job');
      await assert.rejects(second.query, /was denied by dana: use the refund job/);

      const none = await cli('dana', 'approvals', 'list');
      assert.equal(none.stdout, 'no pending approvals\n');
      const all = await cli('etl-bot', 'approvals', 'list', '--all');
      assert.match(all.stdout, new RegExp(`\\n${second.id}\\s+denied\\s+etl-bot`));
      assert.match(all.stdout, new RegExp(`\\n${first.id}\\s+approved\\s+etl-bot`));
    } finally {
      await client.end();
    }
  });

  it('list --watch prints each request and decision as it happens', async () => {
    const watch = spawnCli('dana', ['approvals', 'list', '--watch']);
    const lines: string[] = [];
    let out = '';
    watch.stdout!.setEncoding('utf8').on('data', (text: string) => {
      out += text;
      lines.push(...text.split('\n').filter((l) => l !== ''));
    });
    let err = '';
    watch.stderr!.setEncoding('utf8').on('data', (text: string) => (err += text));
    const client = await gatewayClient(gw, 'app', 'etl-bot');
    try {
      await eventually(
        async () => err,
        (e) => e.includes('watching for requests and decisions'),
        10_000,
      );
      const { id, query } = await held(client, "update orders set status = 'refunded' where id = 20");
      const requested = await eventually(
        async () => lines.find((l) => l.includes(`#${id} requested`)),
        (l) => l !== undefined,
        10_000,
      );
      assert.match(
        requested ?? '',
        new RegExp(
          `^\\d\\d:\\d\\d:\\d\\d  #${id} requested by etl-bot on app: update orders set status = 'refunded' where id = 20 — about 1 row would change \\(dba decides: ${api}/approvals/${id}\\)$`,
        ),
      );
      await callApi(api, 'POST', `/api/approvals/${id}/approve`, tokens['dana'], { reason: 'fine' });
      const decided = await eventually(
        async () => lines.find((l) => l.includes(`#${id} approved`)),
        (l) => l !== undefined,
        10_000,
      );
      assert.match(decided ?? '', new RegExp(`^\\d\\d:\\d\\d:\\d\\d  #${id} approved by dana: fine$`));
      assert.equal((await query).rowCount, 1);
    } finally {
      watch.kill('SIGTERM');
      const [code] = (await once(watch, 'close')) as [number | null];
      assert.equal(code, 0, `${out}\n${err}`);
      await client.end();
    }
  });

  it('an access request approved from the CLI: its credential, picked up once, logs in with psql', async () => {
    const asked = await callApi(api, 'POST', '/api/access/requests', tokens['etl-bot'], {
      connection: 'guarded',
      duration: '20m',
      reason: 'INC-9',
    });
    assert.equal(asked.status, 202);
    const list = await cli('dana', 'approvals', 'list');
    assert.match(list.stdout, new RegExp(`\\n${asked.body.approval}\\s+pending\\s+etl-bot\\s+guarded\\s+access for 20m: INC-9`));
    const approved = await cli('dana', 'approvals', 'approve', String(asked.body.approval));
    assert.equal(approved.code, 0, approved.stderr);
    assert.equal(
      approved.stdout,
      `approved #${asked.body.approval}: etl-bot picks up the credential with \`drawbridge access credential ${asked.body.request}\`\n`,
    );
    const picked = await cli('etl-bot', 'access', 'credential', asked.body.request);
    assert.equal(picked.code, 0, picked.stderr);
    const [credential, grantLine, psqlLine] = picked.stdout.trim().split('\n');
    assert.match(credential ?? '', /^dbr_[A-Za-z0-9_-]{43}$/);
    assert.match(grantLine ?? '', /^grant grt_\w+ on guarded, expires /);
    const uri = /psql "([^"]+)"/.exec(psqlLine ?? '')?.[1];
    assert.ok(uri, picked.stdout);
    const psql = await new Promise<Run>((done) =>
      execFile('psql', [uri, '-X', '-At', '-c', 'select count(*) from orders'], { timeout: 20_000 }, (error, stdout, stderr) =>
        done({ code: error ? 1 : 0, stdout, stderr }),
      ),
    );
    assert.equal(psql.code, 0, psql.stderr);
    assert.equal(psql.stdout.trim(), '40');
    const again = await cli('etl-bot', 'access', 'credential', asked.body.request);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /was picked up already/);
  });
});
