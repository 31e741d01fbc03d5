import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { FrozenClock } from '../core/index.ts';
import { StoreAuditLog } from '../audit/audit-log.ts';
import { openStore, type Store } from '../store/index.ts';
import { CREDENTIAL_PREFIX, Credentials, MintRefused } from './credentials.ts';
import { deterministicSalt, SCRAM_ITERATIONS, ScramClientExchange, ScramServerExchange } from './scram.ts';

const T0 = Date.UTC(2025, 0, 1);
const MINUTE = 60_000;

/** Logs in over SCRAM with `password`; the grant id it logged in as, or undefined. */
async function scramLogin(credentials: Credentials, principal: string, connection: string, password: string) {
  const candidates = await credentials.scramCandidates(principal, connection);
  const client = new ScramClientExchange(password, ['SCRAM-SHA-256'], undefined);
  const server = new ScramServerExchange(undefined);
  const serverFirst = server.start(client.mechanism, client.clientFirst(), candidates.salt, candidates.iterations);
  const result = server.finish(client.clientFinal(serverFirst), candidates.verifiers);
  if (!result) return undefined;
  client.verifyServerFinal(result.serverFinal);
  return candidates.grant(result.index).id;
}

describe('Credentials', () => {
  let store: Store;
  let clock: FrozenClock;
  let credentials: Credentials;

  beforeEach(async () => {
    store = await openStore('sqlite::memory:');
    clock = new FrozenClock(T0);
    credentials = new Credentials(store, clock, new StoreAuditLog(store, clock));
  });
  afterEach(async () => {
    await store.close();
  });

  const mint = (principal = 'alice', connection = 'shop', ttlMs = 15 * MINUTE) =>
    credentials.mint({ principal, connection, ttlMs, grantedBy: 'admin', reason: 'ticket 42' });

  it('mints dbr_ plus 43 base64url characters (32 random bytes), expiring after the ttl', async () => {
    const minted = await mint();
    assert.match(minted.credential, /^dbr_[A-Za-z0-9_-]{43}$/);
    assert.equal(CREDENTIAL_PREFIX, 'dbr_');
    assert.equal(Buffer.from(minted.credential.slice(4), 'base64url').length, 32);
    assert.equal(minted.expiresAt, T0 + 15 * MINUTE);
    const other = await mint();
    assert.notEqual(other.credential, minted.credential);
    assert.notEqual(other.grantId, minted.grantId);
  });

  it('records the grant: who, where, by whom, why, when', async () => {
    const minted = await mint();
    const record = await store.getGrant(minted.grantId);
    assert.ok(record);
    assert.equal(record.principal, 'alice');
    assert.equal(record.connection, 'shop');
    assert.equal(record.grantedBy, 'admin');
    assert.equal(record.reason, 'ticket 42');
    assert.equal(record.createdAt, T0);
    assert.equal(record.expiresAt, T0 + 15 * MINUTE);
    assert.equal(record.revokedAt, undefined);
  });

  it("carries who the principal is into its grant: the account's kind and groups, or what the request says", async () => {
    await store.insertAccount({ name: 'etl-bot', kind: 'service-account', roles: ['user'], groups: ['etl'], createdAt: T0 });
    const agent = await mint('etl-bot');
    const grant = await credentials.checkPassword('etl-bot', 'shop', agent.credential);
    assert.equal(grant?.principal.kind, 'service-account');
    assert.deepEqual(grant?.groups, ['etl']);
    const fromIdp = await credentials.mint({
      principal: 'bob',
      principalKind: 'user',
      groups: ['dba'],
      connection: 'shop',
      ttlMs: MINUTE,
      grantedBy: 'policy',
    });
    const bob = await credentials.checkPassword('bob', 'shop', fromIdp.credential);
    assert.equal(bob?.principal.kind, 'user');
    assert.deepEqual(bob?.groups, ['dba']);
    const nobody = await credentials.checkPassword('alice', 'shop', (await mint()).credential);
    assert.deepEqual([nobody?.principal.kind, nobody?.groups], ['user', []]);
  });

  it('a disabled account gets no credential, and one it holds no longer logs in', async () => {
    const { credential } = await mint('etl-bot');
    await store.insertAccount({
      name: 'etl-bot',
      kind: 'service-account',
      passwordHash: undefined,
      roles: ['user'],
      groups: [],
      createdAt: T0,
      maxGrantMs: undefined,
      connections: undefined,
    });
    assert.ok(await credentials.checkPassword('etl-bot', 'shop', credential), 'enabled: the credential works');
    await store.updateAccount('etl-bot', { disabledAt: T0 + 1 });
    assert.equal(await credentials.checkPassword('etl-bot', 'shop', credential), undefined);
    assert.deepEqual((await credentials.scramCandidates('etl-bot', 'shop')).verifiers, []);
    await assert.rejects(mint('etl-bot'), MintRefused);
  });

  it('refuses a lifetime that is not positive', async () => {
    for (const ttlMs of [0, -1, Number.NaN]) {
      await assert.rejects(mint('alice', 'shop', ttlMs), RangeError);
    }
  });

  it('the store never holds the credential, only its SHA-256 and a SCRAM verifier', async () => {
    const minted = await mint();
    const record = await store.getGrant(minted.grantId);
    assert.ok(record);
    const secret = minted.credential.slice(CREDENTIAL_PREFIX.length);
    const secretBytes = Buffer.from(secret, 'base64url');
    for (const [field, value] of Object.entries(record)) {
      const text = String(value);
      assert.ok(!text.includes(secret), `${field} holds the credential`);
      assert.ok(!text.includes(secretBytes.toString('base64')), `${field} holds the credential (base64)`);
      assert.ok(!text.includes(secretBytes.toString('hex')), `${field} holds the credential (hex)`);
    }
    assert.equal(record.tokenHash, createHash('sha256').update(minted.credential).digest('hex'));
    assert.equal(record.scramIterations, SCRAM_ITERATIONS);
    assert.equal(record.scramSalt, deterministicSalt('alice', 'shop').toString('base64'));
  });

  describe('checkPassword', () => {
    it('accepts the credential for its principal and connection, as that grant', async () => {
      const minted = await mint();
      const grant = await credentials.checkPassword('alice', 'shop', minted.credential);
      assert.ok(grant);
      assert.equal(grant.id, minted.grantId);
      assert.equal(grant.principal.name, 'alice');
      assert.equal(grant.principal.kind, 'user');
      assert.equal(grant.connection, 'shop');
      assert.equal(grant.expiresAt, minted.expiresAt);
      assert.ok(Object.isFrozen(grant));
    });

    it('refuses it for another principal or another connection', async () => {
      const minted = await mint();
      assert.equal(await credentials.checkPassword('bob', 'shop', minted.credential), undefined);
      assert.equal(await credentials.checkPassword('alice', 'billing', minted.credential), undefined);
      assert.equal(await credentials.checkPassword('Alice', 'shop', minted.credential), undefined);
    });

    it('refuses it from the moment it expires', async () => {
      const minted = await mint();
      clock.advance(15 * MINUTE - 1);
      assert.ok(await credentials.checkPassword('alice', 'shop', minted.credential));
      clock.advance(1);
      assert.equal(await credentials.checkPassword('alice', 'shop', minted.credential), undefined);
    });

    it('refuses it once revoked', async () => {
      const minted = await mint();
      assert.equal(await store.revokeGrant(minted.grantId, clock.now()), true);
      assert.equal(await credentials.checkPassword('alice', 'shop', minted.credential), undefined);
    });

    it('refuses strings that are not credentials, and near misses', async () => {
      const minted = await mint();
      const hash = createHash('sha256').update(minted.credential).digest('hex');
      for (const password of [
        '',
        'dbr_',
        'postgres',
        hash,
        minted.credential.slice(4),
        `${minted.credential}x`,
        minted.credential.toUpperCase(),
      ]) {
        assert.equal(await credentials.checkPassword('alice', 'shop', password), undefined, password);
      }
    });
  });

  describe('scramCandidates', () => {
    it('a SCRAM login with the credential logs in as its grant', async () => {
      const minted = await mint();
      assert.equal(await scramLogin(credentials, 'alice', 'shop', minted.credential), minted.grantId);
      assert.equal(await scramLogin(credentials, 'alice', 'shop', 'dbr_wrong'), undefined);
    });

    it('offers verifiers only for live grants of that principal on that connection', async () => {
      const live = await mint();
      const revoked = await mint();
      const shortLived = await mint('alice', 'shop', MINUTE);
      await mint('bob', 'shop');
      await mint('alice', 'billing');
      await store.revokeGrant(revoked.grantId, clock.now());
      clock.advance(MINUTE);

      const candidates = await credentials.scramCandidates('alice', 'shop');
      assert.equal(candidates.verifiers.length, 1);
      assert.equal(candidates.grant(0).id, live.grantId);
      assert.equal(await scramLogin(credentials, 'alice', 'shop', live.credential), live.grantId);
      assert.equal(await scramLogin(credentials, 'alice', 'shop', revoked.credential), undefined);
      assert.equal(await scramLogin(credentials, 'alice', 'shop', shortLived.credential), undefined);
    });

    it('finds the right grant among several live ones', async () => {
      const minted = [await mint(), await mint(), await mint()];
      for (const { credential, grantId } of minted) {
        assert.equal(await scramLogin(credentials, 'alice', 'shop', credential), grantId);
      }
    });

    it('announces the same salt whether or not the principal has credentials', async () => {
      const before = await credentials.scramCandidates('alice', 'shop');
      assert.equal(before.verifiers.length, 0);
      await mint();
      const after = await credentials.scramCandidates('alice', 'shop');
      assert.equal(after.verifiers.length, 1);
      assert.deepEqual(after.salt, before.salt);
      assert.equal(after.iterations, before.iterations);
      assert.deepEqual(after.verifiers[0]!.salt, after.salt);

      const unknown = await credentials.scramCandidates('nobody', 'shop');
      assert.equal(unknown.verifiers.length, 0);
      assert.deepEqual(unknown.salt, deterministicSalt('nobody', 'shop'));
      assert.equal(unknown.salt.length, after.salt.length);
      assert.equal(unknown.iterations, SCRAM_ITERATIONS);
    });
  });
});
