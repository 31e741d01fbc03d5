import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { GENESIS_HASH, recordHash } from '../audit/chain.ts';
import { AUDIT_BATCH_RECORDS, auditFields, chainInBatches, StatementDetails, unbatchAudits } from './audit-batches.ts';
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

const base: NewAuditEvent = { at: 0, actor: 'gateway', action: 'command.allowed', subject: 'ses_1', outcome: 'success', details: {} };

describe('audit batches', () => {
  it('records read back as they were appended, chained, their details as JSON gives them back; seqs, times and head beside', () => {
    fc.assert(
      fc.property(appended, ([head, events]) => {
        const { batches, records } = chainInBatches(head, auditFields(events), true);
        assert.equal(batches.length, 1);
        const [b] = batches;
        const read = unbatchAudits(b!.firstSeq, b!.body);
        // What the append says it wrote is what is read back.
        assert.deepEqual(read, records);
        // Only the first record says what it follows; the others follow the one before them.
        const tuples = JSON.parse(b!.body) as unknown[][];
        assert.deepEqual(
          tuples.map((t) => t.length),
          tuples.map((_, i) => (i === 0 ? 9 : 8)),
        );
        assert.equal(tuples[0]![7], head?.hash ?? GENESIS_HASH);
        // A batch with every record written whole (as stores before this one wrote them) reads the same.
        const whole = read.map((r) => [r.seq, r.at, r.actor, r.action, r.subject, r.outcome, r.details, r.prevHash, r.hash]);
        assert.deepEqual(unbatchAudits(b!.firstSeq, JSON.stringify(whole)), read);
        // The events, numbered after the head, their details as JSON gives them back.
        assert.deepEqual(
          read.map(({ prevHash: _p, hash: _h, ...r }) => r),
          events.map((e, i) => ({ ...e, seq: (head?.seq ?? 0) + i + 1, details: JSON.parse(JSON.stringify(e.details)) as unknown })),
        );
        // Chained after the head by the hash's own definition: the chain verifies from what is read.
        let prev = head?.hash ?? GENESIS_HASH;
        for (const r of read) {
          assert.equal(r.prevHash, prev);
          assert.equal(recordHash(r, prev), r.hash);
          prev = r.hash!;
        }
        assert.equal(b!.firstSeq, (head?.seq ?? 0) + 1);
        assert.equal(b!.lastSeq, (head?.seq ?? 0) + events.length);
        assert.equal(b!.firstAt, Math.min(...events.map((e) => e.at)));
        assert.equal(b!.lastAt, Math.max(...events.map((e) => e.at)));
        assert.equal(b!.lastHash, read.at(-1)!.hash);
      }),
    );
  });

  it("a statement's details, encoded where the batch is written, chain and read back as the same details as a plain record", () => {
    const statement = fc.record({ connection: text, seq: fc.nat(), statement: text }, { noNullPrototype: true });
    fc.assert(
      fc.property(appended, fc.array(fc.option(statement, { nil: undefined })), ([head, events], statements) => {
        // Some of the events a statement's record, its details given either way.
        const plain = events.map((e, i) => (statements[i] === undefined ? e : { ...e, details: statements[i] }));
        const given = plain.map((e, i) => {
          const s = statements[i];
          return s === undefined ? e : { ...e, details: new StatementDetails(s.connection, s.seq, s.statement) };
        });
        assert.deepEqual(chainInBatches(head, auditFields(given), true), chainInBatches(head, auditFields(plain), true));
      }),
    );
  });

  it(`at most ${AUDIT_BATCH_RECORDS} records to a batch, consecutive, none lost, chained across batches`, () => {
    const events: NewAuditEvent[] = Array.from({ length: 2 * AUDIT_BATCH_RECORDS + 3 }, (_, i) => ({
      at: 1_000 + i,
      actor: 'gateway',
      action: 'command.allowed',
      subject: `ses_${i % 7}`,
      outcome: 'success',
      details: { seq: i },
    }));
    const { batches, records } = chainInBatches(undefined, auditFields(events), false);
    assert.deepEqual(records, []);
    assert.deepEqual(
      batches.map((b) => [b.firstSeq, b.lastSeq]),
      [
        [1, AUDIT_BATCH_RECORDS],
        [AUDIT_BATCH_RECORDS + 1, 2 * AUDIT_BATCH_RECORDS],
        [2 * AUDIT_BATCH_RECORDS + 1, 2 * AUDIT_BATCH_RECORDS + 3],
      ],
    );
    const read = batches.flatMap((b) => unbatchAudits(b.firstSeq, b.body));
    assert.deepEqual(
      read.map((r) => r.seq),
      events.map((_, i) => i + 1),
    );
    let prev = GENESIS_HASH;
    for (const r of read) {
      assert.equal(recordHash(r, prev), r.hash, `record ${r.seq}`);
      prev = r.hash!;
    }
    assert.deepEqual(
      batches.map((b) => b.lastHash),
      [read[AUDIT_BATCH_RECORDS - 1]!.hash, read[2 * AUDIT_BATCH_RECORDS - 1]!.hash, read.at(-1)!.hash],
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

  it('a batch whose first record does not say what it follows is refused, naming it', () => {
    const { batches } = chainInBatches(undefined, auditFields([1, 2, 3].map((i) => ({ ...base, at: i }))), false);
    const [, ...rest] = JSON.parse(batches[0]!.body) as unknown[][];
    assert.throws(
      () => unbatchAudits(2, JSON.stringify(rest)),
      /the batch of audit records from record 2 on does not say what its first record follows/,
    );
  });
});
