import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { chainAfter, encodeEvent, GENESIS_HASH, recordHash } from '../audit/chain.ts';
import { AUDIT_BATCH_RECORDS, batchAudits, unbatchAudits } from './audit-batches.ts';
import type { NewAuditEvent } from './store.ts';

const text = fc.string({ unit: 'binary', maxLength: 30 });
const json = fc.jsonValue({ maxDepth: 2 });
const event = fc.record(
  {
    at: fc.integer({ min: 0, max: 2 ** 45 }),
    actor: text,
    action: text,
    subject: text,
    outcome: fc.constantFrom('success' as const, 'failure' as const),
    details: fc.dictionary(text, json, { maxKeys: 4, noNullPrototype: true }),
  },
  { noNullPrototype: true },
);

/** Events chained after a head, as a store appends them. */
const appended = fc.tuple(
  fc.option(fc.record({ seq: fc.nat({ max: 10_000 }), hash: fc.stringMatching(/^[0-9a-f]{64}$/) }), { nil: undefined }),
  fc.array(event, { minLength: 1, maxLength: 40 }),
);

describe('audit batches', () => {
  it('records read back as they were appended, chained, their details as JSON gives them back; seqs, times and head beside', () => {
    fc.assert(
      fc.property(appended, ([head, events]) => {
        const chained = chainAfter(head, events.map(encodeEvent));
        const batches = batchAudits(chained);
        assert.equal(batches.length, 1);
        const [b] = batches;
        const read = unbatchAudits(b!.firstSeq, b!.body);
        assert.deepEqual(
          read,
          chained.map((c) => ({
            seq: c.seq,
            ...events[c.seq - (head?.seq ?? 0) - 1]!,
            details: JSON.parse(c.event.detailsJson) as unknown,
            prevHash: c.prevHash,
            hash: c.hash,
          })),
        );
        // What the hash covers survives the trip: the chain verifies from what is read.
        let prev = head?.hash ?? GENESIS_HASH;
        for (const r of read) {
          assert.equal(recordHash(r, prev), r.hash);
          prev = r.hash!;
        }
        assert.equal(b!.firstSeq, (head?.seq ?? 0) + 1);
        assert.equal(b!.lastSeq, (head?.seq ?? 0) + events.length);
        assert.equal(b!.firstAt, Math.min(...events.map((e) => e.at)));
        assert.equal(b!.lastAt, Math.max(...events.map((e) => e.at)));
        assert.equal(b!.lastHash, chained.at(-1)!.hash);
      }),
    );
  });

  it(`at most ${AUDIT_BATCH_RECORDS} records to a batch, consecutive, none lost`, () => {
    const events: NewAuditEvent[] = Array.from({ length: 2 * AUDIT_BATCH_RECORDS + 3 }, (_, i) => ({
      at: 1_000 + i,
      actor: 'gateway',
      action: 'command.allowed',
      subject: `ses_${i % 7}`,
      outcome: 'success',
      details: { seq: i },
    }));
    const batches = batchAudits(chainAfter(undefined, events.map(encodeEvent)));
    assert.deepEqual(
      batches.map((b) => [b.firstSeq, b.lastSeq]),
      [
        [1, AUDIT_BATCH_RECORDS],
        [AUDIT_BATCH_RECORDS + 1, 2 * AUDIT_BATCH_RECORDS],
        [2 * AUDIT_BATCH_RECORDS + 1, 2 * AUDIT_BATCH_RECORDS + 3],
      ],
    );
    const seqs = batches.flatMap((b) => unbatchAudits(b.firstSeq, b.body).map((r) => r.seq));
    assert.deepEqual(
      seqs,
      events.map((_, i) => i + 1),
    );
  });

  it('a batch that is not a list of records is refused, naming it', () => {
    for (const body of ['{"seq":1}', '[1,2]', 'not json', '']) {
      assert.throws(
        () => unbatchAudits(41, body),
        /the batch of audit records from record 41 on (is not readable JSON|does not hold a list of records)/,
      );
    }
  });
});
