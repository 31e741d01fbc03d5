import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BATCH_ROW_BYTES, batchStatements, SEQ_TAKEN, statementFields, unbatchStatements } from './statement-batches.ts';
import type { NewStatement, StatementRecord } from './store.ts';

const outcome = fc.constantFrom('ok' as const, 'error' as const, 'denied' as const, 'cancelled' as const);
const text = fc.string({ unit: 'binary', maxLength: 40 });
const result = fc.record(
  {
    columns: fc.array(text, { maxLength: 3 }),
    rows: fc.array(fc.array(fc.option(text, { nil: null }), { maxLength: 3 }), { maxLength: 3 }),
    truncated: fc.boolean(),
  },
  { noNullPrototype: true },
);
/** The statements of a few sessions, each seq once per session, in any order. */
const statements = fc
  .array(
    fc.record(
      {
        sessionId: fc.constantFrom('ses_a', 'ses_b', 'ses_c'),
        text,
        startedAt: fc.integer({ min: 0, max: 2 ** 42 }),
        durationMs: fc.double({ min: 0, max: 1e6, noNaN: true }),
        rows: fc.option(fc.nat(), { nil: undefined }),
        outcome,
        errorCode: fc.option(fc.string({ maxLength: 5 }), { nil: undefined }),
        errorMessage: fc.option(text, { nil: undefined }),
        result: fc.option(result, { nil: undefined }),
      },
      { noNullPrototype: true },
    ),
    { maxLength: 30 },
  )
  .chain((rows) =>
    fc.shuffledSubarray(
      rows.map((r, seq) => ({ ...r, seq: seq + 1 }) as NewStatement),
      { minLength: rows.length },
    ),
  );

/** What reading a statement back gives: absent fields undefined, -0 as 0 (JSON has no -0). */
const asRead = (r: NewStatement): StatementRecord => ({
  sessionId: r.sessionId,
  seq: r.seq,
  text: r.text,
  startedAt: r.startedAt,
  durationMs: r.durationMs === 0 ? 0 : r.durationMs,
  rows: r.rows,
  outcome: r.outcome,
  errorCode: r.errorCode,
  errorMessage: r.errorMessage,
  result: r.result,
});

describe('statement batches', () => {
  it('one batch per session: its statements read back in seq order, as they were; counts, times and bytes from them', () => {
    fc.assert(
      fc.property(statements, (rows) => {
        const batches = batchStatements(statementFields(rows));
        assert.deepEqual(batches.map((b) => b.sessionId).sort(), [...new Set(rows.map((r) => r.sessionId))].sort());
        for (const b of batches) {
          const mine = rows.filter((r) => r.sessionId === b.sessionId).sort((x, y) => x.seq - y.seq);
          assert.deepEqual(unbatchStatements(b.sessionId, b.body), mine.map(asRead));
          assert.deepEqual(
            [b.firstSeq, b.lastSeq, b.statements, b.refused, b.failed],
            [
              mine[0]!.seq,
              mine.at(-1)!.seq,
              mine.length,
              mine.filter((r) => r.outcome === 'denied').length,
              mine.filter((r) => r.outcome === 'error').length,
            ],
          );
          assert.deepEqual([b.firstAt, b.lastAt], [Math.min(...mine.map((r) => r.startedAt)), Math.max(...mine.map((r) => r.startedAt))]);
          assert.equal(b.bytes, Buffer.byteLength(b.body) + BATCH_ROW_BYTES);
        }
      }),
    );
  });

  it("a batch's body is the JSON of its statements' tuples, each result put in as the JSON the recorder wrote for it", () => {
    fc.assert(
      fc.property(statements, (rows) => {
        for (const b of batchStatements(statementFields(rows))) {
          const mine = rows.filter((r) => r.sessionId === b.sessionId).sort((x, y) => x.seq - y.seq);
          // What JSON.stringify writes for the `BatchedStatement` tuples themselves.
          const tuples = mine.map(
            ({ seq, text, startedAt, durationMs, rows: count = null, outcome, errorCode = null, errorMessage = null, result = null }) => {
              return [seq, text, startedAt, durationMs, count, outcome, errorCode, errorMessage, result];
            },
          );
          assert.equal(b.body, JSON.stringify(tuples));
        }
      }),
    );
  });

  it('a seq twice in one session is refused, saying which, with the code the store reads as a conflict', () => {
    const row = (sessionId: string, seq: number): NewStatement => ({
      sessionId,
      seq,
      text: 'select 1',
      startedAt: 1,
      durationMs: 1,
      outcome: 'ok',
    });
    assert.throws(
      () => batchStatements(statementFields([row('ses_a', 1), row('ses_b', 2), row('ses_a', 2), row('ses_a', 1)])),
      (e: Error & { code?: string }) => e.code === SEQ_TAKEN && /ses_a already has statement 1/.test(e.message),
    );
    assert.equal(batchStatements(statementFields([row('ses_a', 1), row('ses_b', 1)])).length, 2);
    assert.deepEqual(batchStatements([]), []);
  });

  it('refuses to read a body that is not a list of statements', () => {
    assert.throws(() => unbatchStatements('ses_a', '[[1, "select 1"'), SyntaxError);
    assert.throws(() => unbatchStatements('ses_a', '{"not":"a list"}'), /session ses_a does not hold a list of statements/);
  });
});
