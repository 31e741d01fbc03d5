import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { FrozenClock } from '../core/index.ts';
import { StoreAuditLog } from '../audit/audit-log.ts';
import { openStore, type AuditRecord, type Store } from '../store/index.ts';
import { AccountError, Accounts, type AuthenticatedPrincipal } from './accounts.ts';
import { Credentials } from './credentials.ts';
import { GatewaySessions } from './gateway-sessions.ts';

const T0 = Date.UTC(2025, 0, 1);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const PASSWORD = 'correct horse battery staple';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

describe('GatewaySessions', () => {
  let store: Store;
  let clock: FrozenClock;
  let accounts: Accounts;
  let sessions: GatewaySessions;
  let alice: AuthenticatedPrincipal;

  beforeEach(async () => {
    store = await openStore('sqlite::memory:');
    clock = new FrozenClock(T0);
    const audit = new StoreAuditLog(store, clock);
    const credentials = new Credentials(store, clock, audit);
    accounts = new Accounts(store, clock, audit, credentials, { scrypt: { N: 2 ** 14, r: 1, p: 1, keyLength: 32, saltLength: 16 } });
    sessions = new GatewaySessions(store, clock, audit, accounts);
    await accounts.createUser({ name: 'alice', password: PASSWORD, groups: ['ops'] }, 'admin');
    const who = await accounts.authenticatePassword('alice', PASSWORD);
    assert.ok(who);
    alice = who;
  });
  afterEach(async () => {
    await store.close();
  });

  const events = async (action: string): Promise<AuditRecord[]> => store.listAudit({ action, limit: 1000 });

  it('issues dbr_ses_/dbr_ref_ tokens, 15 minutes and 12 hours by default, stored as hashes only', async () => {
    const issued = await sessions.issue(alice);
    assert.match(issued.token, /^dbr_ses_[A-Za-z0-9_-]{43}$/);
    assert.match(issued.refreshToken, /^dbr_ref_[A-Za-z0-9_-]{43}$/);
    assert.equal(issued.expiresAt, T0 + 15 * MINUTE);
    assert.equal(issued.refreshExpiresAt, T0 + 12 * HOUR);
    const row = await store.findGatewaySessionByTokenHash(sha256(issued.token));
    assert.ok(row);
    assert.equal(row.refreshHash, sha256(issued.refreshToken));
    assert.equal(row.via, 'password');
    const stored = JSON.stringify(row);
    assert.ok(!stored.includes(issued.token.slice(8)) && !stored.includes(issued.refreshToken.slice(8)), 'no token in the store');

    const [event] = await events('session.issued');
    assert.deepEqual(
      [event?.actor, event?.subject, event?.details],
      ['alice', row.family, { via: 'password', expiresAt: T0 + 15 * MINUTE, refreshExpiresAt: T0 + 12 * HOUR }],
    );
    const audit = JSON.stringify(await store.listAudit({ limit: 1000 }));
    assert.ok(!audit.includes(issued.token) && !audit.includes(issued.refreshToken) && !audit.includes(row.tokenHash));
  });

  it('verifies a live token as via session, until it expires on the frozen clock', async () => {
    const issued = await sessions.issue(alice);
    const who = await sessions.verify(issued.token);
    assert.ok(who);
    assert.deepEqual({ ...who.principal }, { name: 'alice', kind: 'user' });
    assert.equal(who.via, 'session');
    assert.deepEqual(who.roles, ['user']);
    assert.deepEqual(who.groups, ['ops']);

    clock.advance(15 * MINUTE - 1);
    assert.ok(await sessions.verify(issued.token));
    clock.advance(1);
    assert.equal(await sessions.verify(issued.token), undefined, 'expiresAt is exclusive');
    assert.equal(await sessions.verify(issued.refreshToken), undefined, 'a refresh token is not a session token');
    for (const bad of ['', 'dbr_ses_', `${issued.token}x`, issued.token.replace('dbr_ses_', 'dbr_sak_'), `dbr_ses_${'A'.repeat(43)}`]) {
      assert.equal(await sessions.verify(bad), undefined, bad);
    }
  });

  it('refresh rotates both tokens; the family ends 12 hours after login whatever the refreshes', async () => {
    const first = await sessions.issue(alice);
    clock.advance(20 * MINUTE);
    assert.equal(await sessions.verify(first.token), undefined);
    const second = await sessions.refresh(first.refreshToken);
    assert.ok(second);
    assert.notEqual(second.token, first.token);
    assert.notEqual(second.refreshToken, first.refreshToken);
    assert.equal(second.expiresAt, T0 + 35 * MINUTE);
    assert.equal(second.refreshExpiresAt, T0 + 12 * HOUR);
    assert.equal((await sessions.verify(second.token))?.principal.name, 'alice');
    assert.equal((await accounts.get('alice'))?.lastUsedAt, T0 + 20 * MINUTE);
    const [refreshed] = await events('session.refreshed');
    assert.deepEqual([refreshed?.actor, refreshed?.outcome, refreshed?.details], ['alice', 'success', { expiresAt: T0 + 35 * MINUTE }]);

    // Near the end of the family the session token is cut to it.
    clock.at = T0 + 12 * HOUR - MINUTE;
    const late = await sessions.refresh(second.refreshToken);
    assert.equal(late?.expiresAt, T0 + 12 * HOUR);
    clock.at = T0 + 12 * HOUR;
    assert.equal(await sessions.verify(late?.token ?? ''), undefined);
    assert.equal(await sessions.refresh(late?.refreshToken ?? ''), undefined);
    assert.equal((await events('session.refreshed')).at(-1)?.details.reason, 'expired');
  });

  it('reusing an old refresh token revokes the whole family (fail closed on theft)', async () => {
    const first = await sessions.issue(alice);
    const other = await sessions.issue(alice);
    const second = await sessions.refresh(first.refreshToken);
    assert.ok(second);
    assert.ok(await sessions.verify(second.token));

    assert.equal(await sessions.refresh(first.refreshToken), undefined, 'the old refresh token stopped working');
    assert.equal(await sessions.verify(second.token), undefined, 'and took the current session with it');
    assert.equal(await sessions.refresh(second.refreshToken), undefined);
    assert.ok(await sessions.verify(other.token), 'another login is another family');

    const [reuse] = await events('session.refresh-reused');
    assert.equal(reuse?.outcome, 'failure');
    assert.equal(reuse?.actor, 'alice');
    assert.deepEqual(reuse?.details, { sessionsRevoked: 1 });
  });

  it('of two refreshes racing with one token neither keeps a session', async () => {
    const first = await sessions.issue(alice);
    const results = await Promise.all([sessions.refresh(first.refreshToken), sessions.refresh(first.refreshToken)]);
    const winners = results.filter((r) => r !== undefined);
    assert.ok(winners.length <= 1);
    for (const w of winners) assert.equal(await sessions.verify(w.token), undefined);
    assert.equal((await events('session.refresh-reused')).length, 1);
  });

  it('a role change applies to an existing session at once; groups stay those of the login', async () => {
    const issued = await sessions.issue(alice);
    assert.deepEqual((await sessions.verify(issued.token))?.roles, ['user']);
    await accounts.setRoles('alice', ['auditor'], 'admin');
    assert.deepEqual((await sessions.verify(issued.token))?.roles, ['auditor']);
    await accounts.setRoles('alice', [], 'admin');
    assert.deepEqual((await sessions.verify(issued.token))?.roles, []);

    const oidc = await accounts.fromOidc('bob', 'user', ['from-token']);
    assert.ok(oidc);
    const bob = await sessions.issue(oidc);
    assert.deepEqual((await sessions.verify(bob.token))?.groups, ['from-token']);
    assert.equal((await store.findGatewaySessionByTokenHash(sha256(bob.token)))?.via, 'oidc');
  });

  it('a service account session keeps its limits', async () => {
    const { key } = await accounts.createServiceAccount({ name: 'bot', maxGrantMs: 5 * MINUTE, connections: ['orders'] }, 'admin');
    const bot = await accounts.authenticateKey(key);
    assert.ok(bot);
    const issued = await sessions.issue(bot);
    const who = await sessions.verify(issued.token);
    assert.equal(who?.principal.kind, 'service-account');
    assert.equal(who?.maxGrantMs, 5 * MINUTE);
    assert.deepEqual(who?.connections, ['orders']);
  });

  it('logout with either token ends the family, once', async () => {
    const a = await sessions.issue(alice);
    assert.equal(await sessions.revoke(a.token), true);
    assert.equal(await sessions.verify(a.token), undefined);
    assert.equal(await sessions.refresh(a.refreshToken), undefined);
    assert.equal(await sessions.revoke(a.token), false);
    assert.equal((await events('session.refresh-reused')).length, 0, 'a logged-out refresh token is not theft');

    const b = await sessions.issue(alice);
    const b2 = await sessions.refresh(b.refreshToken);
    assert.ok(b2);
    assert.equal(await sessions.revoke(b2.refreshToken), true);
    assert.equal(await sessions.verify(b2.token), undefined);
    assert.equal(await sessions.revoke('dbr_ses_nope'), false);
    assert.equal(await sessions.revoke(''), false);

    const logouts = await events('logout');
    assert.equal(logouts.length, 2);
    assert.equal(logouts[0]?.actor, 'alice');
  });

  it('revokeAllOf ends every live session of an account and counts them', async () => {
    const a = await sessions.issue(alice);
    const b = await sessions.issue(alice);
    await accounts.createUser({ name: 'carol', password: PASSWORD }, 'admin');
    const carol = await accounts.authenticatePassword('carol', PASSWORD);
    assert.ok(carol);
    const c = await sessions.issue(carol);
    assert.equal(await sessions.revokeAllOf('alice', 'admin'), 2);
    assert.equal(await sessions.verify(a.token), undefined);
    assert.equal(await sessions.verify(b.token), undefined);
    assert.ok(await sessions.verify(c.token));
    assert.equal(await sessions.revokeAllOf('alice'), 0);
    const [event] = await events('session.revoked');
    assert.deepEqual([event?.actor, event?.subject, event?.details], ['admin', 'alice', { sessions: 2 }]);
  });

  it('refuses to issue for a session, an unknown or a disabled account', async () => {
    const issued = await sessions.issue(alice);
    const viaSession = await sessions.verify(issued.token);
    assert.ok(viaSession);
    await assert.rejects(sessions.issue(viaSession), (e: unknown) => e instanceof AccountError && e.code === 'invalid-input');
    await accounts.disable('alice', 'admin');
    await assert.rejects(sessions.issue(alice), (e: unknown) => e instanceof AccountError && e.code === 'disabled');
    await accounts.createServiceAccount({ name: 'bot' }, 'admin');
    const asUser = { ...alice, principal: { ...alice.principal, name: 'bot' } } as AuthenticatedPrincipal;
    await assert.rejects(sessions.issue(asUser), (e: unknown) => e instanceof AccountError && e.code === 'unknown');
  });

  it('honours configured lifetimes', async () => {
    const short = new GatewaySessions(store, clock, new StoreAuditLog(store, clock), accounts, { ttlMs: MINUTE, refreshTtlMs: 30_000 });
    const issued = await short.issue(alice);
    assert.equal(issued.expiresAt, T0 + 30_000, 'never beyond the family');
    assert.equal(issued.refreshExpiresAt, T0 + 30_000);
    assert.throws(() => new GatewaySessions(store, clock, new StoreAuditLog(store, clock), accounts, { ttlMs: 0 }), RangeError);
  });
});
