/**
 * Retention of recordings, end to end: sessions recorded through a real gateway (psql, a client
 * still connected) beside sessions seeded as months old, then `drawbridge sessions prune` run as
 * the local administrator from another process: the dry run deletes nothing, the run deletes what
 * is past the limit with its statements and keeps the live session and the recent ones, its one
 * `recording.deleted` event sits in a chain that `drawbridge audit verify` accepts, and the
 * gateway's own retention (the timer's run) does the same as `gateway`. Bad limits stop the start.
 */

import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import type { Store } from '../src/store/index.ts';
import { cli, run } from './support/cli.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { eventually, gatewayClient } from './support/pg-db.ts';

const DAY = 86_400_000;


/** A session as months of use leave it: started and ended `daysAgo`, with `statements` recorded statements. */
async function seedOld(store: Store, daysAgo: number, statements: number, principal = 'old-timer'): Promise<string> {
  const startedAt = Date.now() - daysAgo * DAY;
  const s = await store.startSession({
    protocol: 'postgres',
    principal,
    connection: 'local',
    grantId: 'grt_seeded',
    clientAddress: '10.0.0.9:40000',
    startedAt,
  });
  await store.insertStatements(
    Array.from({ length: statements }, (_, i) => ({
      sessionId: s.id,
      seq: i + 1,
      text: `select ${i} from customers`,
      startedAt: startedAt + i,
      durationMs: 1,
      rows: 1,
      outcome: 'ok' as const,
      result: { columns: ['email'], rows: [['a****@*******.com']], truncated: false },
    })),
  );
  await store.endSession(s.id, startedAt + 60_000, 'client closed');
  return s.id;
}

describe('drawbridge sessions prune', () => {
  let gw: TestGateway;
  let live: pg.Client;
  let liveId: string;
  let recentId: string;
  let oldIds: string[];
  let pruneConfig: string;

  before(async () => {
    gw = await startTestGateway();
    // A recent session, ended, with real statements.
    const credential = await gw.mint('alice', 'local');
    const psql = await run(
      'psql',
      [
        '-X',
        '-d',
        `host=127.0.0.1 port=${gw.pgPort} user=alice dbname=local sslmode=disable`,
        '-c',
        'select 41 + 1 as answer',
        '-c',
        'select 2',
      ],
      {
        PGPASSWORD: credential,
      },
    );
    assert.equal(psql.code, 0, psql.stderr);
    // A live session: connected through the whole test.
    live = await gatewayClient(gw, 'local', 'bob');
    await live.query('select 1');
    const store = gw.gateway.store;
    const sessions = await eventually(
      () => store.listSessions({}),
      (s) => s.some((x) => x.principal === 'alice' && x.endedAt !== undefined) && s.some((x) => x.principal === 'bob'),
    );
    recentId = sessions.find((s) => s.principal === 'alice')!.id;
    liveId = sessions.find((s) => s.principal === 'bob')!.id;
    await eventually(
      () => store.listStatements(recentId),
      (s) => s.length === 2,
    );
    oldIds = [await seedOld(store, 120, 30), await seedOld(store, 95, 10)];
    // Another session started long ago and never ended (a gateway that died, say): live to retention.
    const stale = await store.startSession({
      protocol: 'postgres',
      principal: 'ghost',
      connection: 'local',
      grantId: 'grt_seeded',
      clientAddress: '10.0.0.9:1',
      startedAt: Date.now() - 400 * DAY,
    });
    assert.ok(stale.id);
    // The administrator's copy of the gateway's config, with retention limits (the gateway itself runs none here).
    pruneConfig = join(gw.dir, 'prune.yaml');
    await writeFile(pruneConfig, `store: ${gw.config.store}\nrecording:\n  retention:\n    max_age: 90d\n`);
  });
  after(async () => {
    await live?.end().catch(() => {});
    await gw?.close();
  });

  test('without limits it refuses to guess: exit 2, naming the keys and --older-than', async () => {
    const r = await cli('sessions', 'prune', '--config', gw.configFile);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /nothing to prune by: .*drawbridge\.yaml sets neither recording\.retention\.max_age nor max_size .*give --older-than DURATION/,
    );
    const bad = await cli('sessions', 'prune', '--config', gw.configFile, '--older-than', 'ninety days');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--older-than: "ninety days" is not a duration/);
  });

  test('--dry-run says what would go and deletes nothing', async () => {
    const r = await cli('sessions', 'prune', '--config', pruneConfig, '--dry-run', '--json');
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.dryRun, true);
    assert.equal(report.sessions, 2);
    assert.equal(report.statements, 40);
    assert.equal(report.reason, 'max_age');
    for (const id of oldIds) assert.ok(await gw.gateway.store.getSession(id), `${id} is still there`);
    assert.deepEqual(await gw.gateway.store.listAudit({ action: 'recording.deleted' }), []);
  });

  test('deletes the ended sessions past max_age with their statements; live and recent ones stay; on record in a chain that verifies', async () => {
    const r = await cli('sessions', 'prune', '--config', pruneConfig);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^deleted 2 ended sessions \(40 statements, [\d.]+ KiB\) by max_age \(max_age 90d\): started from \d{4}-.*, ended up to \d{4}-/,
    );
    const store = gw.gateway.store;
    for (const id of oldIds) {
      assert.equal(await store.getSession(id), undefined);
      assert.deepEqual(await store.listStatements(id), []);
    }
    assert.equal((await store.listStatements(recentId)).length, 2);
    assert.equal((await store.getSession(liveId))?.endedAt, undefined);
    assert.ok((await store.listSessions({ principal: 'ghost' })).length === 1, 'a session that never ended is kept');

    const events = await store.listAudit({ action: 'recording.deleted' });
    assert.equal(events.length, 1);
    const [event] = events;
    assert.equal(event!.actor, 'local-admin');
    assert.equal(event!.subject, 'retention');
    assert.equal(event!.outcome, 'success');
    assert.deepEqual(
      { ...event!.details, bytes: typeof event!.details['bytes'], oldestStartedAt: typeof event!.details['oldestStartedAt'] },
      {
        sessions: 2,
        statements: 40,
        bytes: 'number',
        oldestStartedAt: 'number',
        newestEndedAt: event!.details['newestEndedAt'],
        reason: 'max_age',
        limits: { maxAgeMs: 90 * DAY },
      },
    );
    const verify = await cli('audit', 'verify', '--config', gw.configFile);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.match(verify.stdout, /^audit log verified: /);

    // Again: nothing left past the limit, nothing appended.
    const again = await cli('sessions', 'prune', '--config', pruneConfig);
    assert.match(again.stdout, /^nothing to delete: no ended session is past max_age 90d/);
    assert.equal((await store.listAudit({ action: 'recording.deleted' })).length, 1);
  });

  test('--older-than replaces the configured limits: the recent session goes, the live one stays', async () => {
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const r = await cli('sessions', 'prune', '--config', gw.configFile, '--older-than', '1s', '--json');
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.deepEqual([report.sessions, report.statements, report.reason, report.limits], [1, 2, 'max_age', { maxAgeMs: 1000 }]);
    assert.equal(await gw.gateway.store.getSession(recentId), undefined);
    // The live client still works, and its session is still recorded.
    assert.deepEqual((await live.query('select 2 as two')).rows, [{ two: 2 }]);
    assert.equal((await gw.gateway.store.getSession(liveId))?.endedAt, undefined);
    assert.equal((await cli('audit', 'verify', '--config', gw.configFile)).code, 0);
  });
});

