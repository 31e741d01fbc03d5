import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChainVerifier } from '../audit/chain.ts';
import { openStore, StatementDetails, StoreConflictError, type NewAuditEvent, type NewStatement, type Store } from './index.ts';
import { openDatabase, type HotWrites } from './sqlite.ts';
import { CHECKPOINT_EVERY_MS, startWriterThread } from './writer-thread.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drawbridge-writer-thread-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const event = (i: number): NewAuditEvent => ({
  at: 1_700_000_000_000 + i,
  actor: 'a',
  action: 'command.allowed',
  subject: `ses_${i % 7}`,
  outcome: 'success',
  details: { seq: i, statement: `SELECT ${i}`, when: new Date(i), skipped: undefined },
});

async function appendMany(store: Store, n: number, from = 0): Promise<void> {
  for (let i = from; i < from + n; i += 500) await store.appendAudits(Array.from({ length: 500 }, (_, j) => event(i + j)));
}

async function verify(store: Store): Promise<ChainVerifier> {
  const v = new ChainVerifier();
  for (const r of await store.listAudit({ limit: 100_000 })) v.push(r);
  return v;
}

describe('the store writer thread', () => {
  it('appends to the audit chain as the store itself does: numbered, chained, returned as read back, verifiable', async () => {
    const file = join(dir, 'chain.db');
    const store = await openStore(`sqlite:${file}`, { writerThread: true, onWriterThreadFailure: (e) => assert.fail(String(e)) });
    try {
      // From the store's own connection and from the thread, interleaved: one chain.
      const first = await store.appendAudit(event(0));
      const batch = await store.appendAudits([event(1), event(2)]);
      assert.deepEqual(
        batch.map((r) => r.seq),
        [first.seq + 1, first.seq + 2],
      );
      assert.equal(batch[0]!.prevHash, first.hash);
      const read = await store.listAudit({ afterSeq: first.seq, limit: 2 });
      assert.deepEqual(batch, read);
      assert.deepEqual(read[0]!.details, { seq: 1, statement: 'SELECT 1', when: new Date(1).toISOString() });
      // A caller that needs no records gets none back, and the records are written all the same.
      assert.deepEqual(await store.appendAudits([event(3)], { records: false }), []);
      assert.equal((await store.auditHead())?.seq, first.seq + 3);
      // A statement's details cross as their fields and are encoded on the thread: read back plain, chained like any.
      const statement = `SELECT 'é', "x" -- \\ \u2028`;
      const [allowed] = await store.appendAudits([{ ...event(4), details: new StatementDetails('shop', 4, statement) }]);
      assert.deepEqual(allowed!.details, { connection: 'shop', seq: 4, statement });
      assert.deepEqual(await store.listAudit({ afterSeq: first.seq + 3, limit: 1 }), [allowed]);
      await appendMany(store, 1000, 5);
      const v = await verify(store);
      assert.equal(v.broken, undefined);
      assert.equal(v.records, 1005);
    } finally {
      await store.close();
    }
  });

  it("records statements, and a statement already recorded is the store's conflict error, as on its own connection", async () => {
    const store = await openStore(`sqlite:${join(dir, 'statements.db')}`, { writerThread: true });
    try {
      const session = await store.startSession({
        protocol: 'postgres',
        principal: 'p',
        connection: 'c',
        grantId: 'g',
        clientAddress: '127.0.0.1',
        startedAt: 1,
      });
      const row = (seq: number): NewStatement => ({
        sessionId: session.id,
        seq,
        text: `SELECT ${seq}`,
        startedAt: 2,
        durationMs: 0.5,
        outcome: 'ok',
        rows: 1,
      });
      const result = { columns: ['a'], rows: [['1 "one"']], truncated: false };
      await store.insertStatements([{ ...row(1), result }, row(2)]);
      await assert.rejects(store.insertStatements([row(2)]), StoreConflictError);
      assert.deepEqual(
        (await store.listStatements(session.id)).map((s) => [s.text, s.result]),
        [
          ['SELECT 1', result],
          ['SELECT 2', undefined],
        ],
      );
    } finally {
      await store.close();
    }
  });

  it("copies the log into the database while the store's own connection does not", async () => {
    const file = join(dir, 'checkpoints.db');
    const store = await openStore(`sqlite:${file}`, { writerThread: true });
    try {
      const size = (await stat(file)).size;
      await appendMany(store, 5000); // well past SQLite's 1,000 pages: a connection of its own would have checkpointed in a commit
      assert.equal((await stat(file)).size, size, 'the database file grew in a commit: a commit checkpointed');
      await sleep(CHECKPOINT_EVERY_MS * 2);
      assert.ok((await stat(file)).size > size, 'the database file did not grow: nothing was checkpointed');
      // The log starts over once it is all in the database, so it stops growing.
      const wal = (await stat(`${file}-wal`)).size;
      await appendMany(store, 500, 5000);
      assert.ok((await stat(`${file}-wal`)).size <= wal, 'the log grew past a checkpointed size');
    } finally {
      await store.close();
    }
  });

  it('stops with the store, which closes as it always has: the log folded in and removed', async () => {
    const file = join(dir, 'closing.db');
    const store = await openStore(`sqlite:${file}`, { writerThread: true });
    await appendMany(store, 1000);
    await store.close();
    await assert.rejects(stat(`${file}-wal`), { code: 'ENOENT' });
    const reopened = await openStore(`sqlite:${file}`);
    assert.equal((await verify(reopened)).records, 1000);
    await reopened.close();
  });

  it('when the thread cannot open the store, says why, and the writes run on the connection, which checkpoints again', async () => {
    const db = openDatabase(':memory:');
    const calls: string[] = [];
    const fallback: HotWrites = {
      statements: async () => void calls.push('statements'),
      audits: async () => (calls.push('audits'), []),
    };
    let failed: (error: unknown) => void = () => {};
    const failure = new Promise<unknown>((resolve) => (failed = resolve));
    const thread = startWriterThread(db, dir /* a folder, not a database */, fallback, failed);
    assert.match(String(await failure), /EISDIR/);
    assert.equal((db.prepare('PRAGMA wal_autocheckpoint').get() as { wal_autocheckpoint: number }).wal_autocheckpoint, 1000);
    await thread.audits([event(1)]);
    await thread.statements([]);
    assert.deepEqual(calls, ['audits', 'statements']);
    await thread.stop();
    db.close();
  });
});
