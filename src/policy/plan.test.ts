import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import { DEFAULT_ACCESS_POLICY, FrozenClock, verifiedGrant, verifiedPrincipal, type Plan, type PlanStep } from '../core/index.ts';
import type { SessionInfo } from '../session/pipeline.ts';
import { PolicyEngine } from './cedar/engine.ts';
import { PolicyGuard } from './guard.ts';
import { describePlan, MAX_PLAN_STEPS, parsePlanSteps, planCovers, PlanError, shape } from './plan.ts';
import { classify, initClassifier } from './sql/pg-classifier.ts';

const REFUNDS_PLAN: Plan = {
  id: 'req_plan',
  steps: [
    { actions: ['read'], tables: ['orders', 'refunds'] },
    { actions: ['update'], tables: ['refunds'], template: 'UPDATE refunds SET status = $1 WHERE id = $2' },
    { actions: ['insert'], tables: ['audit.notes'] },
  ],
};

/** Whether `plan` covers every statement of `sql`, as the guard asks it. */
function covered(sql: string, plan: Plan = REFUNDS_PLAN): boolean {
  const classification = classify(sql);
  if (classification.parseError !== undefined) return false;
  const textShape = classification.statements.length === 1 ? shape(sql) : undefined;
  return classification.statements.every((s) => planCovers(plan, s, textShape));
}

before(async () => {
  await initClassifier();
});

describe('parsePlanSteps', () => {
  it('takes actions, tables and a template, normalized', () => {
    assert.deepEqual(parsePlanSteps([{ actions: ['SELECT', 'select', ' read'], tables: ['orders', ' orders '] }]), [
      { actions: ['select', 'read'], tables: ['orders'] },
    ]);
    assert.deepEqual(parsePlanSteps([{ actions: ['update'], tables: ['refunds'], template: ' UPDATE refunds SET status = $1 WHERE id = $2 ' }]), [
      { actions: ['update'], tables: ['refunds'], template: 'UPDATE refunds SET status = $1 WHERE id = $2' },
    ]);
  });

  const refusals: [unknown, RegExp][] = [
    [[], /at least one step/],
    [undefined, /at least one step/],
    [Array.from({ length: MAX_PLAN_STEPS + 1 }, () => ({ actions: ['select'], tables: [] })), /at most 50 steps/],
    [[null], /step 1: expected/],
    [[{ actions: [], tables: [] }], /step 1: name at least one action/],
    [[{ actions: ['fly'], tables: [] }], /step 1: "fly" is not an action a plan may name/],
    [[{ actions: ['select'], tables: [] }, { actions: ['unknown'], tables: [] }], /step 2: "unknown" is not an action/],
    [[{ actions: ['any'], tables: [] }], /"any" is not an action/],
    [[{ actions: ['fastpath'], tables: [] }], /"fastpath" is not an action/],
    [[{ actions: ['select'], tables: 'orders' }], /tables is a list/],
    [[{ actions: ['select'], tables: ['orders; drop table x'] }], /is not a table name/],
    [[{ actions: ['select'], tables: ['a.b.c'] }], /is not a table name/],
    [[{ actions: ['update'], tables: ['refunds'], template: 'UPDATE refunds SET' }], /the template does not parse/],
    [[{ actions: ['update'], tables: ['refunds'], template: 'UPDATE refunds SET a = 1 WHERE id = 1; SELECT 1' }], /the template is one statement/],
    [[{ actions: ['update'], tables: ['refunds'], template: 'UPDATE orders SET a = 1 WHERE id = 1' }], /does something the step does not name/],
    [[{ actions: ['select'], tables: ['refunds'], template: 'DELETE FROM refunds WHERE id = 1' }], /does something the step does not name/],
    [[{ actions: ['update'], tables: ['refunds'], template: 7 }], /the template is one statement of at most/],
  ];
  for (const [input, message] of refusals) {
    it(`refuses ${JSON.stringify(input)?.slice(0, 80)}`, () => {
      assert.throws(() => parsePlanSteps(input), (e: unknown) => e instanceof PlanError && message.test(e.message));
    });
  }
});

