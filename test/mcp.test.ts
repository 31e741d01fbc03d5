/**
 * The MCP server for agents, with the SDK's own client, over streamable HTTP (`/mcp`) and over
 * stdio (`drawbridge mcp`, relaying to the gateway), in front of a real PostgreSQL: an agent
 * holding only a service-account key lists connections, asks for access, reads the tables it
 * may, runs queries whose results come back masked, is refused what policy blocks, gets a
 * pending approval for what policy holds (approved through the API, picked up with
 * approval_status), and works under a plan: statements inside it run without further approval,
 * those outside are blocked (or held, where a policy says so), and finish_plan ends the grant.
 */

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import pg from 'pg';
import { callApi } from './support/api.ts';
import { run } from './support/cli.ts';
import { HOLD_UPDATES, startTestGateway, type TestGateway } from './support/gateway.ts';
import { asAdmin, createDatabase, eventually, type ThrowawayDatabase } from './support/pg-db.ts';

const PASSWORD = 'a long enough password';
/** Everything but unmasked results; DDL blocked; UPDATEs held for dba (HOLD_UPDATES); DELETEs outside a plan held too. */
const POLICIES = [
  '@id("base")\npermit (principal, action in Drawbridge::Action::"sql:any", resource);\n',
  '@id("no-ddl")\n@reason("DDL is not allowed")\nforbid (principal, action in Drawbridge::Action::"sql:ddl", resource);\n',
  HOLD_UPDATES,
  `@id("plan-deletes-need-a-dba")
@reason("a DELETE outside the plan")
@approval("dba")
forbid (principal, action == Drawbridge::Action::"sql:delete", resource) when { context.plan && !context.in_plan };
`,
];
const EMAILS = ['ann@example.com', 'bob@example.org'];

type ToolResult = { content: { type: string; text: string }[]; structuredContent?: Record<string, unknown>; isError?: boolean };

