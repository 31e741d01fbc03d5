/**
 * A session made with psql through the gateway (default policy pack, masking on), then read back
 * as an auditor does: `drawbridge sessions list | show | replay` on the gateway's store, and the
 * sessions API, with each statement's outcome in order, refusals named, and texts masked.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { accountToken, callApi } from './support/api.ts';
import { cli, run } from './support/cli.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { eventually } from './support/pg-db.ts';

let gw: TestGateway;
let sessionId: string;


before(async () => {
  gw = await startTestGateway({ policies: 'default-pack' });
  const credential = await gw.mint('alice', 'local');
  const conninfo = `host=127.0.0.1 port=${gw.pgPort} user=alice dbname=local sslmode=disable`;
  const psql = await run(
    'psql',
    [
      '-X',
      '-d',
      conninfo,
      '-c',
      'select 41 + 1 as answer',
      '-c',
      "select 'alice@example.com' as contact",
      '-c',
      'drop table pg_class',
      '-c',
      'select 1/0',
      '-c',
      "select g, repeat('x', 1000) as filler from generate_series(1, 200) g",
    ],
    { PGPASSWORD: credential },
  );
  assert.match(psql.stderr, /blocked by policy "no-destructive-ddl"/);
  const sessions = await eventually(
    () => gw.gateway.store.listSessions({ principal: 'alice' }),
    (s) => s.length === 1 && s[0]!.endedAt !== undefined,
  );
  sessionId = sessions[0]!.id;
  await eventually(
    () => gw.gateway.store.listStatements(sessionId),
    (s) => s.length === 5,
  );
});
after(() => gw?.close());

describe('drawbridge sessions', () => {
  test('list names the session, who, where and how it ended', async () => {
    const r = await cli('sessions', 'list', '--config', gw.configFile, '--principal', 'alice');
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /^SESSION +PRINCIPAL +CONNECTION +STARTED \(UTC\) +DURATION +END$/);
    assert.match(lines[1]!, new RegExp(`^${sessionId} +alice +local +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d +\\S+ +\\S`));
    const json = JSON.parse((await cli('sessions', 'list', '--config', gw.configFile, '--json')).stdout);
    assert.deepEqual(
      json.sessions.map((s: { id: string }) => s.id),
      [sessionId],
    );
  });

  test('show lists every statement with its outcome, rows and error; texts as recorded (masked)', async () => {
    const r = await cli('sessions', 'show', sessionId, '--config', gw.configFile);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^session ${sessionId}: alice on local \\(postgres\\) from 127\\.0\\.0\\.1:\\d+`));
    assert.match(r.stdout, /^1 +\+\d+\.\d{3}s +\d+\.\d ms +ok +1 +select 41 \+ 1 as answer/m);
    assert.match(r.stdout, /^2 .* ok +1 +select 'a\*+@\*+\.com' as contact/m);
    assert.match(r.stdout, /^3 .* denied +drop table pg_class +command.denied blocked by policy "no-destructive-ddl"/m);
    assert.match(r.stdout, /^4 .* error +select 1\/0 +22012 division by zero/m);
    assert.ok(!r.stdout.includes('alice@example.com'), 'the recording holds the masked text');
  });

  test('replay shows the session as its client saw it, in order', async () => {
    const r = await cli('sessions', 'replay', sessionId, '--config', gw.configFile);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    const prompts = lines.filter((l) => l.includes('alice@local=>')).map((l) => l.replace(/^\[\+[^\]]+\] alice@local=> /, ''));
    assert.deepEqual(prompts, [
      'select 41 + 1 as answer',
      "select 'a****@*******.com' as contact",
      'drop table pg_class',
      'select 1/0',
      "select g, repeat('x', 1000) as filler from generate_series(1, 200) g",
    ]);
    // What each statement returned, as the client got it: masked, the first rows of a long one.
    assert.match(r.stdout, /\| answer\n +\| 42\n/);
    assert.match(r.stdout, /\| contact\n +\| a\*{4}@\*{7}\.com\n/);
    assert.match(r.stdout, /\| \(5\d more rows recorded \(--rows\)\)\n +\| \(the recording keeps only the first part of the result\)/);
    assert.ok(!r.stdout.includes('alice@example.com'));
    assert.match(r.stdout, /REFUSED command.denied: blocked by policy "no-destructive-ddl"/);
    assert.match(r.stdout, /ERROR 22012: division by zero/);
    assert.match(lines.at(-2)!, /^-- ended \+\d+\.\d{3}s: /);
    assert.equal((await cli('sessions', 'replay', 'ses_nope', '--config', gw.configFile)).code, 1);
  });
});

describe('the sessions API', () => {
  test('an auditor reads any session and its statements; a user only their own', async () => {
    const api = `http://127.0.0.1:${gw.apiPort}`;
    const [auditor, bob] = [await accountToken(gw, 'audra', ['auditor']), await accountToken(gw, 'bob')];

    const listed = await callApi(api, 'GET', '/api/sessions?principal=alice&since=1d', auditor);
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.deepEqual(
      listed.body.sessions.map((s: { id: string }) => s.id),
      [sessionId],
    );
    const one = await callApi(api, 'GET', `/api/sessions/${sessionId}`, auditor);
    assert.equal(one.status, 200);
    assert.deepEqual(
      one.body.statements.map((s: { outcome: string; errorCode: string | null }) => [s.outcome, s.errorCode]),
      [
        ['ok', null],
        ['ok', null],
        ['denied', 'command.denied'],
        ['error', '22012'],
        ['ok', null],
      ],
    );
    assert.deepEqual(one.body.statements[1].result, { columns: ['contact'], rows: [['a****@*******.com']], truncated: false });
    const long = one.body.statements[4].result;
    assert.equal(long.truncated, true);
    assert.ok(long.rows.length >= 64 && long.rows.length < 70, String(long.rows.length));
    assert.equal(one.body.statements[2].result, null, 'a refused statement returned nothing');
    assert.equal(one.body.session.principal, 'alice');

    assert.deepEqual((await callApi(api, 'GET', '/api/sessions', bob)).body.sessions, []);
    assert.equal((await callApi(api, 'GET', `/api/sessions/${sessionId}`, bob)).status, 404);
    assert.equal((await callApi(api, 'GET', '/api/sessions?principal=alice', bob)).status, 403);
  });
});

test('recording: enabled: false keeps no session nor statement, and the audit log still has the session', async () => {
  const { gatewayClient } = await import('./support/pg-db.ts');
  const quiet = await startTestGateway({ extraYaml: ['recording:', '  enabled: false'] });
  try {
    const client = await gatewayClient(quiet, 'local', 'carol');
    await client.query('select 1');
    await client.end();
    const started = await eventually(
      () => quiet.gateway.store.listAudit({ action: 'session.ended', limit: 100 }),
      (events) => events.some((e) => e.actor === 'carol'),
    );
    assert.ok(
      started.some((e) => e.actor === 'carol'),
      'session.ended is on record',
    );
    assert.deepEqual(await quiet.gateway.store.listSessions({}), []);
  } finally {
    await quiet.close();
  }
});
