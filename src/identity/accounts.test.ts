import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { FrozenClock } from '../core/index.ts';
import { StoreAuditLog } from '../audit/audit-log.ts';
import { openStore, type AuditRecord, type Store } from '../store/index.ts';
import { AccountError, Accounts, GATEWAY_ROLES, type AccountErrorCode } from './accounts.ts';
import { Credentials } from './credentials.ts';
import { GatewaySessions } from './gateway-sessions.ts';
import type { ScryptParameters } from './passwords.ts';

const T0 = Date.UTC(2025, 0, 1);
const MINUTE = 60_000;
const PASSWORD = 'correct horse battery staple';
/** The smallest parameters the bounds allow: ~2 MiB and a few milliseconds per hash. */
const FAST_SCRYPT: ScryptParameters = { N: 2 ** 14, r: 1, p: 1, keyLength: 32, saltLength: 16 };

const accountError = (code: AccountErrorCode, message?: RegExp) => (error: unknown) => {
  assert.ok(error instanceof AccountError, `expected an AccountError, got ${String(error)}`);
  assert.equal(error.code, code);
  if (message) assert.match(error.message, message);
  return true;
};

describe('Accounts', () => {
  let store: Store;
  let clock: FrozenClock;
  let credentials: Credentials;
  let accounts: Accounts;
  let sessions: GatewaySessions;

  beforeEach(async () => {
    store = await openStore('sqlite::memory:');
    clock = new FrozenClock(T0);
    const audit = new StoreAuditLog(store, clock);
    credentials = new Credentials(store, clock, audit);
    accounts = new Accounts(store, clock, audit, credentials, { scrypt: FAST_SCRYPT });
    sessions = new GatewaySessions(store, clock, audit, accounts);
  });
  afterEach(async () => {
    await store.close();
  });

  const events = async (action?: string): Promise<AuditRecord[]> => store.listAudit({ limit: 1000, ...(action && { action }) });

  /** No event may carry a secret: the password, a key, a token, or a hash of one. */
  async function assertNoSecretsAudited(...secrets: string[]): Promise<void> {
    const all = JSON.stringify(await events());
    for (const secret of secrets) {
      assert.ok(!all.includes(secret), 'a secret reached the audit log');
      assert.ok(!all.includes(createHash('sha256').update(secret).digest('hex')), 'a secret hash reached the audit log');
    }
    assert.ok(!all.includes('$scrypt$'), 'a password hash reached the audit log');
  }

  it('has the four gateway roles', () => {
    assert.deepEqual(GATEWAY_ROLES, ['admin', 'approver', 'auditor', 'user']);
  });

  it('creates a user with the user role by default, audited without the password', async () => {
    const account = await accounts.createUser({ name: 'alice', password: PASSWORD, groups: ['ops', 'ops', 'dba'] }, 'local-admin');
    assert.deepEqual(account, {
      name: 'alice',
      kind: 'user',
      roles: ['user'],
      groups: ['ops', 'dba'],
      createdAt: T0,
      disabledAt: undefined,
      lastUsedAt: undefined,
      hasPassword: true,
      maxGrantMs: undefined,
      connections: undefined,
    });
    assert.deepEqual(await accounts.get('alice'), account);
    assert.match((await store.getAccount('alice'))?.passwordHash ?? '', /^\$scrypt\$ln=14,r=1,p=1\$/);
    const [created] = await events('account.created');
    assert.equal(created?.actor, 'local-admin');
    assert.equal(created?.subject, 'alice');
    assert.deepEqual(created?.details, { kind: 'user', roles: ['user'], groups: ['ops', 'dba'], hasPassword: true });
    await assertNoSecretsAudited(PASSWORD);

    const bare = await accounts.createUser({ name: 'oidc.bob@example.com', roles: ['approver', 'admin'] }, 'local-admin');
    assert.equal(bare.hasPassword, false);
    assert.deepEqual(bare.roles, ['admin', 'approver'], 'canonical order');
    assert.deepEqual(
      (await accounts.list()).map((a) => a.name),
      ['alice', 'oidc.bob@example.com'],
    );
  });

  it('refuses bad names, taken names (in any letter case), unknown roles and weak passwords, saying why', async () => {
    for (const name of ['', '-alice', 'al ice', 'a'.repeat(64), 'alice\n', 'al/ice']) {
      await assert.rejects(accounts.createUser({ name }, 'admin'), accountError('invalid-name'), JSON.stringify(name));
    }
    await accounts.createUser({ name: 'Alice' }, 'admin');
    await assert.rejects(accounts.createUser({ name: 'alice' }, 'admin'), accountError('exists', /alice/));
    await assert.rejects(accounts.createServiceAccount({ name: 'ALICE' }, 'admin'), accountError('exists'));
    await assert.rejects(
      accounts.createUser({ name: 'carol', roles: ['root' as never] }, 'admin'),
      accountError('invalid-input', /"root"/),
    );
    await assert.rejects(
      accounts.createUser({ name: 'carol', password: 'short' }, 'admin'),
      accountError('weak-password', /^password must be at least 12 characters$/),
    );
    await assert.rejects(
      accounts.createUser({ name: 'carol', password: 'a'.repeat(20) }, 'admin'),
      accountError('weak-password', /single repeated character/),
    );
    assert.equal(await accounts.get('carol'), undefined, 'nothing half-created');
  });

  it('logs a user in by password and records it; every failure looks the same to the caller', async () => {
    await accounts.createUser({ name: 'alice', password: PASSWORD, roles: ['user', 'approver'], groups: ['ops'] }, 'admin');
    await accounts.createUser({ name: 'nopass' }, 'admin');
    clock.advance(MINUTE);
    const who = await accounts.authenticatePassword('alice', PASSWORD);
    assert.ok(who);
    assert.deepEqual({ ...who.principal }, { name: 'alice', kind: 'user' });
    assert.deepEqual(who.roles, ['approver', 'user']);
    assert.deepEqual(who.groups, ['ops']);
    assert.equal(who.via, 'password');
    assert.equal(who.maxGrantMs, undefined);
    assert.ok(Object.isFrozen(who));
    assert.equal((await accounts.get('alice'))?.lastUsedAt, T0 + MINUTE);
    // NFKC: the same password however it was typed.
    await accounts.setPassword('alice', 'caf\u00e9 au lait please', 'alice');
    assert.ok(await accounts.authenticatePassword('alice', 'cafe\u0301 au lait please'));

    assert.equal(await accounts.authenticatePassword('alice', PASSWORD), undefined, 'old password');
    assert.equal(await accounts.authenticatePassword('alice', ''), undefined);
    assert.equal(await accounts.authenticatePassword('mallory', PASSWORD), undefined);
    assert.equal(await accounts.authenticatePassword('nopass', ''), undefined);
    assert.equal(await accounts.authenticatePassword('bad name!', PASSWORD), undefined);

    const failed = await events('login.failed');
    assert.deepEqual(
      failed.map((e) => [e.subject, e.outcome, e.details.reason]),
      [
        ['alice', 'failure', 'wrong-password'],
        ['alice', 'failure', 'wrong-password'],
        ['mallory', 'failure', 'unknown-account'],
        ['nopass', 'failure', 'no-password'],
        ['bad name!', 'failure', 'unknown-account'],
      ],
    );
    assert.equal((await events('login.succeeded')).length, 2);
    assert.equal((await events('account.password-set')).length, 1);
    await assertNoSecretsAudited(PASSWORD, 'caf\u00e9 au lait please');
  });

  it('fails closed on a stored password record it cannot verify', async () => {
    await accounts.createUser({ name: 'alice', password: PASSWORD }, 'admin');
    await store.updateAccount('alice', { passwordHash: '$scrypt$ln=30,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA' });
    assert.equal(await accounts.authenticatePassword('alice', PASSWORD), undefined);
    assert.equal((await events('login.failed'))[0]?.details.reason, 'unusable-password-record');
  });

  it('upgrades a password hashed with older parameters at the next login', async () => {
    await accounts.createUser({ name: 'alice', password: PASSWORD }, 'admin');
    const audit = new StoreAuditLog(store, clock);
    const stronger = new Accounts(store, clock, audit, credentials, { scrypt: { ...FAST_SCRYPT, r: 2 } });
    assert.ok(await stronger.authenticatePassword('alice', PASSWORD));
    assert.match((await store.getAccount('alice'))?.passwordHash ?? '', /^\$scrypt\$ln=14,r=2,p=1\$/);
    assert.ok(await stronger.authenticatePassword('alice', PASSWORD));
  });

  it('setPassword: policy, kind and existence are checked', async () => {
    await accounts.createUser({ name: 'alice' }, 'admin');
    await accounts.createServiceAccount({ name: 'agent' }, 'admin');
    await assert.rejects(accounts.setPassword('alice', 'tiny', 'admin'), accountError('weak-password', /at least 12 characters/));
    await assert.rejects(accounts.setPassword('agent', PASSWORD, 'admin'), accountError('wrong-kind'));
    await assert.rejects(accounts.setPassword('nobody', PASSWORD, 'admin'), accountError('unknown'));
    assert.equal(await accounts.authenticatePassword('alice', PASSWORD), undefined);
    await accounts.setPassword('alice', PASSWORD, 'admin');
    assert.equal((await accounts.get('alice'))?.hasPassword, true);
    assert.ok(await accounts.authenticatePassword('alice', PASSWORD));
    const [set] = await events('account.password-set');
    assert.deepEqual([set?.actor, set?.subject, set?.details], ['admin', 'alice', {}]);
  });

  it('setRoles replaces the roles and records from and to; a service account holds only user', async () => {
    await accounts.createUser({ name: 'alice' }, 'admin');
    const changed = await accounts.setRoles('alice', ['auditor', 'admin', 'auditor'], 'root');
    assert.deepEqual(changed.roles, ['admin', 'auditor']);
    assert.deepEqual((await accounts.get('alice'))?.roles, ['admin', 'auditor']);
    const [event] = await events('account.roles-changed');
    assert.deepEqual([event?.actor, event?.subject, event?.details], ['root', 'alice', { from: ['user'], to: ['admin', 'auditor'] }]);
    await assert.rejects(accounts.setRoles('nobody', ['user'], 'root'), accountError('unknown'));
    await assert.rejects(accounts.setRoles('alice', ['superuser' as never], 'root'), accountError('invalid-input'));

    await accounts.createServiceAccount({ name: 'agent' }, 'admin');
    await assert.rejects(accounts.setRoles('agent', ['admin'], 'root'), accountError('wrong-kind', /only the user role/));
    await assert.rejects(accounts.createServiceAccount({ name: 'agent2', roles: ['approver'] }, 'root'), accountError('wrong-kind'));
    assert.deepEqual((await accounts.setRoles('agent', [], 'root')).roles, []);
  });

  it('creates a service account with a dbr_sak_ key stored only as its SHA-256', async () => {
    const { account, key } = await accounts.createServiceAccount(
      { name: 'deploy-bot', maxGrantMs: 10 * MINUTE, connections: ['orders-db', 'orders-db', 'billing'] },
      'local-admin',
    );
    assert.match(key, /^dbr_sak_[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(key.slice('dbr_sak_'.length), 'base64url').length, 32);
    assert.deepEqual(account, {
      name: 'deploy-bot',
      kind: 'service-account',
      roles: ['user'],
      groups: [],
      createdAt: T0,
      disabledAt: undefined,
      lastUsedAt: undefined,
      hasPassword: false,
      maxGrantMs: 10 * MINUTE,
      connections: ['orders-db', 'billing'],
    });
    const keys = await store.listServiceAccountKeys('deploy-bot');
    assert.equal(keys.length, 1);
    assert.equal(keys[0]?.keyHash, createHash('sha256').update(key).digest('hex'));

    clock.advance(MINUTE);
    const who = await accounts.authenticateKey(key);
    assert.ok(who);
    assert.deepEqual({ ...who.principal }, { name: 'deploy-bot', kind: 'service-account' });
    assert.equal(who.via, 'service-account-key');
    assert.deepEqual(who.roles, ['user']);
    assert.equal(who.maxGrantMs, 10 * MINUTE);
    assert.deepEqual(who.connections, ['orders-db', 'billing']);
    assert.equal((await accounts.get('deploy-bot'))?.lastUsedAt, T0 + MINUTE);
    // Per-request authentications refresh lastUsedAt to the minute, not on every call.
    clock.advance(1000);
    assert.ok(await accounts.authenticateKey(key));
    assert.equal((await accounts.get('deploy-bot'))?.lastUsedAt, T0 + MINUTE);

    const { account: open } = await accounts.createServiceAccount({ name: 'any-bot' }, 'local-admin');
    assert.equal(open.maxGrantMs, undefined);
    assert.equal(open.connections, undefined, 'undefined means any connection');
    const { account: none } = await accounts.createServiceAccount({ name: 'no-bot', connections: [] }, 'local-admin');
    assert.deepEqual(none.connections, [], 'an empty list means none, not any');

    for (const maxGrantMs of [0, -1, 1.5, Number.NaN, 400 * 86_400_000]) {
      await assert.rejects(accounts.createServiceAccount({ name: 'bad-bot', maxGrantMs }, 'admin'), accountError('invalid-input'));
    }
    await assert.rejects(
      accounts.createServiceAccount({ name: 'bad-bot', connections: ['no spaces'] }, 'admin'),
      accountError('invalid-input'),
    );
    await assertNoSecretsAudited(key);
  });

  it('refuses keys that are malformed, unknown or belong to a user, and says so only in the audit log', async () => {
    const { key } = await accounts.createServiceAccount({ name: 'bot' }, 'admin');
    for (const bad of ['', 'dbr_sak_', `${key}x`, key.slice(0, -1), key.replace('dbr_sak_', 'dbr_ses_'), `dbr_sak_${'A'.repeat(43)}`]) {
      assert.equal(await accounts.authenticateKey(bad), undefined, bad);
    }
    const reasons = (await events('login.failed')).map((e) => e.details.reason);
    assert.deepEqual(reasons, ['malformed-key', 'malformed-key', 'malformed-key', 'malformed-key', 'malformed-key', 'unknown-key']);
    await assertNoSecretsAudited(key);
  });

  it('rotating a key ends the old one at once', async () => {
    const { key: first } = await accounts.createServiceAccount({ name: 'bot' }, 'admin');
    assert.ok(await accounts.authenticateKey(first));
    const second = await accounts.rotateKey('bot', 'admin');
    assert.notEqual(second, first);
    assert.match(second, /^dbr_sak_[A-Za-z0-9_-]{43}$/);
    assert.equal(await accounts.authenticateKey(first), undefined);
    assert.equal((await events('login.failed')).at(-1)?.details.reason, 'rotated-key');
    assert.ok(await accounts.authenticateKey(second));
    const [rotated] = await events('service-account.key-rotated');
    assert.deepEqual([rotated?.actor, rotated?.subject, rotated?.details], ['admin', 'bot', {}]);

    await accounts.createUser({ name: 'alice' }, 'admin');
    await assert.rejects(accounts.rotateKey('alice', 'admin'), accountError('wrong-kind'));
    await assert.rejects(accounts.rotateKey('nobody', 'admin'), accountError('unknown'));
    await assertNoSecretsAudited(first, second);
  });

  it("changing a service account's limits applies to its next request and revokes the live grants beyond them, on record", async () => {
    const { key } = await accounts.createServiceAccount(
      { name: 'bot', maxGrantMs: 60 * MINUTE, connections: ['orders', 'billing'] },
      'admin',
    );
    const mint = (connection: string, ttlMs: number) => credentials.mint({ principal: 'bot', connection, ttlMs, grantedBy: 'policy' });
    const short = await mint('orders', 10 * MINUTE);
    const long = await mint('orders', 60 * MINUTE);
    const billing = await mint('billing', 5 * MINUTE);
    const expired = await mint('billing', MINUTE);
    const other = await credentials.mint({ principal: 'carol', connection: 'billing', ttlMs: 60 * MINUTE, grantedBy: 'policy' });
    clock.advance(2 * MINUTE);

    const changed = await accounts.setLimits('bot', { maxGrantMs: 15 * MINUTE, connections: ['orders', 'orders'] }, 'ada');
    assert.equal(changed.account.maxGrantMs, 15 * MINUTE);
    assert.deepEqual(changed.account.connections, ['orders']);
    assert.deepEqual([...changed.revoked].sort(), [long.grantId, billing.grantId].sort());
    const state = async (id: string) => (await store.getGrant(id))?.revokeReason;
    assert.equal(await state(long.grantId), 'limits changed: bot now gets grants of at most 15m');
    assert.equal(await state(billing.grantId), 'limits changed: bot may no longer use billing');
    assert.equal(await state(short.grantId), undefined, 'within the new limits: kept');
    assert.equal(await state(expired.grantId), undefined, 'expired already: nothing to revoke');
    assert.equal(await state(other.grantId), undefined, "another principal's grant is not touched");
    const who = await accounts.authenticateKey(key);
    assert.equal(who?.maxGrantMs, 15 * MINUTE, 'the next request has the new limits');
    assert.deepEqual(who?.connections, ['orders']);

    const [limits] = await events('service-account.limits');
    assert.deepEqual([limits?.actor, limits?.subject, limits?.outcome], ['ada', 'bot', 'success']);
    assert.deepEqual(limits?.details, {
      from: { maxGrantMs: 60 * MINUTE, connections: ['orders', 'billing'] },
      to: { maxGrantMs: 15 * MINUTE, connections: ['orders'] },
      grantsRevoked: changed.revoked,
    });
    const revokedEvents = (await events('grant.revoked')).map((e) => [e.actor, e.subject]);
    assert.deepEqual(
      revokedEvents.sort(),
      [
        ['ada', long.grantId],
        ['ada', billing.grantId],
      ].sort(),
    );

    // An absent field stays; null removes the limit; raising a limit revokes nothing.
    const raised = await accounts.setLimits('bot', { connections: null }, 'ada');
    assert.deepEqual([raised.account.maxGrantMs, raised.account.connections, raised.revoked], [15 * MINUTE, undefined, []]);
    const open = await accounts.setLimits('bot', { maxGrantMs: null }, 'ada');
    assert.deepEqual([open.account.maxGrantMs, open.account.connections], [undefined, undefined]);
    // An empty list: no connection at all, so every live grant goes.
    const none = await accounts.setLimits('bot', { connections: [] }, 'ada');
    assert.deepEqual(none.revoked, [short.grantId]);

    await assert.rejects(accounts.setLimits('bot', {}, 'ada'), accountError('invalid-input', /maximum grant duration, connections/));
    for (const maxGrantMs of [0, 1.5, 400 * 86_400_000]) {
      await assert.rejects(accounts.setLimits('bot', { maxGrantMs }, 'ada'), accountError('invalid-input'));
    }
    await assert.rejects(accounts.setLimits('bot', { connections: ['no spaces'] }, 'ada'), accountError('invalid-input'));
    await accounts.createUser({ name: 'alice' }, 'admin');
    await assert.rejects(accounts.setLimits('alice', { maxGrantMs: MINUTE }, 'ada'), accountError('wrong-kind'));
    await assert.rejects(accounts.setLimits('nobody', { maxGrantMs: MINUTE }, 'ada'), accountError('unknown'));
    assert.equal((await events('service-account.limits')).length, 4, 'refused changes are not changes');
    await assertNoSecretsAudited(key);
  });

  it('disabling stops password, key and session logins and revokes live grants and sessions; enabling lets the account in again', async () => {
    await accounts.createUser({ name: 'alice', password: PASSWORD }, 'admin');
    const { key } = await accounts.createServiceAccount({ name: 'bot' }, 'admin');
    const alice = await accounts.authenticatePassword('alice', PASSWORD);
    const bot = await accounts.authenticateKey(key);
    assert.ok(alice && bot);
    const aliceSession = await sessions.issue(alice);
    const botSession = await sessions.issue(bot);
    const live = await credentials.mint({ principal: 'alice', connection: 'orders', ttlMs: 15 * MINUTE, grantedBy: 'policy' });
    const other = await credentials.mint({ principal: 'carol', connection: 'orders', ttlMs: 15 * MINUTE, grantedBy: 'policy' });
    const botGrant = await credentials.mint({ principal: 'bot', connection: 'orders', ttlMs: 15 * MINUTE, grantedBy: 'policy' });

    clock.advance(1000);
    await accounts.disable('alice', 'root', 'left the company');
    await accounts.disable('bot', 'root');
    const account = await accounts.get('alice');
    assert.equal(account?.disabledAt, T0 + 1000);

    assert.equal((await store.getGrant(live.grantId))?.revokedAt, T0 + 1000);
    assert.equal((await store.getGrant(live.grantId))?.revokeReason, 'left the company');
    assert.equal((await store.getGrant(botGrant.grantId))?.revokedAt, T0 + 1000);
    assert.equal((await store.getGrant(other.grantId))?.revokedAt, undefined);
    assert.equal(await credentials.checkPassword('alice', 'orders', live.credential), undefined);

    assert.equal(await accounts.authenticatePassword('alice', PASSWORD), undefined);
    assert.equal(await accounts.authenticateKey(key), undefined);
    assert.equal(await sessions.verify(aliceSession.token), undefined);
    assert.equal(await sessions.verify(botSession.token), undefined);
    assert.equal(await sessions.refresh(aliceSession.refreshToken), undefined);
    assert.equal(
      (await store.findGatewaySessionByTokenHash(createHash('sha256').update(aliceSession.token).digest('hex')))?.revokeReason,
      'account-disabled',
    );
    assert.equal(await accounts.fromOidc('alice', 'user', []), undefined);
    await assert.rejects(sessions.issue(alice), accountError('disabled'));

    const disabled = (await events('account.disabled')).find((e) => e.subject === 'alice');
    assert.deepEqual(disabled?.details, {
      reason: 'left the company',
      grantsRevoked: [live.grantId],
      sessionsRevoked: 1,
      alreadyDisabled: false,
    });
    assert.equal((await events('login.failed')).filter((e) => e.details.reason === 'disabled').length, 2);
    // Disabling twice keeps the first time and still sweeps.
    clock.advance(1000);
    await accounts.disable('alice', 'root');
    assert.equal((await accounts.get('alice'))?.disabledAt, T0 + 1000);

    await accounts.enable('alice', 'root');
    await accounts.enable('bot', 'root');
    assert.equal((await accounts.get('alice'))?.disabledAt, undefined);
    assert.ok(await accounts.authenticatePassword('alice', PASSWORD));
    assert.ok(await accounts.authenticateKey(key), 'the key works again');
    assert.equal(await sessions.verify(aliceSession.token), undefined, 'revoked sessions stay revoked');
    assert.equal((await store.getGrant(live.grantId))?.revokedAt, T0 + 1000, 'revoked grants stay revoked');
    assert.equal((await events('account.enabled')).length, 2);
    await assert.rejects(accounts.disable('nobody', 'root'), accountError('unknown'));
    await assert.rejects(accounts.enable('nobody', 'root'), accountError('unknown'));
    await assertNoSecretsAudited(PASSWORD, key, aliceSession.token, aliceSession.refreshToken, live.credential);
  });

  describe('fromOidc', () => {
    it('creates the account on first sight with the user role and the token groups, then follows the account roles', async () => {
      const first = await accounts.fromOidc('bob@example.com', 'user', ['eng', 'oncall']);
      assert.ok(first);
      assert.deepEqual({ ...first.principal }, { name: 'bob@example.com', kind: 'user' });
      assert.deepEqual(first.roles, ['user']);
      assert.deepEqual(first.groups, ['eng', 'oncall']);
      assert.equal(first.via, 'oidc');
      const account = await accounts.get('bob@example.com');
      assert.equal(account?.hasPassword, false);
      assert.deepEqual(account?.groups, ['eng', 'oncall']);
      assert.equal(account?.lastUsedAt, T0);
      const [created] = await events('account.created');
      assert.deepEqual([created?.actor, created?.subject], ['oidc', 'bob@example.com']);

      await accounts.setRoles('bob@example.com', ['approver'], 'admin');
      const again = await accounts.fromOidc('bob@example.com', 'user', ['eng']);
      assert.deepEqual(again?.roles, ['approver']);
      assert.deepEqual(again?.groups, ['eng']);
      assert.deepEqual((await accounts.get('bob@example.com'))?.groups, ['eng'], 'groups follow the latest token');
      assert.equal((await events('account.created')).length, 1);
    });

    it('a pre-created account without a password gets its roles; agents come in as service accounts', async () => {
      await accounts.createUser({ name: 'dana', roles: ['admin'] }, 'local-admin');
      assert.deepEqual((await accounts.fromOidc('dana', 'user', []))?.roles, ['admin']);
      const agent = await accounts.fromOidc('ci-client', 'service-account', []);
      assert.equal(agent?.principal.kind, 'service-account');
      assert.equal((await accounts.get('ci-client'))?.kind, 'service-account');
    });

    it('fails closed: disabled, other kind, a local account with a password, a name in another case, a bad name', async () => {
      await accounts.createUser({ name: 'alice', password: PASSWORD, roles: ['admin'] }, 'admin');
      await accounts.createServiceAccount({ name: 'bot' }, 'admin');
      await accounts.createUser({ name: 'erin' }, 'admin');
      await accounts.disable('erin', 'admin');
      assert.equal(await accounts.fromOidc('alice', 'user', []), undefined, 'must not inherit a local admin');
      assert.equal(await accounts.fromOidc('bot', 'user', []), undefined);
      assert.equal(await accounts.fromOidc('erin', 'user', []), undefined);
      assert.equal(await accounts.fromOidc('ALICE', 'user', []), undefined);
      assert.equal(await accounts.fromOidc('auth0|1234', 'user', []), undefined);
      assert.equal(await accounts.fromOidc('frank', 'user', ['\u0000']), undefined);
      assert.equal(await accounts.get('ALICE'), undefined);
    });
  });
});
