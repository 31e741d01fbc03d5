import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { DEFAULT_ACCESS_POLICY, FrozenClock, verifiedGrant, verifiedPrincipal, type PrincipalKind } from '../core/index.ts';
import type { SessionInfo } from '../session/pipeline.ts';
import { PolicyEngine } from './cedar/engine.ts';
import { PolicyGuard } from './guard.ts';

const T0 = Date.UTC(2026, 10, 22, 9);

function session(kind: PrincipalKind = 'user', name = 'alice'): SessionInfo {
  return {
    id: 'ses_1',
    protocol: 'postgres',
    grant: verifiedGrant({ id: 'grt_1', principal: verifiedPrincipal(name, kind), connection: 'orders-db', expiresAt: T0 + 3_600_000 }),
    connection: {
      name: 'orders-db',
      type: 'postgres',
      host: '127.0.0.1',
      port: 5432,
      database: 'orders',
      user: 'app',
      password: undefined,
      tls: 'disable',
      ca: undefined,
      access: DEFAULT_ACCESS_POLICY,
    },
    clientAddress: '127.0.0.1:5000',
    startedAt: T0,
  };
}

describe('PolicyGuard with the default pack', () => {
  let guard: PolicyGuard;
  const engine = PolicyEngine.defaultPack();
  before(async () => {
    guard = await PolicyGuard.create(() => engine, new FrozenClock(T0));
  });
  const decide = (sql: string, kind: PrincipalKind = 'user') => guard.decide(session(kind), { kind: 'query', text: sql });

  it('blocks DROP TABLE with the policy, the reason and the connection in the message', () => {
    assert.deepEqual(decide('DROP TABLE orders;'), {
      outcome: 'deny',
      policy: 'no-destructive-ddl',
      reason: 'blocked by policy "no-destructive-ddl": DROP TABLE is not allowed on orders-db',
    });
  });

  it('does not block look-alikes', () => {
    for (const sql of [
      "SELECT 'DROP TABLE x'",
      'SELECT drop_count FROM stats',
      'SELECT * FROM "delete"',
      'DELETE FROM orders WHERE id = 5',
    ]) {
      assert.equal(decide(sql).outcome, 'allow', sql);
    }
  });

  it('blocks what hides: a constant WHERE, a CTE, a second statement, a comment', () => {
    for (const sql of [
      'DELETE FROM orders',
      'DELETE FROM orders WHERE 1=1',
      'WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d',
      'SELECT 1; DROP TABLE orders',
      'SELECT 1 /* ; */; /* nested /* */ */ DROP TABLE orders',
      "COPY orders TO PROGRAM 'sh -c id'",
      "SELECT pg_read_file('/etc/passwd')",
    ]) {
      assert.equal(decide(sql).outcome, 'deny', sql);
    }
  });

  it('fails closed on what does not parse, and on fast-path calls', () => {
    assert.equal(decide('SELEC 1').outcome, 'deny');
    assert.equal(
      guard.decide(session(), { kind: 'function-call', text: 'fast-path call of function 764 with 1 argument(s)' }).outcome,
      'deny',
    );
  });

  it('holds agents to more: no DO blocks', () => {
    const block = 'DO $$ BEGIN PERFORM 1; END $$';
    assert.equal(decide(block, 'user').outcome, 'allow');
    assert.equal(decide(block, 'service-account').outcome, 'deny');
  });

  it('answers a repeated statement shape from its cache, but never a literal-sensitive one', () => {
    const first = decide('SELECT * FROM orders WHERE id = 1');
    assert.equal(decide('SELECT * FROM orders WHERE id = 2'), first, 'the same verdict object: a cache hit');
    assert.equal(decide('DELETE FROM orders WHERE 1=2').outcome, 'deny');
    assert.equal(decide('DELETE FROM orders WHERE id=2').outcome, 'allow');
  });
});