describe('the MCP server for agents', () => {
  let db: ThrowawayDatabase;
  let gw: TestGateway;
  let api: string;
  let key: string;
  let danaToken: string;

  const text = (r: ToolResult) => r.content.map((c) => c.text).join('\n');
  const approve = (id: number) => callApi(api, 'POST', `/api/approvals/${id}/approve`, danaToken, { reason: 'ok' });
  const orders = async () =>
    (await asAdmin((c) => c.query<{ id: number; total: string }>('select id, total::text from orders order by id'), db.name)).rows;
  const refunds = async () =>
    (await asAdmin((c) => c.query<{ id: number; status: string }>('select id, status from refunds order by id'), db.name)).rows;

  async function httpClient(token = key): Promise<Client> {
    const client = new Client({ name: 'test-agent', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${api}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    return client;
  }
  const call = async (client: Client, name: string, args: Record<string, unknown> = {}) =>
    (await client.callTool({ name, arguments: args })) as ToolResult;

  before(async () => {
    db = await createDatabase('mcp');
    await asAdmin(async (c) => {
      await c.query('create table orders (id int primary key, email text not null, total numeric not null)');
      await c.query(`insert into orders values (1, '${EMAILS[0]}', 10), (2, '${EMAILS[1]}', 20)`);
      await c.query("create table refunds (id int primary key, order_id int not null, status text not null)");
      await c.query("insert into refunds values (1, 1, 'requested'), (2, 2, 'requested'), (3, 2, 'requested')");
      await c.query('create table secrets (id int)');
    }, db.name);
    gw = await startTestGateway({
      connections: [{ name: 'shop', database: db.name }],
      policies: [...POLICIES, '@id("no-secrets")\nforbid (principal, action, resource) when { context.tables_read.contains("secrets") };\n'],
      extraYaml: ['approvals:', '  timeout: 30s'],
    });
    api = `http://127.0.0.1:${gw.apiPort}`;
    key = (await gw.gateway.accounts.createServiceAccount({ name: 'etl-bot' }, 'test')).key;
    await gw.gateway.accounts.createUser({ name: 'dana', password: PASSWORD, roles: ['approver'], groups: ['dba', 'approvers'] }, 'test');
    danaToken = (await callApi(api, 'POST', '/api/auth/login', undefined, { username: 'dana', password: PASSWORD })).body.token as string;
  });

  after(async () => {
    await gw?.close();
    await db?.drop();
  });

  it('refuses a request without the agent token', async () => {
    const response = await fetch(`${api}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    assert.equal(response.status, 401);
    assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer/);
    const bad = await fetch(`${api}/mcp`, { method: 'POST', headers: { authorization: 'Bearer dbr_sak_nope', 'content-type': 'application/json' }, body: '{}' });
    assert.equal(bad.status, 401);
  });

  it('answers a body that is not JSON with a JSON-RPC parse error, and the endpoint goes on', async () => {
    const response = await fetch(`${api}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: '{"jsonrpc": "2.0", "id": 1, "method": ',
    });
    assert.equal(response.status, 400);
    const body = (await response.json()) as { error: { code: number; message: string } };
    assert.equal(body.error.code, -32700);
    assert.match(body.error.message, /^parse error: the body is not JSON/);
    const get = await fetch(`${api}/mcp`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(get.status, 405);
    const client = await httpClient();
    assert.equal((await client.listTools()).tools.length, 6);
    await client.close();
  });

  it('a grant revoked under the agent: the next query says its access has ended, then to ask again', async () => {
    const client = await httpClient();
    try {
      const granted = await call(client, 'request_access', { connection: 'shop', reason: 'revocation check' });
      assert.match(text(await call(client, 'query', { connection: 'shop', sql: 'select 1 as one' })), /^one\n1\n/);
      await gw.gateway.credentials.revoke(granted.structuredContent?.['grant'] as string, { by: 'dana', reason: 'INC-8 closed' });
      await gw.gateway.pollRevocations();
      const ended = await eventually(
        () => call(client, 'query', { connection: 'shop', sql: 'select 1 as one' }),
        (r) => r.isError === true,
      );
      assert.match(text(ended), /your access to shop has ended: ask again with request_access$/);
      assert.match(text(await call(client, 'query', { connection: 'shop', sql: 'select 1' })), /no access to shop now/);
    } finally {
      await client.close();
    }
  });

  it('lists, grants, describes, queries with masking, blocks, and holds for approval', async () => {
    const client = await httpClient();
    try {
      const tools = (await client.listTools()).tools.map((t) => t.name).sort();
      assert.deepEqual(tools, ['approval_status', 'describe_connection', 'finish_plan', 'list_connections', 'query', 'request_access']);

      const listed = await call(client, 'list_connections');
      assert.match(text(listed), /^shop \(postgres\): access granted on request/);

      const early = await call(client, 'query', { connection: 'shop', sql: 'select 1' });
      assert.equal(early.isError, true);
      assert.match(text(early), /no access to shop now: ask with request_access first/);

      const granted = await call(client, 'request_access', { connection: 'shop', reason: 'TICKET-1 refunds', duration: '10m' });
      assert.equal(granted.structuredContent?.['status'], 'granted');
      assert.doesNotMatch(JSON.stringify(granted), /dbr_/, 'the credential stays in the gateway');

      const described = await call(client, 'describe_connection', { connection: 'shop' });
      assert.match(text(described), /^orders: id integer, email text, total numeric$/m);
      assert.match(text(described), /^refunds: id integer, order_id integer, status text$/m);
      assert.doesNotMatch(text(described), /secrets/, 'a table policy forbids reading is left out');

      const read = await call(client, 'query', { connection: 'shop', sql: 'select id, email, total from orders order by id' });
      assert.equal(read.isError, undefined);
      assert.match(text(read), /^id \| email \| total\n1 \| .+ \| 10\n2 \| .+ \| 20\n\(2 rows\)$/);
      for (const email of EMAILS) assert.ok(!JSON.stringify(read).includes(email), `${email} is masked`);
      assert.equal(read.structuredContent?.['rowCount'], 2);

      const limited = await call(client, 'query', { connection: 'shop', sql: 'select g from generate_series(1, 50) g', max_rows: 5 });
      assert.match(text(limited), /\(5 rows shown; there are more/);
      assert.equal(limited.structuredContent?.['truncated'], true);

      const blocked = await call(client, 'query', { connection: 'shop', sql: 'drop table orders' });
      assert.equal(blocked.isError, true);
      assert.match(text(blocked), /^ERROR 42501: blocked by policy "no-ddl": DDL is not allowed on shop/);

      const broken = await call(client, 'query', { connection: 'shop', sql: 'select * from nowhere' });
      assert.match(text(broken), /^ERROR 42P01: relation "nowhere" does not exist/);

      const held = await call(client, 'query', { connection: 'shop', sql: 'update orders set total = 11 where id = 1' });
      assert.equal(held.structuredContent?.['status'], 'pending');
      const approval = held.structuredContent?.['approval'] as number;
      assert.match(text(held), new RegExp(`^Held for approval #${approval} \\(http://[^)]+/approvals/${approval}\\): held by policy "updates-need-a-dba"`));
      assert.equal((await call(client, 'approval_status', { approval })).structuredContent?.['status'], 'pending');
      assert.deepEqual((await orders()).map((o) => o.total), ['10', '20'], 'nothing ran while held');

      // The agent goes on meanwhile.
      assert.match(text(await call(client, 'query', { connection: 'shop', sql: 'select count(*) from refunds' })), /^count\n3\n/);

      assert.equal((await approve(approval)).status, 200);
      const done = await eventually(
        () => call(client, 'approval_status', { approval }),
        (r) => r.structuredContent?.['status'] === 'done',
      );
      assert.match(text(done), /^Approval #\d+ was approved by dana: ok\.\nUPDATE 1$/);
      assert.deepEqual((await orders()).map((o) => o.total), ['11', '20']);
      assert.equal((await call(client, 'approval_status', { approval })).structuredContent?.['status'], 'approved', 'the result is given once');

      const other = await call(client, 'approval_status', { approval: 999 });
      assert.equal(other.isError, true);

      // All of it is in the session's recording, as any client's statements are.
      // (Recordings are written a moment after the statement's answer.)
      const recorded = async () => {
        const sessions = await gw.gateway.store.listSessions({ principal: 'etl-bot' });
        return (await Promise.all(sessions.map((s) => gw.gateway.store.listStatements(s.id)))).flat().map((s) => s.text);
      };
      const statements = await eventually(recorded, (texts) => texts.includes('update orders set total = 11 where id = 1'));
      assert.ok(statements.includes('drop table orders'));
      assert.ok(statements.includes('update orders set total = 11 where id = 1'));
    } finally {
      await client.close();
    }
  });

  it('at most 10 statements of an agent wait for approval at once', async () => {
    const client = await httpClient();
    try {
      await call(client, 'request_access', { connection: 'shop', reason: 'many held' });
      const approvals: number[] = [];
      for (let i = 0; i < 10; i++) {
        const held = await call(client, 'query', { connection: 'shop', sql: `update orders set total = total where id = ${i}` });
        assert.equal(held.structuredContent?.['status'], 'pending');
        approvals.push(held.structuredContent?.['approval'] as number);
      }
      const eleventh = await call(client, 'query', { connection: 'shop', sql: 'update orders set total = total where id = 11' });
      assert.equal(eleventh.isError, true);
      assert.match(text(eleventh), /^10 of your statements wait for approval: follow them with approval_status before you run more \(approval #(\d+) was withdrawn\)$/);
      const withdrawn = Number(/#(\d+) was withdrawn/.exec(text(eleventh))![1]);
      await eventually(
        async () => (await callApi(api, 'GET', `/api/approvals/${withdrawn}`, danaToken)).body.status,
        (status) => status === 'cancelled',
      );
      assert.equal((await callApi(api, 'GET', `/api/approvals/${withdrawn}`, danaToken)).body.status, 'cancelled');
      assert.match(text(await call(client, 'query', { connection: 'shop', sql: 'select 1 as one' })), /^one\n1\n/, 'what needs no approval still runs');
      for (const id of approvals) await callApi(api, 'POST', `/api/approvals/${id}/deny`, danaToken, { reason: 'clearing' });
      const again = await eventually(
        () => call(client, 'query', { connection: 'shop', sql: 'update orders set total = total where id = 12' }),
        (r) => r.structuredContent?.['status'] === 'pending',
      );
      await callApi(api, 'POST', `/api/approvals/${again.structuredContent?.['approval']}/deny`, danaToken, { reason: 'clearing' });
    } finally {
      await client.close();
    }
  });

  it('a plan, once approved, allows what it covers without further approval and nothing else; finish_plan ends it', async () => {
    const client = await httpClient();
    try {
      const submitted = await call(client, 'request_access', {
        connection: 'shop',
        reason: 'INC-7 refund the duplicates',
        duration: '45m',
        plan: {
          steps: [
            { actions: ['read'], tables: ['orders', 'refunds'] },
            { actions: ['update'], tables: ['refunds'], template: 'UPDATE refunds SET status = $1 WHERE id = $2' },
          ],
        },
      });
      assert.equal(submitted.structuredContent?.['status'], 'pending', 'a plan waits for a person even where access is granted on request');
      const plan = submitted.structuredContent?.['plan'] as string;
      const approval = submitted.structuredContent?.['approval'] as number;
      const shown = (await callApi(api, 'GET', `/api/approvals/${approval}`, danaToken)).body;
      assert.equal(shown.statement, 'plan: read orders, refunds; update refunds as "UPDATE refunds SET status = $1 WHERE id = $2"');

      const bad = await call(client, 'request_access', { connection: 'shop', reason: 'x', plan: { steps: [{ actions: ['fly'], tables: [] }] } });
      assert.equal(bad.isError, true);
      assert.match(text(bad), /step 1: "fly" is not an action a plan may name/);

      await approve(approval);
      const granted = await call(client, 'approval_status', { approval });
      assert.equal(granted.structuredContent?.['status'], 'granted');

      const inPlan = await call(client, 'query', { connection: 'shop', sql: "UPDATE refunds SET status = 'done' WHERE id = 1" });
      assert.equal(text(inPlan), 'UPDATE 1', 'an UPDATE the plan covers is not held again');
      assert.match(text(await call(client, 'query', { connection: 'shop', sql: 'select o.email, r.status from orders o join refunds r on r.order_id = o.id' })), /\(3 rows\)/);

      const outside = await call(client, 'query', { connection: 'shop', sql: "INSERT INTO orders VALUES (3, 'c@example.net', 1)" });
      assert.equal(outside.isError, true);
      assert.match(text(outside), new RegExp(`^ERROR 42501: blocked by policy "plan": insert of orders is outside the approved plan ${plan}`));
      // The template is the only UPDATE the plan covers: another one is held, as policy holds every UPDATE.
      const otherShape = await call(client, 'query', { connection: 'shop', sql: 'UPDATE refunds SET order_id = 1 WHERE id = 2' });
      assert.equal(otherShape.structuredContent?.['status'], 'pending');

      const deletion = await call(client, 'query', { connection: 'shop', sql: 'DELETE FROM refunds WHERE id = 3' });
      assert.equal(deletion.structuredContent?.['status'], 'pending', 'a policy holds DELETEs outside a plan instead');
      await callApi(api, 'POST', `/api/approvals/${deletion.structuredContent?.['approval']}/deny`, danaToken, { reason: 'not in the plan' });
      const denied = await eventually(
        () => call(client, 'approval_status', { approval: deletion.structuredContent?.['approval'] }),
        (r) => r.isError === true,
      );
      assert.match(text(denied), /was denied by dana: not in the plan/);

      assert.deepEqual(await refunds(), [
        { id: 1, status: 'done' },
        { id: 2, status: 'requested' },
        { id: 3, status: 'requested' },
      ]);
      const deviations = await gw.gateway.store.listAudit({ action: 'plan.deviation' });
      assert.equal(deviations.length, 3);
      assert.ok(deviations.every((d) => d.subject === `plan:${plan}` && d.actor === 'etl-bot'));
      assert.equal((await gw.gateway.store.listAudit({ action: 'plan.submitted' })).length, 1);

      const finished = await call(client, 'finish_plan', { plan });
      assert.equal(finished.structuredContent?.['status'], 'finished');
      const after = await call(client, 'query', { connection: 'shop', sql: 'select 1' });
      assert.match(text(after), /no access to shop now/);
      const request = await gw.gateway.store.getAccessRequest(plan);
      assert.ok((await gw.gateway.store.getGrant(request!.grantId!))?.revokedAt, 'the grant is revoked');
      assert.equal((await call(client, 'finish_plan', { plan })).structuredContent?.['status'], 'over');
      assert.equal((await gw.gateway.store.listAudit({ action: 'plan.finished' })).length, 1);
    } finally {
      await client.close();
    }
  });

  it('a plan from the CLI holds a native client to its steps, and access finish ends its session', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'drawbridge-plan-'));
    const agent = { DRAWBRIDGE_TOKEN: key, DRAWBRIDGE_GATEWAY: api, XDG_CONFIG_HOME: dir };
    try {
      const file = join(dir, 'plan.yaml');
      await writeFile(file, 'steps:\n  - actions: [select]\n    tables: [orders]\n');
      const asked = await run(process.execPath, ['bin/drawbridge.js', 'access', 'request', 'shop', '--reason', 'INC-9', '--plan', file], agent);
      assert.equal(asked.code, 0, asked.stderr);
      const request = /^request (req_\S+) for shop \(15m\) waits for an approver: approval #(\d+)/.exec(asked.stdout);
      assert.ok(request, asked.stdout);
      assert.match(asked.stdout, new RegExp(`when the work is done: drawbridge access finish ${request[1]}`));
      await approve(Number(request[2]));
      const picked = await run(process.execPath, ['bin/drawbridge.js', 'access', 'credential', request[1]!], agent);
      assert.equal(picked.code, 0, picked.stderr);
      const credential = picked.stdout.split('\n')[0]!;

      const client = new pg.Client({ host: '127.0.0.1', port: gw.pgPort, user: 'etl-bot', database: 'shop', password: credential });
      await client.connect();
      // The FATAL that ends the session, then the socket's end: both are errors to pg.
      const ended = new Promise<Error & { code?: string }>((resolve) => client.on('error', resolve));
      assert.equal((await client.query('select count(*)::int as n from orders')).rows[0].n, 2);
      await assert.rejects(client.query('select * from refunds'), (e: Error & { code?: string }) => {
        assert.equal(e.code, '42501');
        assert.match(e.message, /blocked by policy "plan": select of refunds is outside the approved plan req_/);
        return true;
      });
      assert.equal((await client.query('select 1 as still')).rows[0].still, 1, 'the session goes on after a refusal');

      const finished = await run(process.execPath, ['bin/drawbridge.js', 'access', 'finish', request[1]!], agent);
      assert.equal(finished.code, 0, finished.stderr);
      assert.match(finished.stdout, /is done: grant grt_\S+ has ended/);
      await gw.gateway.pollRevocations();
      const fatal = await ended;
      assert.equal(fatal.code, '57P01');
      assert.match(fatal.message, new RegExp(`^terminating connection: access grant grt_\\S+ was revoked by etl-bot: plan ${request[1]} finished$`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('drawbridge mcp without a token, or with a gateway that is not there, says so', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'drawbridge-mcp-'));
    try {
      const none = await run(process.execPath, ['bin/drawbridge.js', 'mcp', '--gateway', api], { XDG_CONFIG_HOME: dir });
      assert.equal(none.code, 2);
      assert.match(none.stderr, /drawbridge mcp needs the agent token: set DRAWBRIDGE_TOKEN/);
      assert.equal(none.stdout, '', 'stdout is for MCP messages only');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const client = new Client({ name: 'stdio-agent', version: '1.0.0' });
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: ['bin/drawbridge.js', 'mcp', '--gateway', 'http://127.0.0.1:9'],
      env: { ...process.env, DRAWBRIDGE_TOKEN: key } as Record<string, string>,
      stderr: 'pipe',
    });
    await assert.rejects(client.connect(transport), /the gateway at http:\/\/127\.0\.0\.1:9 did not answer/);
    await client.close();
  });

  it('works over stdio with drawbridge mcp and the agent token', async () => {
    const client = new Client({ name: 'stdio-agent', version: '1.0.0' });
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: ['bin/drawbridge.js', 'mcp', '--gateway', api],
      env: { ...process.env, DRAWBRIDGE_TOKEN: key } as Record<string, string>,
      stderr: 'pipe',
    });
    let stderr = '';
    transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<void>((resolve) => (transport.onclose = resolve));
    await client.connect(transport);
    try {
      assert.equal((await call(client, 'request_access', { connection: 'shop', reason: 'stdio check' })).structuredContent?.['status'], 'granted');
      const read = await call(client, 'query', { connection: 'shop', sql: 'select email from orders where id = 2' });
      assert.match(text(read), /^email\n.+\n\(1 row\)$/);
      assert.ok(!text(read).includes(EMAILS[1]!));
    } finally {
      await client.close();
    }
    await exited;
    assert.equal(stderr, '', 'it ends quietly when the agent closes its stdin');
  });
});
