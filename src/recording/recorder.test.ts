import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { STATEMENT_FIELDS, type StatementFields } from '../store/statement-batches.ts';
import type { NewSession, NewStatement, SessionRecord, Store } from '../store/index.ts';
import { StoreRecorder } from './recorder.ts';

/** Just the writes the recorder makes, in the order the store saw them. */
class FakeStore {
  readonly writes: ({ kind: 'statements'; seqs: number[] } | { kind: 'end'; id: string; at: number; reason: string })[] = [];
  failNextInserts = 0;
  failNextEnds = 0;

  async startSession(s: NewSession): Promise<SessionRecord> {
    return { ...s, id: s.id ?? 'ses_fake', endedAt: undefined, endReason: undefined };
  }
  /** The recorder hands its statements over flat (store/statement-batches.ts): a seq is each one's second field. */
  async insertStatements(fields: StatementFields): Promise<void> {
    await Promise.resolve();
    if (this.failNextInserts > 0) {
      this.failNextInserts--;
      throw new Error('database is locked');
    }
    const seqs: number[] = [];
    for (let i = 0; i < fields.length; i += STATEMENT_FIELDS) seqs.push(fields[i + 1] as number);
    this.writes.push({ kind: 'statements', seqs });
  }
  async endSession(id: string, at: number, reason: string): Promise<boolean> {
    await Promise.resolve();
    if (this.failNextEnds > 0) {
      this.failNextEnds--;
      throw new Error('disk full');
    }
    this.writes.push({ kind: 'end', id, at, reason });
    return true;
  }
  get batches(): number[][] {
    return this.writes.flatMap((write) => (write.kind === 'statements' ? [write.seqs] : []));
  }
}

function captureLog() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, lines };
}

const statement = (seq: number, sessionId = 'ses_1'): NewStatement => ({
  sessionId,
  seq,
  text: `select ${seq}`,
  startedAt: 1000 + seq,
  durationMs: 1,
  outcome: 'ok',
});

describe('StoreRecorder', () => {
  let store: FakeStore;
  beforeEach(() => {
    store = new FakeStore();
    mock.timers.enable({ apis: ['setTimeout'] });
  });
  afterEach(() => {
    mock.timers.reset();
  });

  const recorder = (options: { flushMs?: number; batchSize?: number } = {}, log = pino({ level: 'silent' })) =>
    new StoreRecorder(store as unknown as Store, log, options);

  it('startSession returns the id of the session the store started', async () => {
    assert.equal(
      await recorder().startSession({
        protocol: 'postgres',
        principal: 'a',
        connection: 'c',
        grantId: 'g',
        clientAddress: 'x',
        startedAt: 1,
      }),
      'ses_fake',
    );
  });

  it('writes a batch as soon as batchSize statements are waiting', async () => {
    const r = recorder({ batchSize: 3, flushMs: 10_000 });
    for (let seq = 1; seq <= 7; seq++) r.statement(statement(seq));
    await r.flush();
    assert.deepEqual(store.batches, [[1, 2, 3], [4, 5, 6], [7]]);
  });

  it('writes fewer statements once flushMs has passed, and not before', async () => {
    const r = recorder({ batchSize: 100, flushMs: 50 });
    r.statement(statement(1));
    r.statement(statement(2));
    mock.timers.tick(49);
    await settle();
    assert.deepEqual(store.batches, []);
    mock.timers.tick(1);
    await settle();
    assert.deepEqual(store.batches, [[1, 2]]);

    // The timer starts again with the next statement.
    r.statement(statement(3));
    mock.timers.tick(50);
    await settle();
    assert.deepEqual(store.batches, [[1, 2], [3]]);
  });

  it('writes nothing when nothing is waiting', async () => {
    const r = recorder();
    await r.flush();
    await r.close();
    assert.deepEqual(store.writes, []);
  });

  it("records a session's end after every statement it recorded before", async () => {
    const r = recorder({ batchSize: 100, flushMs: 10_000 });
    r.statement(statement(1));
    r.statement(statement(2));
    r.endSession('ses_1', 5000, 'client disconnected');
    await r.flush();
    assert.deepEqual(store.writes, [
      { kind: 'statements', seqs: [1, 2] },
      { kind: 'end', id: 'ses_1', at: 5000, reason: 'client disconnected' },
    ]);
  });

  it('a failing write is logged, and later batches are still written', async () => {
    const { log, lines } = captureLog();
    const r = recorder({ batchSize: 2, flushMs: 10_000 }, log);
    store.failNextInserts = 1;
    r.statement(statement(1));
    r.statement(statement(2));
    r.statement(statement(3));
    r.statement(statement(4));
    await r.flush();
    assert.deepEqual(store.batches, [[3, 4]]);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.msg, 'could not record statements');
    assert.equal(lines[0]!.statements, 2);
    assert.equal(lines[0]!.level, 50);
    assert.match(String((lines[0]!.err as { message?: string }).message), /database is locked/);
  });

  it('a failing session end is logged, and later writes go on', async () => {
    const { log, lines } = captureLog();
    const r = recorder({ batchSize: 100, flushMs: 10_000 }, log);
    store.failNextEnds = 1;
    r.endSession('ses_1', 5000, 'client disconnected');
    r.statement(statement(1, 'ses_2'));
    await r.flush();
    assert.deepEqual(store.writes, [{ kind: 'statements', seqs: [1] }]);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.msg, 'could not record the end of a session');
    assert.equal(lines[0]!.session, 'ses_1');
  });

  it('close() writes what is still waiting', async () => {
    const r = recorder({ batchSize: 100, flushMs: 10_000 });
    r.statement(statement(1));
    r.endSession('ses_1', 5000, 'gateway stopping');
    r.statement(statement(1, 'ses_2'));
    await r.close();
    assert.deepEqual(store.writes, [
      { kind: 'statements', seqs: [1] },
      { kind: 'end', id: 'ses_1', at: 5000, reason: 'gateway stopping' },
      { kind: 'statements', seqs: [1] },
    ]);
  });
});

/** Lets queued writes reach the fake store, without flushing anything itself (setImmediate is not mocked). */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