describe('the gateway applies recording.retention itself', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startTestGateway({
      extraYaml: ['recording:', '  retention:', '    max_age: 30d', '    max_size: 1GiB', '    interval: 1h'],
    });
  });
  after(() => gw?.close());

  test('a run deletes what is past the limits, as gateway, and the gateway keeps serving', async () => {
    const store = gw.gateway.store;
    const old = await seedOld(store, 45, 3);
    const kept = await seedOld(store, 10, 3);
    const report = await gw.gateway.applyRetention();
    assert.ok(report);
    assert.deepEqual([report.sessions, report.statements, report.reason], [1, 3, 'max_age']);
    assert.equal(await store.getSession(old), undefined);
    assert.ok(await store.getSession(kept));
    const [event] = await store.listAudit({ action: 'recording.deleted' });
    assert.equal(event?.actor, 'gateway');
    assert.deepEqual(event?.details['limits'], { maxAgeMs: 30 * DAY, maxBytes: 1024 ** 3 });
    const client = await gatewayClient(gw, 'local', 'carol');
    assert.deepEqual((await client.query('select 1 as one')).rows, [{ one: 1 }]);
    await client.end();
  });
});

test('invalid retention limits stop the start with the file, line, path and reason', async () => {
  const gw = await startTestGateway();
  try {
    const bad = join(gw.dir, 'bad.yaml');
    await writeFile(bad, `store: ${gw.config.store}\nrecording:\n  retention:\n    max_age: 3 months\n    max_size: 10GB\n`);
    const r = await cli('start', '--config', bad);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /bad\.yaml:4:14: recording\.retention\.max_age: expected a duration from 1h to 36500d, such as 30d or 90d, got "3 months"/,
    );
    assert.match(r.stderr, /bad\.yaml:5:15: recording\.retention\.max_size: expected a size of at least 1MiB, .*got "10GB"/);
  } finally {
    await gw.close();
  }
});
