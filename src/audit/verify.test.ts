/**
 * Verification in parts gives the report one pass gives, whatever was done to the log: a SQLite
 * store's log of many batches, tampered with behind the store's back (a field edited, records
 * removed, swapped, duplicated, hashes dropped, batches reordered or made unreadable, the tail
 * cut), verified in one pass and split into 2 to 7 parts. And through real threads, each with a
 * connection of its own.
 */

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { DatabaseSync } from 'node:sqlite';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { FrozenClock } from '../core/index.ts';
import { openStore, type Store } from '../store/index.ts';
import { AuditCheckpoints, trustedKeys } from './checkpoints.ts';
import { auditRecords, verifyAuditLog, type AuditVerification } from './verify.ts';

interface BatchRow {
  first_seq: number;
  last_seq: number;
  first_at: number;
  last_at: number;
  last_hash: string | null;
  body: string;
}

const key = generateKeyPairSync('ed25519');
const trusted = trustedKeys([key.publicKey.export({ type: 'spki', format: 'pem' }).toString()]);

let dir: string;
let file: string;
let url: string;
let store: Store;
/** The log as written: many batches, a checkpoint in the middle and one at the head. */
let written: BatchRow[];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drawbridge-verify-'));
  file = join(dir, 'state.db');
  url = `sqlite:${file}`;
  store = await openStore(url);
  const checkpoints = new AuditCheckpoints(store, key.privateKey, new FrozenClock(Date.UTC(2026, 11, 5)));
  // Appends of 1 to 12 records: one batch each.
  for (let seq = 0, n = 0; seq < 150; n++) {
    const size = 1 + ((n * 7) % 12);
    await store.appendAudits(
      Array.from({ length: size }, (_, i) => ({
        at: Date.UTC(2026, 11, 5) + seq + i,
        actor: `user${(seq + i) % 3}`,
        action: 'command.allowed',
        subject: `ses_${n}`,
        outcome: 'success' as const,
        details: { connection: 'orders', seq: seq + i, statement: `select ${seq + i}` },
      })),
      { records: false },
    );
    seq += size;
    if (n === 8) await checkpoints.checkpoint();
  }
  await checkpoints.checkpoint();
  written = rows();
  assert.ok(written.length > 20, 'a log of many batches');
});
after(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** The batches, read behind the store's back. */
function rows(): BatchRow[] {
  const db = new DatabaseSync(file);
  try {
    return db
      .prepare('select first_seq, last_seq, first_at, last_at, last_hash, body from audit_batches order by first_seq')
      .all() as never;
  } finally {
    db.close();
  }
}

/** Puts `batches` in place of the log, behind the store's back. */
function replace(batches: readonly BatchRow[]): void {
  const db = new DatabaseSync(file);
  try {
    db.exec('begin');
    db.exec('delete from audit_batches');
    const insert = db.prepare(
      'insert into audit_batches (first_seq, last_seq, first_at, last_at, last_hash, body) values (?, ?, ?, ?, ?, ?)',
    );
    for (const b of batches) insert.run(b.first_seq, b.last_seq, b.first_at, b.last_at, b.last_hash, b.body);
    db.exec('commit');
  } finally {
    db.close();
  }
}

/** The report, or the error's message when verification throws. */
async function outcome(verify: () => Promise<AuditVerification>): Promise<AuditVerification | string> {
  try {
    return await verify();
  } catch (error) {
    return `throws: ${(error as Error).message}`;
  }
}

/** Batches as their records' tuples, which the tampering edits (a batch's first first_seq is its key). */
type Tuples = unknown[][][];

const tamper = fc.oneof(
  // A field of a record edited.
  fc.record({ kind: fc.constant('edit' as const), at: fc.nat(), field: fc.integer({ min: 1, max: 6 }) }),
  // A record removed, or put back elsewhere as well (duplicated), or two swapped.
  fc.record({ kind: fc.constant('remove' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat(), to: fc.nat() }),
  fc.record({ kind: fc.constant('swap' as const), at: fc.nat(), to: fc.nat() }),
  // A record's hash dropped; a batch made unreadable; two batches' keys swapped; the tail cut.
  fc.record({ kind: fc.constant('unhash' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('garble' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('reorder' as const), at: fc.nat(), to: fc.nat() }),
  fc.record({ kind: fc.constant('cut' as const), count: fc.integer({ min: 1, max: 40 }) }),
);
type Tamper = typeof tamper extends fc.Arbitrary<infer T> ? T : never;

/** The log after `changes`, as batch rows (their seq and time columns left as written but for a reorder). */
function tampered(changes: readonly Tamper[]): BatchRow[] {
  const batches = written.map((b) => ({ ...b }));
  const tuples: Tuples = batches.map((b) => JSON.parse(b.body) as unknown[][]);
  const places = () => tuples.flatMap((t, b) => t.map((_, i) => [b, i] as const));
  const place = (n: number) => {
    const all = places();
    return all.length === 0 ? undefined : all[n % all.length]!;
  };
  const garbled = new Set<number>();
  for (const c of changes) {
    switch (c.kind) {
      case 'edit': {
        const p = place(c.at);
        if (p) {
          const t = tuples[p[0]]![p[1]]!;
          t[c.field] = c.field === 1 ? (t[1] as number) + 1 : c.field === 6 ? { changed: true } : `${String(t[c.field])}!`;
        }
        break;
      }
      case 'remove': {
        const p = place(c.at);
        if (p) tuples[p[0]]!.splice(p[1], 1);
        break;
      }
      case 'duplicate':
      case 'swap': {
        const [p, q] = [place(c.at), place(c.to)];
        if (p && q) {
          const a = tuples[p[0]]![p[1]]!;
          if (c.kind === 'duplicate') tuples[q[0]]!.splice(q[1], 0, [...a]);
          else [tuples[p[0]]![p[1]], tuples[q[0]]![q[1]]] = [tuples[q[0]]![q[1]]!, a];
        }
        break;
      }
      case 'unhash': {
        const p = place(c.at);
        if (p) {
          const t = tuples[p[0]]![p[1]]!;
          t[t.length - 1] = null;
        }
        break;
      }
      case 'garble':
        garbled.add(c.at % batches.length);
        break;
      case 'reorder': {
        const [i, j] = [c.at % batches.length, c.to % batches.length];
        [batches[i]!.first_seq, batches[j]!.first_seq] = [batches[j]!.first_seq, batches[i]!.first_seq];
        break;
      }
      case 'cut': {
        for (let left = c.count; left > 0 && places().length > 0; left--) {
          const last = tuples.findLastIndex((t) => t.length > 0);
          tuples[last]!.pop();
        }
        break;
      }
    }
  }
  return batches.flatMap((b, i) =>
    tuples[i]!.length === 0 ? [] : [{ ...b, body: garbled.has(i) ? `${JSON.stringify(tuples[i])}]` : JSON.stringify(tuples[i]) }],
  );
}

describe('verifying the audit log in parts', () => {
  it('what was written verifies, in one pass and in parts on threads', async () => {
    const one = await verifyAuditLog(store, trusted);
    assert.equal(one.ok, true, JSON.stringify(one.problem));
    assert.equal(one.records, written.at(-1)!.last_seq);
    assert.equal(one.lastCheckpoint?.seq, written.at(-1)!.last_seq);
    // Each part on a thread of its own, which opens the store itself.
    assert.deepEqual(await verifyAuditLog(store, trusted, { threads: 3, url, splitFrom: 1 }), one);
    // Too short a log to split: one pass; on a thread of its own when asked (the gateway's API).
    assert.deepEqual(await verifyAuditLog(store, trusted, { threads: 3, url }), one);
    assert.deepEqual(await verifyAuditLog(store, trusted, { url, offThread: true }), one);
    // Threads that open another store (here, an empty one in memory) do not verify it: the parts are verified here.
    assert.deepEqual(await verifyAuditLog(store, trusted, { threads: 3, url: 'sqlite::memory:', splitFrom: 1 }), one);
    assert.deepEqual(await verifyAuditLog(store, trusted, { url: 'sqlite::memory:', offThread: true }), one);
  });

  it('gives the report one pass gives, whatever was done to the log', async () => {
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(tamper, { minLength: 1, maxLength: 3 }), fc.integer({ min: 2, max: 7 }), async (changes, threads) => {
          replace(tampered(changes));
          const one = await outcome(() => verifyAuditLog(store, trusted));
          const split = await outcome(() => verifyAuditLog(store, trusted, { threads, splitFrom: 1, partsOnThreads: false }));
          assert.deepEqual(split, one);
        }),
        { numRuns: 150 },
      );
    } finally {
      replace(written);
    }
  });

  it('finds what it is shown to find, in one pass and in parts on threads', async () => {
    const cases: { changes: Tamper[]; expect: RegExp }[] = [
      { changes: [{ kind: 'edit', at: 100, field: 2 }], expect: /^record 101 was changed after it was written/ },
      // A record put back after others, where a read of a page of records from the one before would skip it.
      { changes: [{ kind: 'duplicate', at: 4, to: 120 }], expect: /^record 5 comes after record 120$/ },
      { changes: [{ kind: 'remove', at: 60 }], expect: /^record 61 is missing \(the log goes from 60 to 62\)$/ },
      { changes: [{ kind: 'cut', count: 5 }], expect: /records were cut off the end$/ },
    ];
    try {
      for (const { changes, expect } of cases) {
        replace(tampered(changes));
        const one = await verifyAuditLog(store, trusted);
        assert.equal(one.ok, false);
        assert.match(one.problem!.message, expect);
        assert.deepEqual(await verifyAuditLog(store, trusted, { threads: 4, url, splitFrom: 1 }), one);
      }
      replace(tampered([{ kind: 'garble', at: 3 }]));
      await assert.rejects(verifyAuditLog(store, trusted), /is not readable JSON/);
      await assert.rejects(verifyAuditLog(store, trusted, { threads: 4, url, splitFrom: 1 }), /is not readable JSON/);
    } finally {
      replace(written);
    }
  });

  it('an export of a long log gives the event loop turns as it reads, every record once, in order', async () => {
    const own = await openStore(`sqlite:${join(dir, 'export.db')}`);
    try {
      const events = (from: number) =>
        Array.from({ length: 2_500 }, (_, i) => ({
          at: from + i,
          actor: 'alice',
          action: 'logout',
          subject: `ses_${from + i}`,
          outcome: 'success' as const,
          details: {},
        }));
      await own.appendAudits(events(0), { records: false });
      await own.appendAudits(events(2_500), { records: false });
      let turned = false;
      setImmediate(() => (turned = true));
      const seqs: number[] = [];
      let turnedBeforeTheEnd = false;
      for await (const r of auditRecords(own)) {
        seqs.push(r.seq);
        if (seqs.length === 4_900) turnedBeforeTheEnd = turned;
      }
      assert.ok(turnedBeforeTheEnd, 'the event loop had a turn before the export ended');
      assert.deepEqual(
        seqs,
        Array.from({ length: 5_000 }, (_, i) => i + 1),
      );
    } finally {
      await own.close();
    }
  });
});