describe('planCovers', () => {
  const cases: [string, boolean][] = [
    ['SELECT * FROM orders', true],
    ['select id from public.orders where id = 3', true],
    ['SELECT * FROM ORDERS', true],
    ['SELECT o.id FROM orders o JOIN refunds r ON r.order_id = o.id', true],
    ['SELECT * FROM customers', false],
    ['SELECT * FROM orders JOIN customers USING (id)', false],
    ['SELECT * FROM "Orders"', false],
    ['SELECT * FROM billing.orders', false],
    ["UPDATE refunds SET status = 'done' WHERE id = 1", true],
    ['update   refunds set status=$1 where id=$2 -- the template', true],
    ["UPDATE refunds SET status = 'done' WHERE id = 1 AND status = 'requested'", false],
    ['UPDATE refunds SET order_id = 1 WHERE id = 1', false],
    ["UPDATE orders SET status = 'x' WHERE id = 1", false],
    ["UPDATE refunds SET status = 'done' WHERE id = 1; SELECT 1", false],
    ["INSERT INTO audit.notes VALUES ('x')", true],
    ["INSERT INTO audit.notes SELECT id::text FROM orders", true],
    ["INSERT INTO audit.notes SELECT name FROM customers", false],
    ["INSERT INTO notes VALUES ('x')", false],
    ['DELETE FROM refunds WHERE id = 1', false],
    ['WITH gone AS (DELETE FROM orders RETURNING id) SELECT * FROM gone', false],
    ['EXPLAIN SELECT * FROM orders', true],
    ['EXPLAIN ANALYZE DELETE FROM refunds WHERE id = 1', false],
    ['PREPARE p AS SELECT * FROM customers', false],
    ['BEGIN', true],
    ["SET statement_timeout = '5s'", true],
    ['SELECT now()', true],
    ['SELECT 1', true],
    ["SELECT pg_read_file('/etc/passwd')", false],
    ["DO $$ BEGIN DELETE FROM orders WHERE id = 1; END $$", false],
    ['EXECUTE p', false],
    ['DROP TABLE orders', false],
    ['SELEC * FROM orders', false],
  ];
  for (const [sql, expected] of cases) {
    it(`${expected ? 'covers' : 'does not cover'} ${sql}`, () => assert.equal(covered(sql), expected));
  }

  it('names tables as PostgreSQL does: unquoted folded, quoted kept', () => {
    const plan: Plan = { id: 'p', steps: [{ actions: ['select'], tables: ['"Orders"', 'Billing.Items'] }] };
    assert.equal(covered('SELECT * FROM "Orders"', plan), true);
    assert.equal(covered('SELECT * FROM orders', plan), false);
    assert.equal(covered('SELECT * FROM billing.items', plan), true);
    assert.equal(covered('SELECT * FROM "Billing".items', plan), false);
  });

  it('a plan that did not read as one (no steps) covers no table', () => {
    assert.equal(covered('SELECT * FROM orders', { id: 'broken', steps: [] }), false);
  });

  it('a SELECT of tables is covered exactly when a reading step names each of them (property)', () => {
    const names = ['orders', 'refunds', 'customers', 'items', 'notes'];
    fc.assert(
      fc.property(fc.subarray(names, { minLength: 1 }), fc.subarray(names), (used, planned) => {
        const sql = `SELECT 1 FROM ${used.join(', ')}`;
        const plan: Plan = { id: 'p', steps: [{ actions: ['select'], tables: planned }] };
        assert.equal(covered(sql, plan), used.every((t) => planned.includes(t)));
      }),
    );
  });

  it('adding a step never takes coverage away (property)', () => {
    const statements = Object.keys(Object.fromEntries(cases));
    const step = fc.record({
      actions: fc.subarray(['select', 'read', 'update', 'insert', 'delete', 'write', 'ddl'], { minLength: 1 }),
      tables: fc.subarray(['orders', 'refunds', 'customers', 'audit.notes']),
    }) as fc.Arbitrary<PlanStep>;
    fc.assert(
      fc.property(fc.array(step, { maxLength: 4 }), step, fc.constantFrom(...statements), (steps, extra, sql) => {
        if (covered(sql, { id: 'p', steps })) assert.ok(covered(sql, { id: 'p', steps: [...steps, extra] }));
      }),
    );
  });
});

describe('describePlan', () => {
  it('reads as a person would say it', () => {
    assert.equal(
      describePlan(REFUNDS_PLAN.steps),
      'read orders, refunds; update refunds as "UPDATE refunds SET status = $1 WHERE id = $2"; insert audit.notes',
    );
  });
});

