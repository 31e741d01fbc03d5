import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { DEFAULT_ACCESS_POLICY, FrozenClock, verifiedGrant, verifiedPrincipal, type PrincipalKind } from '../core/index.ts';
import type { SessionInfo } from '../session/pipeline.ts';
import { PolicyEngine } from './cedar/engine.ts';
import { PolicyGuard } from './guard.ts';

const T0 = Date.UTC(2026, 10, 22, 9);

function session(kind: PrincipalKind = 'user', name = 'alice', groups: readonly string[] = []): SessionInfo {
  return {
    id: 'ses_1',
    protocol: 'postgres',
    grant: verifiedGrant({ id: 'grt_1', principal: verifiedPrincipal(name, kind), groups, connection: 'orders-db', expiresAt: T0 + 3_600_000 }),
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
      'WITH d AS (DELETE FROM orders RETURNING *) INSERT INTO archive SELECT * FROM d',
      'PREPARE p AS DELETE FROM orders WHERE 1 = 1',
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

  it('asks Cedar once for statements that classify alike, even those never cached by shape', async () => {
    let asked = 0;
    const counting = {
      version: engine.version,
      decide: (request: Parameters<PolicyEngine['decide']>[0]) => (asked++, engine.decide(request)),
    } as unknown as PolicyEngine;
    const fresh = await PolicyGuard.create(() => counting, new FrozenClock(T0));
    const update = (sql: string) => fresh.decide(session(), { kind: 'query', text: sql });
    assert.equal(update('UPDATE accounts SET balance = balance + 5 WHERE aid = 17').outcome, 'allow');
    assert.equal(update('UPDATE accounts SET balance = balance + -3 WHERE aid = 99').outcome, 'allow');
    assert.equal(asked, 1);
    assert.equal(update('UPDATE accounts SET balance = 0 WHERE aid = 1 OR true').outcome, 'deny');
    assert.equal(update('UPDATE accounts SET balance = 0 WHERE aid = 1 OR false').outcome, 'deny');
    assert.equal(update('UPDATE accounts SET balance = 0 WHERE 1 = 1').outcome, 'deny');
    assert.equal(asked, 2, 'the three unfiltered UPDATEs classify alike');
    assert.equal(fresh.decide(session('user', 'bob'), { kind: 'query', text: 'UPDATE accounts SET balance = 1 WHERE aid = 2' }).outcome, 'allow');
    assert.equal(asked, 3, 'another principal is decided anew');
  });

  it('answers a repeated statement shape from its cache, but never a literal-sensitive one', () => {
    const first = decide('SELECT * FROM orders WHERE id = 1');
    assert.equal(decide('SELECT * FROM orders WHERE id = 2'), first, 'the same verdict object: a cache hit');
    assert.equal(decide('DELETE FROM orders WHERE 1=2').outcome, 'deny');
    assert.equal(decide('DELETE FROM orders WHERE id=2').outcome, 'allow');
  });
});

describe('PolicyGuard with policies of its own', () => {
  const engine = PolicyEngine.load([
    {
      file: 'team.cedar',
      text: `
        @id("base") permit (principal, action in Drawbridge::Action::"sql:any", resource);
        @id("fast-path-for-dbas") permit (principal in Drawbridge::Group::"dba", action == Drawbridge::Action::"sql:fastpath", resource);
        @id("ddl-for-dbas") @reason("DDL is for DBAs")
        forbid (principal, action == Drawbridge::Action::"sql:ddl", resource) unless { principal in Drawbridge::Group::"dba" };
      `,
    },
  ]);
  let guard: PolicyGuard;
  before(async () => {
    guard = await PolicyGuard.create(() => engine, new FrozenClock(T0));
  });

  it("decides on the grant's groups, and never serves one group's verdict to another", () => {
    const ddl = { kind: 'query', text: 'CREATE INDEX ON orders (id)' } as const;
    assert.equal(guard.decide(session('user', 'alice', ['dba']), ddl).outcome, 'allow');
    assert.deepEqual(guard.decide(session('user', 'alice', []), ddl), {
      outcome: 'deny',
      policy: 'ddl-for-dbas',
      reason: 'blocked by policy "ddl-for-dbas": DDL is for DBAs on orders-db',
    });
    assert.equal(guard.decide(session('user', 'alice', ['dba', 'ops']), ddl).outcome, 'allow');
  });

  it('lets a policy permit fast-path calls by name', () => {
    const call = { kind: 'function-call', text: 'fast-path call of function 764 with 1 argument(s)' } as const;
    assert.equal(guard.decide(session('user', 'alice', ['dba']), call).outcome, 'allow');
    assert.match(
      (guard.decide(session('user', 'alice'), call) as { reason: string }).reason,
      /^blocked by policy "default-deny": no policy permits sql:fastpath on orders-db$/,
    );
  });

  it('says why a statement that does not parse is refused', () => {
    assert.match(
      (guard.decide(session(), { kind: 'query', text: 'SELEC 1' }) as { reason: string }).reason,
      /^blocked by policy "default-deny": no policy permits sql:unknown on orders-db \(the statement does not parse: syntax error at or near "SELEC"/,
    );
  });
});
