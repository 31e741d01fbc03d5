import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { StoreAuditLog } from '../audit/audit-log.ts';
import type { Clock } from '../core/index.ts';
import { Credentials } from '../identity/credentials.ts';
import { PolicyEngine } from '../policy/cedar/engine.ts';
import { openStore, type Store } from '../store/index.ts';
import { AccessReview, ReviewError } from './access-review.ts';

const DAY = 86_400_000;
let now = Date.UTC(2026, 10, 22, 12);
const clock: Clock = { now: () => now };

let store: Store;
let audit: StoreAuditLog;
let credentials: Credentials;
let review: AccessReview;

before(async () => {
  store = await openStore('sqlite::memory:');
  audit = new StoreAuditLog(store, clock);
  credentials = new Credentials(store, clock, audit);
  review = new AccessReview({
    store,
    credentials,
    audit,
    clock,
    connections: [{ name: 'orders', access: { maxDurationMs: 3_600_000, approval: 'none' } }],
    policy: () => PolicyEngine.defaultPack(),
  });
  await store.insertAccount({ name: 'audra', kind: 'user', roles: ['auditor'], groups: [], createdAt: now });
  await store.insertAccount({ name: 'bob', kind: 'user', roles: ['user'], groups: [], createdAt: now });
});

after(async () => {
  await audit.close();
  await store.close();
});

const refused = (code: string) => (error: unknown) => error instanceof ReviewError && error.code === code;

test('certify keeps the access, on record; nobody certifies their own', async () => {
  const decision = await review.certify({ principal: 'bob', connection: 'orders', note: '  needs it for refunds  ' }, 'audra');
  assert.equal(decision.decision, 'certified');
  assert.equal(decision.note, 'needs it for refunds');
  const [event] = await store.listAudit({ action: 'review.certified' });
  assert.equal(event?.actor, 'audra');
  assert.equal(event?.subject, 'bob');
  assert.deepEqual(event?.details, { connection: 'orders', note: 'needs it for refunds', decision: decision.id, grantsRevoked: [] });
  await assert.rejects(review.certify({ principal: 'audra', connection: 'orders', note: 'mine' }, 'audra'), refused('self-review'));
});

test('revoke ends the live grants of the principal on that connection only, and records each', async () => {
  const mint = (principal: string, connection: string) => credentials.mint({ principal, connection, ttlMs: DAY, grantedBy: 'policy' });
  const first = await mint('bob', 'orders');
  const second = await mint('bob', 'orders');
  const elsewhere = await mint('bob', 'legacy');
  now += 1000;
  const decision = await review.revoke({ principal: 'bob', connection: 'orders', note: 'left the team' }, 'ada');
  assert.deepEqual(new Set(decision.grantsRevoked), new Set([first.grantId, second.grantId]));
  assert.equal((await store.getGrant(first.grantId))?.revokedBy, 'ada');
  assert.equal((await store.getGrant(first.grantId))?.revokeReason, 'access review: left the team');
  assert.equal((await store.getGrant(elsewhere.grantId))?.revokedAt, undefined);
  assert.equal((await store.listAudit({ action: 'grant.revoked' })).length, 2);
  const [event] = await store.listAudit({ action: 'review.revoked' });
  assert.deepEqual(event?.details.grantsRevoked, decision.grantsRevoked);

  // A connection no longer configured still holds grants to take away.
  const legacy = await review.revoke({ principal: 'bob', connection: 'legacy', note: 'gone' }, 'ada');
  assert.deepEqual(legacy.grantsRevoked, [elsewhere.grantId]);
  // Nothing live: the decision is recorded all the same.
  now += 1000;
  assert.deepEqual((await review.revoke({ principal: 'bob', connection: 'orders', note: 'again' }, 'ada')).grantsRevoked, []);
});

test('the report shows the last decision on each row', async () => {
  now += 1000;
  const report = await review.report({ principal: 'bob' });
  const orders = report.rows.find((r) => r.connection === 'orders');
  assert.equal(orders?.decision?.decision, 'revoked');
  assert.equal(orders?.decision?.note, 'again');
  assert.equal(orders?.decision?.by, 'ada');
  assert.deepEqual(
    report.rows.map((r) => r.connection),
    ['legacy', 'orders'],
  );
  assert.equal(report.rows[0]?.decision?.note, 'gone');
});

test('refusals: a blank note, an unknown principal or connection, a window that ends before it starts', async () => {
  await assert.rejects(review.certify({ principal: 'bob', connection: 'orders', note: '  ' }, 'ada'), refused('note-required'));
  await assert.rejects(review.certify({ principal: 'nobody', connection: 'orders', note: 'x' }, 'ada'), refused('unknown-principal'));
  await assert.rejects(review.revoke({ principal: 'bob', connection: 'nowhere', note: 'x' }, 'ada'), refused('unknown-connection'));
  await assert.rejects(review.report({ since: now, until: now - 1 }), refused('invalid-window'));
});
