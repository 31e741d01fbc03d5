import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { StoreAuditLog } from '../audit/audit-log.ts';
import { FrozenClock } from '../core/index.ts';
import { openStore, type Store } from '../store/index.ts';
import { Accounts } from './accounts.ts';
import { Credentials } from './credentials.ts';
import { getServiceAccount, listServiceAccounts, serviceAccountReport } from './service-accounts.ts';

const T0 = Date.UTC(2026, 10, 22, 9);
const MINUTE = 60_000;
const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();

describe('service-account views', () => {
  let store: Store;
  let clock: FrozenClock;
  let credentials: Credentials;
  let accounts: Accounts;

  beforeEach(async () => {
    store = await openStore('sqlite::memory:');
    clock = new FrozenClock(T0);
    const audit = new StoreAuditLog(store, clock);
    credentials = new Credentials(store, clock, audit);
    accounts = new Accounts(store, clock, audit, credentials);
  });
  afterEach(() => store.close());

  it('lists service accounts only, by name, with their limits, key and last use', async () => {
    await accounts.createServiceAccount({ name: 'etl-bot', maxGrantMs: 15 * MINUTE, connections: ['orders-db'] }, 'ada');
    await accounts.createUser({ name: 'alice' }, 'ada');
    const { key } = await accounts.createServiceAccount({ name: 'ci-bot' }, 'ada');
    clock.advance(MINUTE);
    await accounts.rotateKey('ci-bot', 'ada');
    await accounts.authenticateKey(key);
    await accounts.disable('etl-bot', 'ada');
    const listed = await listServiceAccounts(store);
    assert.deepEqual(
      listed.map((a) => a.name),
      ['ci-bot', 'etl-bot'],
    );
    const [ci, etl] = listed;
    assert.deepEqual(
      { ...ci, key: { ...ci!.key, id: ci!.key?.id.startsWith('sak_') } },
      {
        name: 'ci-bot',
        createdAt: iso(T0),
        disabledAt: null,
        lastUsedAt: null,
        maxGrantDuration: null,
        connections: null,
        key: { id: true, createdAt: iso(T0 + MINUTE), works: true },
        retiredKeys: 1,
      },
    );
    assert.equal(etl?.maxGrantDuration, '15m');
    assert.deepEqual(etl?.connections, ['orders-db']);
    assert.equal(etl?.disabledAt, iso(T0 + MINUTE));
    assert.equal(etl?.key?.works, false, 'a disabled account stops its key');
    assert.deepEqual(await listServiceAccounts(store, { after: 'ci-bot', limit: 5 }), [etl]);
    assert.equal(await getServiceAccount(store, 'alice'), undefined, 'a user is not a service account');
    // An OIDC client has no key.
    await accounts.fromOidc('idp-agent', 'service-account', []);
    assert.equal((await getServiceAccount(store, 'idp-agent'))?.key, null);
  });

  it('reports usage in a window: totals, the connections it may use and those it used, what is live and last', async () => {
    const { key } = await accounts.createServiceAccount({ name: 'etl-bot', connections: ['orders-db', 'billing-db'] }, 'ada');
    const old = await credentials.mint({ principal: 'etl-bot', connection: 'orders-db', ttlMs: 10 * MINUTE, grantedBy: 'policy' });
    const oldSession = await store.startSession({
      protocol: 'postgres',
      principal: 'etl-bot',
      connection: 'orders-db',
      grantId: old.grantId,
      clientAddress: '127.0.0.1:1',
      startedAt: T0,
    });
    await store.endSession(oldSession.id, T0 + MINUTE, 'client closed');
    clock.advance(40 * DAY);
    await accounts.authenticateKey(key);
    const recent = await credentials.mint({ principal: 'etl-bot', connection: 'orders-db', ttlMs: 10 * MINUTE, grantedBy: 'policy' });
    clock.advance(MINUTE);
    const session = await store.startSession({
      protocol: 'postgres',
      principal: 'etl-bot',
      connection: 'orders-db',
      grantId: recent.grantId,
      clientAddress: '127.0.0.1:2',
      startedAt: clock.now(),
    });
    await store.insertStatements(
      (['ok', 'ok', 'denied', 'error'] as const).map((outcome, i) => ({
        sessionId: session.id,
        seq: i + 1,
        text: 'select 1',
        startedAt: clock.now() + i,
        durationMs: 1,
        outcome,
      })),
    );
    // Allowed before, no longer: it still shows, as used and not allowed.
    await store.insertGrant({ ...(await store.getGrant(recent.grantId))!, id: 'grt_legacy', tokenHash: 'x', connection: 'legacy-db' });
    clock.advance(MINUTE);
    const now = clock.now();

    const report = await serviceAccountReport(store, 'etl-bot', { since: now - 30 * DAY, now }, ['orders-db', 'billing-db', 'audit-db']);
    assert.ok(report);
    assert.deepEqual(report.usage, {
      since: iso(now - 30 * DAY),
      until: iso(now),
      lastUsedAt: iso(T0 + 40 * DAY + MINUTE),
      grants: {
        issued: 2,
        live: 2,
        last: {
          grant: 'grt_legacy',
          connection: 'legacy-db',
          createdAt: iso(T0 + 40 * DAY),
          expiresAt: iso(T0 + 40 * DAY + 10 * MINUTE),
          state: 'live',
        },
      },
      sessions: { started: 1, live: 1, lastStartedAt: iso(T0 + 40 * DAY + MINUTE) },
      statements: { count: 4, refused: 1, failed: 1 },
      connections: [
        {
          connection: 'billing-db',
          allowed: true,
          grants: 0,
          sessions: 0,
          statements: 0,
          refused: 0,
          failed: 0,
          lastUsedAt: null,
        },
        {
          connection: 'legacy-db',
          allowed: false,
          grants: 1,
          sessions: 0,
          statements: 0,
          refused: 0,
          failed: 0,
          lastUsedAt: iso(T0 + 40 * DAY),
        },
        {
          connection: 'orders-db',
          allowed: true,
          grants: 1,
          sessions: 1,
          statements: 4,
          refused: 1,
          failed: 1,
          lastUsedAt: iso(T0 + 40 * DAY + MINUTE + 3),
        },
      ],
    });
    // A window back to the start counts the old grant and session too.
    const all = await serviceAccountReport(store, 'etl-bot', { since: T0, now }, []);
    assert.deepEqual([all?.usage.grants.issued, all?.usage.sessions.started], [3, 2]);

    // Without a list of its own it may use every configured connection.
    await accounts.setLimits('etl-bot', { connections: null }, 'ada');
    const any = await serviceAccountReport(store, 'etl-bot', { since: now - DAY, now }, ['orders-db', 'audit-db']);
    assert.deepEqual(
      any?.usage.connections.map((c) => [c.connection, c.allowed]),
      [
        ['audit-db', true],
        ['legacy-db', true],
        ['orders-db', true],
      ],
    );
    assert.equal(await serviceAccountReport(store, 'nobody', { since: 0, now }, []), undefined);
  });
});
