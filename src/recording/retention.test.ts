/**
 * Retention against a real SQLite store in a temporary folder, with a frozen clock: what goes by
 * age, by size and by both, what stays (live sessions, the audit log), the one audit event per run
 * and its chain, batches, dry runs, and a store that fails (the run stops on record; the gateway's
 * timer logs it and tries again at the next interval).
 */

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, mock, test } from 'node:test';
import type { Logger } from 'pino';
import { StoreAuditLog } from '../audit/audit-log.ts';
import { verifyAuditLog } from '../audit/verify.ts';
import { FrozenClock } from '../core/clock.ts';
import { openStore, type NewStatement, type Store } from '../store/index.ts';
import { batchStatements, statementFields } from '../store/statement-batches.ts';
import { applyRetention, describeLimits, formatBytes, RecordingRetention } from './retention.ts';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 5, 1);

let dir: string;
let store: Store;
let clock: FrozenClock;
let audit: StoreAuditLog;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drawbridge-retention-'));
  store = await openStore(`sqlite:${join(dir, 'state.db')}`);
  clock = new FrozenClock(NOW);
  audit = new StoreAuditLog(store, clock);
});
afterEach(async () => {
  await audit.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** A session that started `startedAt`, ran `statements` statements of `textBytes` bytes each, and ended at `endedAt` (live when undefined). */
async function seed(startedAt: number, endedAt: number | undefined, statements = 1, textBytes = 100): Promise<string> {
  const s = await store.startSession({
    protocol: 'postgres',
    principal: 'alice',
    connection: 'orders',
    grantId: 'grt_x',
    clientAddress: '127.0.0.1:1',
    startedAt,
  });
  await store.insertStatements(statementsOf(s.id, startedAt, statements, textBytes));
  if (endedAt !== undefined) await store.endSession(s.id, endedAt, 'client closed');
  return s.id;
}

function statementsOf(sessionId: string, startedAt: number, statements: number, textBytes: number): NewStatement[] {
  return Array.from({ length: statements }, (_, i) => ({
    sessionId,
    seq: i + 1,
    text: 'x'.repeat(textBytes),
    startedAt,
    durationMs: 1,
    outcome: 'ok' as const,
  }));
}

/** The store, with some methods replaced (a spy, a failure). */
function replacing(overrides: Partial<Store>): Store {
  return new Proxy(store, {
    get(target, key) {
      if (key in overrides) return overrides[key as keyof Store];
      const value: unknown = Reflect.get(target, key);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** What `seed` records for sessions of these many statements, in bytes: a batch each (every start here has as many digits as NOW). */
const bytesOf = (...sessions: number[]) =>
  sessions.reduce((sum, n) => sum + (n === 0 ? 0 : batchStatements(statementFields(statementsOf('ses_x', NOW, n, 100)))[0]!.bytes), 0);
const remaining = async () => (await store.listSessions({ limit: 1000 })).map((s) => s.id).sort();
const deletions = () => store.listAudit({ action: 'recording.deleted' });

test('no limit: nothing is deleted and nothing is appended (recordings are kept forever)', async () => {
  const old = await seed(NOW - 1000 * DAY, NOW - 999 * DAY);
  const report = await applyRetention(store, audit, clock, {}, { actor: 'gateway' });
  assert.equal(report.sessions, 0);
  assert.equal(report.reason, undefined);
  assert.deepEqual(await remaining(), [old]);
  assert.deepEqual(await deletions(), []);
});

test('max_age: sessions that ended before the cutoff go with their statements; live and younger ones stay; one audit event', async () => {
  const a = await seed(NOW - 100 * DAY, NOW - 95 * DAY, 3);
  const b = await seed(NOW - 92 * DAY, NOW - 91 * DAY, 2);
  const young = await seed(NOW - 89 * DAY, NOW - 89 * DAY, 1);
  const live = await seed(NOW - 400 * DAY, undefined, 4); // started long ago, still connected
  const report = await applyRetention(store, audit, clock, { maxAgeMs: 90 * DAY }, { actor: 'gateway' });
  assert.deepEqual(
    { ...report, usage: undefined },
    {
      dryRun: false,
      at: NOW,
      limits: { maxAgeMs: 90 * DAY },
      reason: 'max_age',
      sessions: 2,
      statements: 5,
      bytes: bytesOf(3, 2),
      oldestStartedAt: NOW - 100 * DAY,
      newestEndedAt: NOW - 91 * DAY,
      usage: undefined,
      stillOverLimit: false,
    },
  );
  assert.deepEqual(await remaining(), [young, live].sort());
  assert.deepEqual(await store.listStatements(a), []);
  assert.deepEqual(await store.listStatements(b), []);
  assert.equal((await store.listStatements(live)).length, 4);

  const events = await deletions();
  assert.equal(events.length, 1);
  assert.deepEqual(
    { actor: events[0]!.actor, subject: events[0]!.subject, outcome: events[0]!.outcome, at: events[0]!.at, details: events[0]!.details },
    {
      actor: 'gateway',
      subject: 'retention',
      outcome: 'success',
      at: NOW,
      details: {
        sessions: 2,
        statements: 5,
        bytes: bytesOf(3, 2),
        oldestStartedAt: NOW - 100 * DAY,
        newestEndedAt: NOW - 91 * DAY,
        reason: 'max_age',
        limits: { maxAgeMs: 90 * DAY },
      },
    },
  );
  const verified = await verifyAuditLog(store, new Map());
  assert.equal(verified.ok, true, JSON.stringify(verified.problem));

  // Nothing more to delete: no second event.
  await applyRetention(store, audit, clock, { maxAgeMs: 90 * DAY }, { actor: 'gateway' });
  assert.equal((await deletions()).length, 1);
  // A day later the young one is past the limit too.
  clock.advance(2 * DAY);
  const later = await applyRetention(store, audit, clock, { maxAgeMs: 90 * DAY }, { actor: 'gateway' });
  assert.equal(later.sessions, 1);
  assert.deepEqual(await remaining(), [live]);
});

test('max_size: the oldest ended sessions go until the recordings fit; a live one stays even when it is the oldest', async () => {
  const live = await seed(NOW - 50 * DAY, undefined, 10);
  const first = await seed(NOW - 40 * DAY, NOW - 30 * DAY, 10);
  const second = await seed(NOW - 40 * DAY, NOW - 20 * DAY, 10);
  const third = await seed(NOW - 40 * DAY, NOW - 10 * DAY, 10);
  const total = bytesOf(10, 10, 10, 10);
  assert.equal((await store.recordingUsage()).bytes, total);
  // Room for three sessions' worth minus a byte: one ended session is not enough, two are.
  const limit = bytesOf(10, 10, 10) - 1;
  const report = await applyRetention(store, audit, clock, { maxBytes: limit }, { actor: 'gateway' });
  assert.equal(report.reason, 'max_size');
  assert.equal(report.sessions, 2);
  assert.equal(report.bytes, bytesOf(10, 10));
  assert.deepEqual(report.usage, { sessions: 4, statements: 40, bytes: total });
  assert.equal(report.stillOverLimit, false);
  assert.deepEqual(await remaining(), [live, third].sort());
  assert.ok((await store.recordingUsage()).bytes <= limit);
  assert.equal((await deletions())[0]!.details['reason'], 'max_size');
  assert.deepEqual([await store.getSession(first), await store.getSession(second)], [undefined, undefined]);

  // Under the limit: nothing goes.
  const again = await applyRetention(store, audit, clock, { maxBytes: limit }, { actor: 'gateway' });
  assert.equal(again.sessions, 0);
  assert.equal((await deletions()).length, 1);

  // The live session alone is over the limit: every ended one goes, the live one stays, and the report says so.
  const tight = await applyRetention(store, audit, clock, { maxBytes: bytesOf(5) }, { actor: 'gateway' });
  assert.equal(tight.sessions, 1);
  assert.equal(tight.stillOverLimit, true);
  assert.deepEqual(await remaining(), [live]);
});

test('both limits: the run deletes what either asks for, one event naming the limit that reached further', async () => {
  await seed(NOW - 100 * DAY, NOW - 100 * DAY, 10);
  await seed(NOW - 99 * DAY, NOW - 99 * DAY, 10);
  await seed(NOW - 50 * DAY, NOW - 50 * DAY, 10);
  const recent = await seed(NOW - 1 * DAY, NOW - 1 * DAY, 10);
  // Age takes two; the size limit is already met once those two go: reason max_age.
  const byAge = await applyRetention(
    store,
    audit,
    clock,
    { maxAgeMs: 90 * DAY, maxBytes: bytesOf(10, 10, 10) },
    { actor: 'gateway', dryRun: true },
  );
  assert.deepEqual([byAge.reason, byAge.sessions], ['max_age', 2]);
  // Age takes two; the size limit wants three: reason max_size, three go.
  const bySize = await applyRetention(store, audit, clock, { maxAgeMs: 90 * DAY, maxBytes: bytesOf(15) }, { actor: 'gateway' });
  assert.deepEqual([bySize.reason, bySize.sessions, bySize.statements], ['max_size', 3, 30]);
  assert.deepEqual(await remaining(), [recent]);
  const events = await deletions();
  assert.equal(events.length, 1);
  assert.deepEqual(events[0]!.details['limits'], { maxAgeMs: 90 * DAY, maxBytes: bytesOf(15) });
});

test('dry run: says what would go, deletes nothing, appends nothing', async () => {
  await seed(NOW - 100 * DAY, NOW - 95 * DAY, 2);
  const before = await remaining();
  const report = await applyRetention(store, audit, clock, { maxAgeMs: 30 * DAY }, { actor: 'local-admin', dryRun: true });
  assert.deepEqual([report.dryRun, report.sessions, report.statements, report.bytes, report.reason], [true, 1, 2, bytesOf(2), 'max_age']);
  assert.deepEqual(await remaining(), before);
  assert.deepEqual(await deletions(), []);
});

test('a large backlog goes in batches of bounded size, one transaction each, and one audit event for the run', async () => {
  const ended = NOW - 200 * DAY;
  for (let i = 0; i < 1234; i++)
    await store.startSession({
      protocol: 'postgres',
      principal: 'bot',
      connection: 'orders',
      grantId: 'g',
      clientAddress: 'x',
      startedAt: ended - i,
    });
  for (const s of await store.listSessions({ limit: 2000 })) await store.endSession(s.id, ended, 'done');
  const live = await seed(NOW - 300 * DAY, undefined);
  const batches: number[] = [];
  const spied = replacing({ deleteRecordings: (ids) => (batches.push(ids.length), store.deleteRecordings(ids)) });
  const report = await applyRetention(spied, audit, clock, { maxAgeMs: 90 * DAY }, { actor: 'gateway', batchSize: 500 });
  assert.equal(report.sessions, 1234);
  assert.deepEqual(batches, [500, 500, 234]);
  assert.deepEqual(await remaining(), [live]);
  assert.equal((await deletions()).length, 1);
});

test('a store that fails mid-run: what went before is on record, with the error, and the run rejects', async () => {
  for (let i = 0; i < 5; i++) await seed(NOW - 100 * DAY, NOW - 100 * DAY + i);
  let calls = 0;
  const failing = replacing({
    deleteRecordings: (ids) => (++calls === 2 ? Promise.reject(new Error('disk I/O error')) : store.deleteRecordings(ids)),
  });
  await assert.rejects(
    applyRetention(failing, audit, clock, { maxAgeMs: 90 * DAY }, { actor: 'gateway', batchSize: 2 }),
    /disk I\/O error/,
  );
  assert.equal((await remaining()).length, 3);
  const events = await deletions();
  assert.equal(events.length, 1);
  assert.equal(events[0]!.details['sessions'], 2);
  assert.match(String(events[0]!.details['error']), /the run stopped before it was done: disk I\/O error/);
});

test('the gateway timer: first run shortly after start, a failed run is logged and the next one still comes; stop ends it', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const old = await seed(NOW - 100 * DAY, NOW - 100 * DAY);
  const logs: [string, string][] = [];
  const log = {
    info: (_: unknown, msg: string) => logs.push(['info', msg]),
    warn: (_: unknown, msg: string) => logs.push(['warn', msg]),
    error: (_: unknown, msg: string) => logs.push(['error', msg]),
  } as unknown as Logger;
  let failures = 1;
  const flaky = replacing({
    listEndedSessions: (q) => (failures-- > 0 ? Promise.reject(new Error('database is locked')) : store.listEndedSessions(q)),
  });
  const retention = new RecordingRetention(
    flaky,
    audit,
    clock,
    log,
    { maxAgeMs: 90 * DAY, intervalMs: 3_600_000 },
    { firstDelayMs: 30_000 },
  );
  retention.start();
  assert.match(logs[0]![1], /recordings are kept within max_age 90d, checked every 1h/);

  const until = async (what: () => boolean) => {
    for (let i = 0; i < 1000 && !what(); i++) {
      audit.commit(); // its commit delay is a timer too, and the timers are mocked
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(what(), JSON.stringify(logs));
  };
  t.mock.timers.tick(29_999);
  await new Promise((r) => setImmediate(r));
  assert.equal(logs.length, 1, 'not before the first delay');
  t.mock.timers.tick(1);
  await until(() => logs.some(([level]) => level === 'error'));
  assert.match(logs.find(([level]) => level === 'error')![1], /recording retention failed; it runs again at the next interval/);
  assert.deepEqual(await remaining(), [old]);

  t.mock.timers.tick(3_600_000);
  await until(() => logs.some(([, msg]) => /retention deleted 1 ended session/.test(msg)));
  assert.deepEqual(await remaining(), []);
  await retention.stop();
  assert.equal((await deletions()).length, 1);
});

test('a store with no limits starts no timer', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const log = { info: () => assert.fail('nothing to say') } as unknown as Logger;
  const retention = new RecordingRetention(store, audit, clock, log, { intervalMs: 3_600_000 });
  retention.start();
  t.mock.timers.tick(10 * 3_600_000);
  await retention.stop();
});

test('sizes and limits read as people write them', () => {
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(10 * 1024 ** 3), '10 GiB');
  assert.equal(formatBytes(1024 ** 2), '1 MiB');
  assert.equal(describeLimits({ maxAgeMs: 90 * DAY, maxBytes: 10 * 1024 ** 3 }), 'max_age 90d, max_size 10 GiB');
  assert.equal(describeLimits({}), '');
});
