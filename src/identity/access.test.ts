import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { StoreAuditLog } from '../audit/audit-log.ts';
import { FrozenClock, type Connection, type PostgresConnection } from '../core/index.ts';
import { openStore, type Store } from '../store/index.ts';
import { formatDuration } from '../core/duration.ts';
import { ApprovalError, Approvals } from '../approvals/approvals.ts';
import { AccessError, AccessRequests } from './access.ts';
import { authenticatedAs, type AuthenticatedPrincipal } from './accounts.ts';
import { Credentials } from './credentials.ts';

const T0 = Date.UTC(2026, 10, 22, 9);
const MINUTE = 60_000;

function connection(name: string, maxDurationMs: number, approval: 'none' | 'required'): PostgresConnection {
  return {
    name,
    type: 'postgres',
    host: '127.0.0.1',
    port: 5432,
    database: name,
    user: 'app',
    password: undefined,
    tls: 'disable',
    ca: undefined,
    access: { maxDurationMs, approval },
  };
}

const CONNECTIONS = new Map<string, Connection>([
  ['orders-db', connection('orders-db', 60 * MINUTE, 'none')],
  ['short-db', connection('short-db', 10 * MINUTE, 'none')],
  ['guarded-db', connection('guarded-db', 60 * MINUTE, 'required')],
]);

const person: AuthenticatedPrincipal = authenticatedAs(
  { name: 'alice', kind: 'user', roles: ['user'], groups: [], maxGrantMs: undefined, connections: undefined },
  'session',
);
const agent: AuthenticatedPrincipal = authenticatedAs(
  { name: 'etl-bot', kind: 'service-account', roles: ['user'], groups: [], maxGrantMs: 5 * MINUTE, connections: ['orders-db'] },
  'service-account-key',
);

describe('AccessRequests', () => {
  let store: Store;
  let clock: FrozenClock;
  let access: AccessRequests;

  beforeEach(async () => {
    store = await openStore('sqlite::memory:');
    clock = new FrozenClock(T0);
    const audit = new StoreAuditLog(store, clock);
    access = new AccessRequests({
      credentials: new Credentials(store, clock, audit),
      store,
      connection: (name) => CONNECTIONS.get(name),
      clock,
      audit,
    });
  });
  afterEach(() => store.close());

  const refusal = (code: string, message?: RegExp) => (error: unknown) => {
    assert.ok(error instanceof AccessError);
    assert.equal(error.code, code);
    if (message) assert.match(error.message, message);
    return true;
  };

  it('grants at once where policy allows, for the duration asked, with a credential that logs in', async () => {
    const outcome = await access.request(person, { connection: 'orders-db', durationMs: 30 * MINUTE, reason: 'INC-4411' });
    assert.equal(outcome.status, 'granted');
    assert.ok(outcome.status === 'granted');
    assert.equal(outcome.expiresAt, T0 + 30 * MINUTE);
    assert.match(outcome.credential, /^dbr_/);
    const grant = await store.getGrant(outcome.grant);
    assert.deepEqual([grant?.principal, grant?.connection, grant?.grantedBy, grant?.reason], ['alice', 'orders-db', 'policy', 'INC-4411']);
  });

  it('defaults to 15 minutes, or the policy maximum when that is shorter', async () => {
    const a = await access.request(person, { connection: 'orders-db', reason: 'r' });
    assert.ok(a.status === 'granted' && a.expiresAt === T0 + 15 * MINUTE);
    const b = await access.request(agent, { connection: 'orders-db', reason: 'r' });
    assert.ok(b.status === 'granted' && b.expiresAt === T0 + 5 * MINUTE, 'the service account allows 5 minutes');
  });

  it('refuses more than the policy or the service account allows, saying the limit', async () => {
    await assert.rejects(
      access.request(person, { connection: 'short-db', durationMs: 11 * MINUTE, reason: 'r' }),
      refusal('too-long', /short-db grants at most 10m$/),
    );
    await assert.rejects(
      access.request(agent, { connection: 'orders-db', durationMs: 6 * MINUTE, reason: 'r' }),
      refusal('too-long', /at most 5m to etl-bot/),
    );
    await assert.rejects(access.request(person, { connection: 'orders-db', durationMs: 0, reason: 'r' }), refusal('too-long'));
  });

  it('answers the same for a connection that does not exist and one the principal may not ask for', async () => {
    const unknown = await access.request(person, { connection: 'nope', reason: 'r' }).catch((e: Error) => e.message);
    const forbidden = await access.request(agent, { connection: 'short-db', reason: 'r' }).catch((e: Error) => e.message);
    assert.equal(unknown, 'no connection "nope" that alice may ask for');
    assert.equal(forbidden, 'no connection "short-db" that etl-bot may ask for');
  });

  it('needs a reason', async () => {
    await assert.rejects(access.request(person, { connection: 'orders-db', reason: '   ' }), refusal('reason-required'));
  });

  it('keeps a request pending where policy needs approval, and mints nothing', async () => {
    const outcome = await access.request(person, { connection: 'guarded-db', durationMs: 20 * MINUTE, reason: 'schema fix' });
    assert.ok(outcome.status === 'pending');
    const pending = await store.listAccessRequests({ principal: 'alice', status: 'pending' });
    assert.deepEqual(
      pending.map((r) => [r.id, r.connection, r.durationMs, r.reason, r.requestedAt]),
      [[outcome.request, 'guarded-db', 20 * MINUTE, 'schema fix', T0]],
    );
    assert.deepEqual(await store.listGrants({ principal: 'alice' }), []);
  });

  it('puts every request, granted, pending or refused, on record', async () => {
    await access.request(person, { connection: 'orders-db', reason: 'a' });
    await access.request(person, { connection: 'guarded-db', reason: 'b' });
    await access.request(person, { connection: 'short-db', durationMs: 99 * MINUTE, reason: 'c' }).catch(() => {});
    const events = await store.listAudit({ limit: 100 });
    assert.deepEqual(
      events.map((e) => [e.action, e.outcome]),
      [
        ['grant.issued', 'success'],
        ['access.requested', 'success'],
        ['access.requested', 'failure'],
      ],
    );
  });
});