describe('the guard under a plan', () => {
  const T0 = Date.UTC(2026, 10, 22, 9);
  const engine = PolicyEngine.load([
    { file: 'base.cedar', text: '@id("base")\npermit (principal, action in Drawbridge::Action::"sql:any", resource);' },
    { file: 'ddl.cedar', text: '@id("no-ddl")\n@reason("DDL")\nforbid (principal, action in Drawbridge::Action::"sql:ddl", resource);' },
    { file: 'hold.cedar', text: '@id("hold-updates")\n@reason("an UPDATE")\n@approval("dba")\nforbid (principal, action == Drawbridge::Action::"sql:update", resource);' },
    {
      file: 'deviation.cedar',
      text: '@id("deletes-outside")\n@reason("a DELETE outside the plan")\n@approval("dba")\nforbid (principal, action == Drawbridge::Action::"sql:delete", resource) when { context.plan && !context.in_plan };',
    },
  ]);
  let guard: PolicyGuard;
  before(async () => {
    guard = await PolicyGuard.create(() => engine, new FrozenClock(T0));
  });
  const session = (plan: Plan | undefined): SessionInfo => ({
    id: 'ses_1',
    protocol: 'postgres',
    grant: verifiedGrant({ id: 'grt_1', principal: verifiedPrincipal('etl-bot', 'service-account'), groups: [], connection: 'shop', expiresAt: T0 + 3_600_000, plan }),
    connection: { name: 'shop', type: 'postgres', host: '127.0.0.1', port: 5432, database: 'shop', user: 'app', password: undefined, tls: 'disable', ca: undefined, access: DEFAULT_ACCESS_POLICY },
    clientAddress: '127.0.0.1:5000',
    startedAt: T0,
  });
  /** `null`: a grant without a plan. */
  const decide = (sql: string, plan: Plan | null = REFUNDS_PLAN) => guard.decide(session(plan ?? undefined), { kind: 'query', text: sql });

  it('a statement the plan covers runs without the approval policy would ask for', () => {
    assert.deepEqual(decide("UPDATE refunds SET status = 'done' WHERE id = 1"), { outcome: 'allow' });
    assert.equal(decide("UPDATE refunds SET status = 'done' WHERE id = 1", null).outcome, 'hold', 'without the plan it is held');
  });

  it('what policy blocks stays blocked inside a plan', () => {
    const plan: Plan = { id: 'req_ddl', steps: [{ actions: ['ddl'], tables: ['orders'] }] };
    const verdict = decide('DROP TABLE orders', plan);
    assert.equal(verdict.outcome, 'deny');
    assert.equal(verdict.outcome === 'deny' && verdict.deviation, undefined, 'inside the plan: not a deviation');
  });

  it('a statement outside the plan is blocked, naming the plan, and marked a deviation', () => {
    assert.deepEqual(decide("INSERT INTO orders VALUES (1)"), {
      outcome: 'deny',
      policy: 'plan',
      reason: 'blocked by policy "plan": insert of orders is outside the approved plan req_plan on shop',
      deviation: { plan: 'req_plan' },
    });
  });

  it('a statement outside the plan that a policy holds is held, and marked a deviation', () => {
    const verdict = decide('DELETE FROM refunds WHERE id = 3');
    assert.equal(verdict.outcome, 'hold');
    assert.equal(verdict.outcome === 'hold' && verdict.policy, 'deletes-outside');
    assert.deepEqual(verdict.outcome === 'hold' && verdict.deviation, { plan: 'req_plan' });
    assert.equal(decide('DELETE FROM refunds WHERE id = 3', null).outcome, 'allow', 'the policy reads context.plan');
  });

  it('verdicts are cached per plan, never across plans', () => {
    const other: Plan = { id: 'req_other', steps: [{ actions: ['insert'], tables: ['orders'] }] };
    assert.equal(decide('INSERT INTO orders VALUES (1)').outcome, 'deny');
    assert.equal(decide('INSERT INTO orders VALUES (1)', other).outcome, 'allow');
    assert.equal(decide('INSERT INTO orders VALUES (2)').outcome, 'deny');
  });

  it('a template is matched on each text, not on a cached classification', () => {
    assert.equal(decide("UPDATE refunds SET status = 'a' WHERE id = 1").outcome, 'allow');
    assert.equal(decide("UPDATE refunds SET status = 'a' WHERE id = 1 AND true").outcome, 'hold');
  });
});
