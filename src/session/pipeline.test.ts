import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_ACCESS_POLICY,
  FrozenClock,
  GatewayError,
  verifiedGrant,
  verifiedPrincipal,
  type Clock,
  type PostgresConnection,
} from '../core/index.ts';
import type { AuditEvent, AuditLog } from '../audit/audit-log.ts';
import { NoRecorder, type Recorder } from '../recording/recorder.ts';
import { StatementDetails, type NewSession, type NewStatement } from '../store/index.ts';
import { allowAllGuard, Pipeline, type Guard, type SessionMasking } from './pipeline.ts';

const T0 = Date.UTC(2025, 0, 1);

/** Until the records made in this turn are made: a session makes them once the protocol has passed on what it handled. */
const passedOn = () => new Promise<void>((resolve) => setImmediate(resolve));

class FakeAudit implements AuditLog {
  readonly events: AuditEvent[] = [];
  async append(event: AuditEvent): Promise<void> {
    this.events.push(event);
  }
  note(event: AuditEvent): void {
    this.events.push(event);
  }
  commit(): void {}
}

class FakeRecorder implements Recorder {
  readonly keepsStatements = true;
  readonly sessions: NewSession[] = [];
  readonly statements: NewStatement[] = [];
  readonly ends: { id: string; at: number; reason: string }[] = [];
  async startSession(session: NewSession): Promise<string> {
    this.sessions.push(session);
    return `ses_${this.sessions.length}`;
  }
  statement(statement: NewStatement): void {
    this.statements.push(statement);
  }
  endSession(id: string, at: number, reason: string): void {
    this.ends.push({ id, at, reason });
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}

const connection: PostgresConnection = {
  name: 'shop',
  type: 'postgres',
  host: '127.0.0.1',
  port: 5432,
  database: 'shop',
  user: 'app',
  password: undefined,
  tls: 'disable',
  ca: undefined,
  access: DEFAULT_ACCESS_POLICY,
};

function grantExpiringAt(expiresAt: number) {
  return verifiedGrant({ id: 'grt_1', principal: verifiedPrincipal('alice', 'user'), groups: [], connection: 'shop', expiresAt });
}

/** An audit log whose commits the test lets through one by one, or fails. */
class GatedAudit implements AuditLog {
  readonly events: AuditEvent[] = [];
  readonly #waiting: { resolve: () => void; reject: (error: Error) => void }[] = [];
  append(event: AuditEvent): Promise<void> {
    this.events.push(event);
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }
  note(event: AuditEvent, onFailure: (error: unknown) => void = () => {}): void {
    this.append(event).catch(onFailure);
  }
  commit(): void {}
  commitAll(): void {
    for (const w of this.#waiting.splice(0)) w.resolve();
  }
  failAll(): void {
    for (const w of this.#waiting.splice(0)) w.reject(new Error('disk I/O error'));
  }
}

function setup<C extends Clock = FrozenClock>(
  options: {
    expiresAt?: number;
    clock?: C;
    guard?: Guard;
    audit?: GatedAudit;
    auditStatements?: 'all' | 'refused';
    acknowledgeAfterCommit?: boolean;
  } = {},
) {
  const clock = (options.clock ?? new FrozenClock(T0)) as C;
  const recorder = new FakeRecorder();
  const audit: FakeAudit | GatedAudit = options.audit ?? new FakeAudit();
  const pipeline = new Pipeline({
    guard: options.guard ?? allowAllGuard,
    recorder,
    clock,
    audit,
    ...(options.auditStatements ? { auditStatements: options.auditStatements } : {}),
    ...(options.acknowledgeAfterCommit === undefined ? {} : { acknowledgeAfterCommit: options.acknowledgeAfterCommit }),
  });
  const open = () =>
    pipeline.open({
      protocol: 'postgres',
      grant: grantExpiringAt(options.expiresAt ?? clock.now() + 60_000),
      connection,
      clientAddress: '127.0.0.1:50000',
    });
  return { clock, recorder, open, pipeline, audit };
}

describe('Pipeline', () => {
  it('a gateway that keeps no statements builds no record of them: their text is not masked, no result is kept', async () => {
    const masked: string[] = [];
    const masking: SessionMasking = {
      text: (text) => (masked.push(text), { text: text.replace(/\d+/g, '***'), changed: true, findings: ['number'] }),
      bytes: () => undefined,
      fields: () => 0,
      column: () => undefined,
    };
    const run = async (recorder: Recorder) => {
      masked.length = 0;
      const pipeline = new Pipeline({
        guard: allowAllGuard,
        recorder,
        clock: new FrozenClock(T0),
        audit: new FakeAudit(),
        auditStatements: 'refused',
        masking: () => masking,
      });
      const session = await pipeline.open({
        protocol: 'postgres',
        grant: grantExpiringAt(T0 + 60_000),
        connection,
        clientAddress: '127.0.0.1:50000',
      });
      const trace = session.begin('select 42');
      trace.finish({ outcome: 'ok', rows: 1 });
      await passedOn();
      return { result: trace.result, masked: [...masked] };
    };
    const keeping = new FakeRecorder();
    const kept = await run(keeping);
    assert.ok(kept.result !== undefined, 'a recording gateway keeps the result of a masked session');
    assert.deepEqual(kept.masked, ['select 42']);
    assert.equal(keeping.statements[0]?.text, 'select ***');
    assert.deepEqual(await run(new NoRecorder()), { result: undefined, masked: [] });
  });

  it('open() starts a recorded session with who, where, from where and when', async () => {
    const { recorder, open } = setup();
    const session = await open();
    assert.deepEqual(recorder.sessions, [
      { protocol: 'postgres', principal: 'alice', connection: 'shop', grantId: 'grt_1', clientAddress: '127.0.0.1:50000', startedAt: T0 },
    ]);
    assert.equal(session.info.id, 'ses_1');
    assert.equal(session.info.startedAt, T0);
    assert.equal(session.info.grant.principal.name, 'alice');
    assert.equal(session.info.connection, connection);
  });

  it('begin/finish records the statement with its timing, rows and outcome', async () => {
    const { clock, recorder, open } = setup();
    const session = await open();
    clock.at += 5;
    const first = session.begin('select * from orders');
    clock.at += 40;
    first.finish({ outcome: 'ok', rows: 12 });
    const second = session.begin('select 1/0');
    clock.at += 2;
    second.finish({ outcome: 'error', errorCode: '22012', errorMessage: 'division by zero' });
    assert.deepEqual(recorder.statements, [], 'recorded before the protocol passed the answer on');
    await passedOn();
    assert.deepEqual(recorder.statements, [
      {
        sessionId: 'ses_1',
        seq: 1,
        text: 'select * from orders',
        startedAt: T0 + 5,
        durationMs: 40,
        rows: 12,
        outcome: 'ok',
        errorCode: undefined,
        errorMessage: undefined,
        result: undefined, // an unmasked session keeps no values
      },
      {
        sessionId: 'ses_1',
        seq: 2,
        text: 'select 1/0',
        startedAt: T0 + 45,
        durationMs: 2,
        rows: undefined,
        outcome: 'error',
        errorCode: '22012',
        errorMessage: 'division by zero',
        result: undefined,
      },
    ]);
  });

  it("begin() puts each statement sent to the target on record (command.allowed); 'refused' keeps refusals only", async () => {
    const every = setup();
    const session = await every.open();
    session.begin('select * from orders').finish({ outcome: 'ok', rows: 1 });
    session.refuse('drop table orders', 'blocked by policy "x"');
    assert.deepEqual(
      every.audit.events.map((e) => [e.action, e.details?.['seq'], e.details?.['statement']]),
      [
        ['session.started', undefined, undefined],
        ['command.allowed', 1, 'select * from orders'],
        ['command.denied', 2, 'drop table orders'],
      ],
    );
    assert.deepEqual(every.audit.events[1], {
      actor: 'alice',
      action: 'command.allowed',
      subject: 'ses_1',
      outcome: 'success',
      details: new StatementDetails('shop', 1, 'select * from orders'),
    });
    const refused = setup({ auditStatements: 'refused' });
    const quiet = await refused.open();
    quiet.begin('select 1').finish({ outcome: 'ok' });
    quiet.refuse('drop table orders', 'no');
    assert.deepEqual(
      refused.audit.events.map((e) => e.action),
      ['session.started', 'command.denied'],
    );
  });

  it('committed() waits for every audit record of the session so far; open() waits for session.started', async () => {
    const audit = new GatedAudit();
    const { open } = setup({ audit });
    let opened = false;
    const opening = open().then((s) => ((opened = true), s));
    await new Promise((r) => setImmediate(r));
    assert.equal(opened, false, 'the client is not told it is in before session.started is committed');
    audit.commitAll();
    const session = await opening;
    assert.equal(session.committed(), undefined, 'nothing is waiting');
    session.begin('select 1');
    session.begin('select 2');
    const committed = session.committed();
    assert.ok(committed);
    let done = false;
    void committed.then(() => (done = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(done, false);
    audit.commitAll();
    await committed;
    assert.equal(session.committed(), undefined);
  });

  it('committed() fails closed with audit.unavailable once a record of the session cannot be committed', async () => {
    const audit = new GatedAudit();
    const { open } = setup({ audit });
    const opening = open();
    await new Promise((r) => setImmediate(r));
    audit.commitAll();
    const session = await opening;
    session.begin('update orders set paid = true');
    const committed = session.committed();
    audit.failAll();
    await assert.rejects(committed!, (e: unknown) => e instanceof GatewayError && e.code === 'audit.unavailable');
    // And every later acknowledgement too, even when the store is back.
    session.begin('select 1');
    audit.commitAll();
    await assert.rejects(session.committed()!, (e: unknown) => e instanceof GatewayError && e.code === 'audit.unavailable');
  });

  it('answering at once: committed() never waits, but a record that failed fails the next answer', async () => {
    const audit = new GatedAudit();
    const { open } = setup({ audit, acknowledgeAfterCommit: false });
    const session = await open();
    session.begin('update orders set paid = true');
    assert.equal(session.committed(), undefined, 'nothing waits for the commit');
    audit.failAll();
    await new Promise((r) => setImmediate(r));
    await assert.rejects(session.committed()!, (e: unknown) => e instanceof GatewayError && e.code === 'audit.unavailable');
  });

  it('open() fails with audit.unavailable when session.started cannot be committed, and the session is closed', async () => {
    const audit = new GatedAudit();
    const { open, recorder } = setup({ audit });
    const opening = open();
    await new Promise((r) => setImmediate(r));
    audit.failAll();
    await assert.rejects(opening, (e: unknown) => e instanceof GatewayError && e.code === 'audit.unavailable');
    assert.deepEqual(
      recorder.ends.map((e) => e.reason),
      ['the audit log could not be written'],
    );
  });

  it('finish() records a statement once, however often it is called', async () => {
    const { recorder, open } = setup();
    const session = await open();
    const trace = session.begin('select 1');
    trace.finish({ outcome: 'ok', rows: 1 });
    trace.finish({ outcome: 'error' });
    await passedOn();
    assert.equal(recorder.statements.length, 1);
    assert.equal(recorder.statements[0]!.outcome, 'ok');
  });

  it('overlapping statements keep the order in which they began', async () => {
    const { recorder, open } = setup();
    const session = await open();
    const a = session.begin('a');
    const b = session.begin('b');
    b.finish({ outcome: 'ok' });
    a.finish({ outcome: 'cancelled' });
    await passedOn();
    assert.deepEqual(
      recorder.statements.map((s) => [s.text, s.seq, s.outcome]),
      [
        ['b', 2, 'ok'],
        ['a', 1, 'cancelled'],
      ],
    );
  });

  it("refuse() records a statement that never ran as 'denied'", async () => {
    const { recorder, open } = setup();
    const session = await open();
    session.refuse('drop table orders', 'dropping tables is not allowed');
    await passedOn();
    assert.deepEqual(recorder.statements, [
      {
        sessionId: 'ses_1',
        seq: 1,
        text: 'drop table orders',
        startedAt: T0,
        durationMs: 0,
        rows: undefined,
        outcome: 'denied',
        errorCode: 'command.denied',
        errorMessage: 'dropping tables is not allowed',
        result: undefined,
      },
    ]);
  });

  it('at-once: statements are put on record after the turn that sent them, in order with every other event of the session', async () => {
    const { audit, recorder, open } = setup({ acknowledgeAfterCommit: false });
    const session = await open();
    session.begin('select 1').finish({ outcome: 'ok', rows: 1 });
    session.refuse('drop table orders', 'no');
    session.begin('select 2');
    session.close('client disconnected'); // in the same turn: its records still come last
    assert.deepEqual(
      audit.events.map((e) => e.action),
      ['session.started'],
      'nothing but what was there before the turn is on record yet',
    );
    assert.deepEqual(recorder.ends, [], 'the end waits for the statements recorded before it');
    await passedOn();
    assert.deepEqual(
      audit.events.map((e) => [e.action, e.details?.['seq']]),
      [
        ['session.started', undefined],
        ['command.allowed', 1],
        ['command.denied', 2],
        ['command.allowed', 3],
        ['session.ended', undefined],
      ],
    );
    assert.deepEqual(
      recorder.statements.map((s) => [s.seq, s.outcome]),
      [
        [1, 'ok'],
        [2, 'denied'],
      ],
    );
    assert.deepEqual(recorder.ends, [{ id: 'ses_1', at: T0, reason: 'client disconnected' }]);
  });

  it('a record that cannot be made fails the next acknowledgement with audit.unavailable (fail closed)', async () => {
    const masking: SessionMasking = {
      text: () => {
        throw new Error('the masking failed');
      },
      bytes: () => undefined,
      fields: () => 0,
      column: () => undefined,
    };
    const pipeline = new Pipeline({
      guard: allowAllGuard,
      recorder: new FakeRecorder(),
      clock: new FrozenClock(T0),
      audit: new FakeAudit(),
      masking: () => masking,
      acknowledgeAfterCommit: false,
    });
    const session = await pipeline.open({
      protocol: 'postgres',
      grant: grantExpiringAt(T0 + 60_000),
      connection,
      clientAddress: '127.0.0.1:1',
    });
    session.begin('select 1').finish({ outcome: 'ok' });
    await passedOn();
    await assert.rejects(session.committed()!, (e: unknown) => e instanceof GatewayError && e.code === 'audit.unavailable');
  });

  it('decide() asks the guard with the session and the command', async () => {
    const seen: unknown[] = [];
    const guard: Guard = {
      decide: (info, command) => {
        seen.push([info.id, command.text]);
        return { outcome: 'deny', reason: 'no' };
      },
    };
    const { open } = setup({ guard });
    const session = await open();
    assert.deepEqual(await session.decide({ kind: 'query', text: 'select 1' }), { outcome: 'deny', reason: 'no' });
    assert.deepEqual(seen, [['ses_1', 'select 1']]);
    assert.deepEqual(await allowAllGuard.decide(session.info, { kind: 'query', text: 'x' }), { outcome: 'allow' });
  });

  it('close() ends the session once, with the time and reason', async () => {
    const { clock, recorder, open } = setup();
    const session = await open();
    clock.at += 1000;
    session.close('client disconnected');
    session.close('again');
    assert.deepEqual(recorder.ends, [{ id: 'ses_1', at: T0 + 1000, reason: 'client disconnected' }]);
  });

  it('onTerminate fires when the grant expires, with session.terminated', async () => {
    // The expiry is a real timer: the grant expires 30 ms from now on the system clock.
    const clock: Clock = { now: () => Date.now() };
    const { open } = setup({ clock, expiresAt: Date.now() + 30 });
    const session = await open();
    const error = await new Promise<GatewayError>((resolve) => session.onTerminate(resolve));
    assert.ok(error instanceof GatewayError);
    assert.equal(error.code, 'session.terminated');
    assert.match(error.message, /grt_1 expired/);
    session.close('terminated');
  });

  it('onTerminate fires at once for a grant that has already expired', async () => {
    const clock: Clock = { now: () => Date.now() };
    const { open } = setup({ clock, expiresAt: Date.now() - 1000 });
    const session = await open();
    const error = await new Promise<GatewayError>((resolve) => session.onTerminate(resolve));
    assert.equal(error.code, 'session.terminated');
  });

  it('onTerminate does not fire after close()', async () => {
    const clock: Clock = { now: () => Date.now() };
    const { open } = setup({ clock, expiresAt: Date.now() + 30 });
    const session = await open();
    let fired = false;
    session.onTerminate(() => (fired = true));
    session.close('client disconnected');
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(fired, false);
  });

  it('onTerminate does not fire before a grant that outlives the longest timer (24.8 days) expires', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const clock = new FrozenClock(T0);
      const day = 86_400_000;
      const { open } = setup({ clock, expiresAt: T0 + 30 * day });
      const session = await open();
      let fired = false;
      session.onTerminate(() => (fired = true));
      clock.at += 2 ** 31 - 1;
      mock.timers.tick(2 ** 31 - 1);
      assert.equal(fired, false, 'terminated with more than five days of the grant left');
      session.close('test over');
    } finally {
      mock.timers.reset();
    }
  });
});