describe('AccessRequests that need approval', () => {
  let store: Store;
  let clock: FrozenClock;
  let approvals: Approvals;
  let access: AccessRequests;
  const dana = authenticatedAs(
    { name: 'dana', kind: 'user', roles: ['approver'], groups: ['approvers'], maxGrantMs: undefined, connections: undefined },
    'session',
  );

  beforeEach(async () => {
    store = await openStore('sqlite::memory:');
    clock = new FrozenClock(T0);
    const audit = new StoreAuditLog(store, clock);
    approvals = new Approvals({ store, audit, clock, timeoutMs: MINUTE, accessTimeoutMs: 60 * MINUTE, baseUrl: () => 'https://gw' });
    access = new AccessRequests({
      credentials: new Credentials(store, clock, audit),
      store,
      connection: (name) => CONNECTIONS.get(name),
      clock,
      audit,
      approvals,
    });
  });
  afterEach(async () => {
    await approvals.close();
    await store.close();
  });

  it('is an approval of the default group; approved, its credential is picked up once, granted by the approver, for the window from the approval', async () => {
    const outcome = await access.request(person, { connection: 'guarded-db', durationMs: 20 * MINUTE, reason: 'schema fix' });
    assert.ok(outcome.status === 'pending' && outcome.approval !== undefined);
    assert.equal(outcome.url, `https://gw/approvals/${outcome.approval}`);
    const approval = await approvals.get(outcome.approval);
    assert.deepEqual(
      [approval?.kind, approval?.requestId, approval?.approvers, approval?.durationMs, approval?.expiresAt],
      ['access', outcome.request, 'approvers', 20 * MINUTE, T0 + 60 * MINUTE],
    );
    await assert.rejects(access.credential(person, outcome.request), (e: AccessError) => e.code === 'not-approved');
    clock.advance(5 * MINUTE);
    await approvals.decide(outcome.approval, dana, 'approve');
    clock.advance(5 * MINUTE);
    const granted = await access.credential(person, outcome.request);
    assert.equal(granted.expiresAt, T0 + 25 * MINUTE, 'twenty minutes from the approval');
    const grant = await store.getGrant(granted.grant);
    assert.deepEqual([grant?.principal, grant?.grantedBy, grant?.reason], ['alice', 'dana', 'schema fix']);
    assert.equal((await store.getAccessRequest(outcome.request))?.grantId, granted.grant);
    await assert.rejects(access.credential(person, outcome.request), (e: AccessError) => e.code === 'already-issued');
    await assert.rejects(access.credential(agent, outcome.request), (e: AccessError) => e.code === 'unknown-request');
  });

  it('denied, the pickup says who denied it and why; the requester never decides their own', async () => {
    const outcome = await access.request(person, { connection: 'guarded-db', reason: 'r' });
    assert.ok(outcome.status === 'pending' && outcome.approval !== undefined);
    const alice = authenticatedAs(
      { ...person.principal, roles: ['approver'], groups: ['approvers'], maxGrantMs: undefined, connections: undefined },
      'session',
    );
    await assert.rejects(approvals.decide(outcome.approval, alice, 'approve'), (e: ApprovalError) => e.code === 'self-approval');
    await approvals.decide(outcome.approval, dana, 'deny', 'not now');
    await assert.rejects(access.credential(person, outcome.request), /is denied: it was denied by dana: not now$/);
  });

  it("a service account's approved request is held to its limits at pickup, as they are then", async () => {
    const bot = (maxGrantMs: number, connections: string[]) =>
      authenticatedAs(
        { name: 'ci-bot', kind: 'service-account', roles: ['user'], groups: [], maxGrantMs, connections },
        'service-account-key',
      );
    const outcome = await access.request(bot(30 * MINUTE, ['guarded-db']), {
      connection: 'guarded-db',
      durationMs: 20 * MINUTE,
      reason: 'r',
    });
    assert.ok(outcome.status === 'pending' && outcome.approval !== undefined);
    await approvals.decide(outcome.approval, dana, 'approve');
    // Lowered since it asked (Accounts.setLimits): the authenticated principal carries the new limits.
    await assert.rejects(
      access.credential(bot(10 * MINUTE, ['guarded-db']), outcome.request),
      (e: AccessError) => e.code === 'too-long' && /is for 20m, and ci-bot now gets at most 10m: ask again$/.test(e.message),
    );
    await assert.rejects(access.credential(bot(30 * MINUTE, ['orders-db']), outcome.request), (e: AccessError) => e.code === 'not-allowed');
    const granted = await access.credential(bot(30 * MINUTE, ['guarded-db']), outcome.request);
    assert.equal(granted.expiresAt, T0 + 20 * MINUTE);
  });

  it('past its window, an approved request gives no credential', async () => {
    const outcome = await access.request(person, { connection: 'guarded-db', durationMs: 10 * MINUTE, reason: 'r' });
    assert.ok(outcome.status === 'pending' && outcome.approval !== undefined);
    await approvals.decide(outcome.approval, dana, 'approve');
    clock.advance(10 * MINUTE);
    await assert.rejects(access.credential(person, outcome.request), /was granted until .*: that is over$/);
  });
  const plan = [{ actions: ['read'], tables: ['orders'] }];
  const code = (expected: string) => (error: unknown) => error instanceof AccessError && error.code === expected;

  it('a plan waits for a person even where access is granted on request; its grant carries the plan', async () => {
    const outcome = await access.request(person, { connection: 'orders-db', durationMs: 20 * MINUTE, reason: 'INC-7', plan });
    assert.ok(outcome.status === 'pending' && outcome.approval !== undefined);
    assert.equal((await approvals.get(outcome.approval))?.statement, 'plan: read orders');
    assert.deepEqual((await store.getAccessRequest(outcome.request))?.plan, plan);
    await approvals.decide(outcome.approval, dana, 'approve');
    const granted = await access.credential(person, outcome.request);
    assert.deepEqual((await store.getGrant(granted.grant))?.plan, { id: outcome.request, steps: plan });
    assert.deepEqual(
      (await store.listAudit({ action: 'plan.submitted' })).map((e) => [e.actor, e.subject]),
      [['alice', outcome.request]],
    );
  });

  it('finishing a plan: revoked once in use, withdrawn while it waits, closed to pickup when not yet picked up; only one\'s own', async () => {
    const used = await access.request(person, { connection: 'orders-db', reason: 'a', plan });
    assert.ok(used.status === 'pending');
    await approvals.decide(used.approval!, dana, 'approve');
    const grant = (await access.credential(person, used.request)).grant;
    await assert.rejects(access.finishPlan(agent, used.request), code('unknown-request'));
    assert.deepEqual(await access.finishPlan(person, used.request), { status: 'finished', grant });
    assert.equal((await store.getGrant(grant))?.revokeReason, `plan ${used.request} finished`);
    assert.deepEqual(await access.finishPlan(person, used.request), { status: 'over', grant });

    const waiting = await access.request(person, { connection: 'orders-db', reason: 'b', plan });
    assert.ok(waiting.status === 'pending');
    assert.deepEqual(await access.finishPlan(person, waiting.request), { status: 'withdrawn', grant: undefined });
    assert.equal((await approvals.get(waiting.approval!))?.status, 'cancelled');

    const unused = await access.request(person, { connection: 'orders-db', reason: 'c', plan });
    assert.ok(unused.status === 'pending');
    await approvals.decide(unused.approval!, dana, 'approve');
    assert.deepEqual(await access.finishPlan(person, unused.request), { status: 'finished', grant: undefined });
    await assert.rejects(access.credential(person, unused.request), code('already-issued'));
    assert.deepEqual(await access.finishPlan(person, unused.request), { status: 'over', grant: undefined });

    const plain = await access.request(person, { connection: 'guarded-db', reason: 'd' });
    assert.ok(plain.status === 'pending');
    await assert.rejects(access.finishPlan(person, plain.request), code('unknown-request'), 'a request without a plan is not one');
    assert.deepEqual(
      (await store.listAudit({ action: 'plan.finished' })).map((e) => [e.subject, e.details['status']]),
      [
        [used.request, 'finished'],
        [waiting.request, 'withdrawn'],
        [unused.request, 'finished'],
      ],
    );
  });
});

describe('formatDuration', () => {
  it('writes durations as people type them', () => {
    assert.equal(formatDuration(90 * MINUTE), '1h30m');
    assert.equal(formatDuration(24 * 60 * MINUTE), '1d');
    assert.equal(formatDuration(45_000), '45s');
    assert.equal(formatDuration(5), '5ms');
  });
});
