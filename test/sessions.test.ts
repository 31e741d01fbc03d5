/**
 * A session made with psql through the gateway (default policy pack, masking on), then read back
 * as an auditor does: `drawbridge sessions list | show | replay` on the gateway's store, and the
 * sessions API, with each statement's outcome in order, refusals named, and texts masked.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openStore } from '../src/store/index.ts';
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

  test('a session of 100,000 statements is shown and replayed in a heap of 96 MB, to a reader that falls behind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'drawbridge-long-session-'));
    try {
      const store = await openStore(`sqlite:${join(dir, 'state.db')}`);
      const startedAt = Date.parse('2026-12-01T09:00:00Z');
      const count = 100_000;
      try {
        await store.startSession({
          id: 'ses_long',
          protocol: 'postgres',
          principal: 'etl-bot',
          connection: 'orders',
          grantId: 'grt_long',
          clientAddress: '127.0.0.1:5000',
          startedAt,
        });
        for (let from = 1; from <= count; from += 500) {
          await store.insertStatements(
            Array.from({ length: 500 }, (_, i) => ({
              sessionId: 'ses_long',
              seq: from + i,
              text: `select balance from accounts where id = ${from + i}`,
              startedAt: startedAt + from + i,
              durationMs: 0.5,
              rows: 1,
              outcome: 'ok' as const,
              result: { columns: ['balance'], rows: [[String(from + i)]], truncated: false },
            })),
          );
        }
        await store.endSession('ses_long', startedAt + 200_000, 'client terminated');
      } finally {
        await store.close();
      }
      const config = join(dir, 'drawbridge.yaml');
      await writeFile(config, `store: sqlite:${join(dir, 'state.db')}\nconnections: []\n`);
      const read = async (...args: string[]): Promise<string> => {
        const child = spawn(process.execPath, ['--max-old-space-size=96', 'bin/drawbridge.js', 'sessions', ...args, '--config', config], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stderr = '';
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        // A reader that takes nothing for a while: the pipe fills, and the command must wait for it.
        child.stdout.pause();
        await new Promise((resolve) => setTimeout(resolve, 500));
        const chunks: Buffer[] = [];
        child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
        child.stdout.resume();
        const [code] = (await once(child, 'close')) as [number | null];
        assert.equal(code, 0, stderr);
        return Buffer.concat(chunks).toString();
      };
      const json = JSON.parse(await read('show', 'ses_long', '--json')) as { session: { id: string }; statements: { seq: number }[] };
      assert.equal(json.session.id, 'ses_long');
      assert.deepEqual(
        json.statements.map((s) => s.seq),
        Array.from({ length: count }, (_, i) => i + 1),
      );
      const replay = (await read('replay', 'ses_long', '--no-pager')).trimEnd().split('\n');
      assert.equal(replay.filter((l) => / etl-bot@orders=> select balance/.test(l)).length, count);
      assert.match(replay.at(-5)!, /etl-bot@orders=> select balance from accounts where id = 100000$/);
      assert.match(replay.at(-2)!, /\| 100000$/);
      assert.match(replay.at(-1)!, /^-- ended \+3m20\.000s: client terminated/);
      const table = (await read('show', 'ses_long', '--no-pager')).trimEnd().split('\n');
      assert.match(table.at(-1)!, /^100000 +\+1m40\.000s +0\.5 ms +ok +1 +select balance from accounts where id = 100000$/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
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
    assert.equal(one.body.next, null);

    // A page at a time, by seq: two, two, then the last one, and nothing read twice.
    const seqs: number[] = [];
    for (let after: number | null | undefined; after !== null;) {
      const page = await callApi(api, 'GET', `/api/sessions/${sessionId}?limit=2${after === undefined ? '' : `&after=${after}`}`, auditor);
      assert.equal(page.status, 200, JSON.stringify(page.body));
      assert.ok(page.body.statements.length > 0 && page.body.statements.length <= 2);
      seqs.push(...page.body.statements.map((s: { seq: number }) => s.seq));
      after = page.body.next;
    }
    assert.deepEqual(seqs, [1, 2, 3, 4, 5]);
    assert.equal((await callApi(api, 'GET', `/api/sessions/${sessionId}?after=5`, auditor)).body.statements.length, 0);
    assert.equal((await callApi(api, 'GET', `/api/sessions/${sessionId}?after=two`, auditor)).status, 400);

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
