import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, test } from 'node:test';
import { PolicyEngine } from '../policy/cedar/engine.ts';
import { classify, initClassifier } from '../policy/sql/pg-classifier.ts';
import type { AccountRecord, GrantRecord, StatementActivity } from '../store/index.ts';
import {
  buildReport,
  categoryOf,
  CATEGORY_OF_KIND,
  principalsWithoutAccount,
  probeStatements,
  type ReviewFacts,
  type ReviewRow,
} from './report.ts';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 22, 12);
const WINDOW = { since: NOW - 30 * DAY, until: NOW };

const AGENTS_READ_ONLY = `
@id("agents-read-only") @reason("agents only read")
forbid (principal is Drawbridge::Agent, action in Drawbridge::Action::"sql:write", resource);
`;
const HOLD_DELETES = `
@id("deletes-need-a-dba") @reason("a DELETE") @approval("dba")
forbid (principal, action == Drawbridge::Action::"sql:delete", resource);
`;

let engine: PolicyEngine;

before(async () => {
  await initClassifier();
  engine = PolicyEngine.load([
    { file: 'default-pack.cedar', text: PolicyEngine.defaultPackText() },
    { file: 'team.cedar', text: AGENTS_READ_ONLY + HOLD_DELETES },
  ]);
});

function account(name: string, overrides: Partial<AccountRecord> = {}): AccountRecord {
  return {
    name,
    kind: 'user',
    passwordHash: undefined,
    roles: ['user'],
    groups: [],
    createdAt: NOW - 90 * DAY,
    disabledAt: undefined,
    lastUsedAt: undefined,
    maxGrantMs: undefined,
    connections: undefined,
    ...overrides,
  };
}

function liveGrant(id: string, principal: string, connection: string, createdAt: number, sessions: number) {
  // Cast: what else a grant record holds plays no part in a review.
  const grant = {
    id,
    principal,
    principalKind: 'user',
    groups: [],
    connection,
    tokenHash: id,
    scramSalt: '',
    scramIterations: 4096,
    scramStoredKey: '',
    scramServerKey: '',
    reason: 'r',
    grantedBy: 'policy',
    createdAt,
    expiresAt: NOW + DAY,
    revokedAt: undefined,
    revokedBy: undefined,
    revokeReason: undefined,
  } as unknown as GrantRecord;
  return { grant, sessions };
}

const ran = (principal: string, connection: string, text: string, count = 1, outcome: StatementActivity['outcome'] = 'ok') => ({
  principal,
  connection,
  text,
  outcome,
  count,
  lastAt: NOW - DAY,
});

function facts(overrides: Partial<ReviewFacts> = {}): ReviewFacts {
  return {
    window: WINDOW,
    now: NOW,
    connections: [
      { name: 'orders', access: { maxDurationMs: 4 * 3_600_000, approval: 'none' } },
      { name: 'payments', access: { maxDurationMs: 3_600_000, approval: 'required', approvers: 'dba' } },
    ],
    accounts: [
      account('alice'),
      account('bob'),
      account('carl'),
      account('dora', { disabledAt: NOW - 2 * DAY }),
      account('etl-bot', { kind: 'service-account', connections: ['orders'], maxGrantMs: 900_000 }),
    ],
    grantOnly: [{ name: 'nightly-script', kind: 'service-account', groups: [] }],
    grants: [
      { principal: 'alice', connection: 'orders', grantedBy: 'policy', issued: 3, unused: 1, lastIssuedAt: NOW - 2 * DAY },
      { principal: 'bob', connection: 'orders', grantedBy: 'policy', issued: 1, unused: 0, lastIssuedAt: NOW - 3 * DAY },
      { principal: 'carl', connection: 'orders', grantedBy: 'policy', issued: 1, unused: 1, lastIssuedAt: NOW - 3_600_000 },
      { principal: 'etl-bot', connection: 'orders', grantedBy: 'policy', issued: 2, unused: 0, lastIssuedAt: NOW - DAY },
      { principal: 'nightly-script', connection: 'orders', grantedBy: 'local-admin', issued: 1, unused: 0, lastIssuedAt: NOW - DAY },
    ],
    liveGrants: [liveGrant('grt_carl', 'carl', 'orders', NOW - 3_600_000, 0), liveGrant('grt_bob', 'bob', 'orders', NOW - 3 * DAY, 1)],
    sessions: [
      { principal: 'alice', connection: 'orders', sessions: 2, live: 0, lastStartedAt: NOW - 2 * DAY },
      { principal: 'bob', connection: 'orders', sessions: 1, live: 1, lastStartedAt: NOW - 3 * DAY },
      { principal: 'etl-bot', connection: 'orders', sessions: 2, live: 0, lastStartedAt: NOW - DAY },
      { principal: 'nightly-script', connection: 'orders', sessions: 1, live: 0, lastStartedAt: NOW - DAY },
    ],
    statements: [
      ran('alice', 'orders', 'select * from customers where id = 1', 12),
      ran('alice', 'orders', "select count(*) from payments p join customers c on c.id = p.customer where c.email = 'a***@*****.com'", 3),
      ran('alice', 'orders', 'drop table customers', 1, 'denied'),
      ran('alice', 'orders', 'begin', 2),
      ran('bob', 'orders', 'insert into orders (id) values (1)', 2),
      ran('bob', 'orders', 'update orders set status = 1 where id = 2', 1, 'error'),
      ran('bob', 'orders', 'select * from orders', 1),
      ran('etl-bot', 'orders', 'copy (select * from orders) to stdout', 2),
      ran('nightly-script', 'orders', 'create table tmp (id int)', 1),
      ran('nightly-script', 'orders', 'this is not sql', 1),
    ],
    truncated: false,
    decisions: [],
    engine,
    ...overrides,
  };
}

const rowOf = (rows: readonly ReviewRow[], principal: string, connection: string): ReviewRow => {
  const row = rows.find((r) => r.principal === principal && r.connection === connection);
  assert.ok(row, `a row for ${principal} on ${connection}`);
  return row;
};
const codes = (row: ReviewRow) => row.flags.map((f) => f.code);
const outcomes = (row: ReviewRow) => Object.fromEntries(row.statements.map((s) => [s.kind, s.outcome]));

describe('the access review report', () => {
  test('a row for every principal (accounts and those seen only in grants) and every connection', () => {
    const report = buildReport(facts());
    assert.deepEqual(
      report.rows.map((r) => `${r.principal}@${r.connection}`),
      ['alice', 'bob', 'carl', 'dora', 'etl-bot', 'nightly-script'].flatMap((p) => [`${p}@orders`, `${p}@payments`]),
    );
    assert.equal(report.since, new Date(WINDOW.since).toISOString());
    assert.equal(report.until, new Date(NOW).toISOString());
    assert.deepEqual(report.policy, { enabled: true, version: engine.version });
    assert.equal(report.summary.rows, 12);
  });

  test('what policy allows: the way in, its longest grant, and each kind of statement as the policies decide it', () => {
    const { rows } = buildReport(facts());
    assert.deepEqual(rowOf(rows, 'alice', 'orders').access, {
      via: 'at-once',
      why: 'asks; granted at once by policy',
      maxDuration: '4h',
      approvers: null,
    });
    assert.deepEqual(rowOf(rows, 'alice', 'payments').access, {
      via: 'approval',
      why: 'asks; a member of dba approves',
      maxDuration: '1h',
      approvers: 'dba',
    });
    assert.equal(rowOf(rows, 'etl-bot', 'orders').access.maxDuration, '15m', "the service account's own limit is shorter");
    assert.deepEqual(rowOf(rows, 'etl-bot', 'payments').access.via, 'none');
    assert.match(rowOf(rows, 'etl-bot', 'payments').access.why, /payments is not among etl-bot's connections/);
    assert.match(rowOf(rows, 'dora', 'orders').access.why, /dora is disabled/);
    assert.equal(rowOf(rows, 'nightly-script', 'orders').access.via, 'grant-only');
    assert.equal(rowOf(rows, 'nightly-script', 'orders').account, 'none');

    assert.deepEqual(outcomes(rowOf(rows, 'alice', 'orders')), {
      read: 'allow',
      insert: 'allow',
      update: 'allow',
      delete: 'approval',
      ddl: 'allow',
      admin: 'allow',
      code: 'allow',
    });
    const agent = rowOf(rows, 'etl-bot', 'orders').statements;
    assert.deepEqual(
      agent.map((s) => [s.kind, s.outcome, s.policy]),
      [
        ['read', 'allow', null],
        ['insert', 'deny', 'agents-read-only'],
        ['update', 'deny', 'agents-read-only'],
        ['delete', 'deny', 'agents-read-only'],
        ['ddl', 'allow', null],
        ['admin', 'allow', null],
        ['code', 'deny', 'no-agent-code'],
      ],
    );
  });

  test('what was used: statements classified again, by category, kind and table; refused ones apart', () => {
    const { rows } = buildReport(facts());
    const alice = rowOf(rows, 'alice', 'orders');
    assert.deepEqual(alice.grants, {
      issued: 3,
      unused: 1,
      last: new Date(NOW - 2 * DAY).toISOString(),
      grantedBy: ['policy'],
      live: 0,
      liveUnused: [],
      liveIds: [],
    });
    assert.equal(alice.usage.sessions, 2);
    assert.equal(alice.usage.statements, 17);
    assert.deepEqual(alice.usage.byCategory, { read: 15, write: 0, ddl: 0, admin: 0, code: 0, session: 2, unknown: 0 });
    assert.deepEqual(alice.usage.byKind, { select: 15, transaction: 2 });
    assert.equal(alice.usage.refused, 1);
    assert.deepEqual(alice.usage.tablesRead, ['customers', 'payments']);
    assert.deepEqual(alice.usage.tablesWritten, []);

    const bob = rowOf(rows, 'bob', 'orders');
    assert.deepEqual(bob.usage.byCategory.write, 3, 'a statement that failed on the target was still run');
    assert.deepEqual(bob.usage.tablesWritten, ['orders']);
    assert.deepEqual(bob.usage.liveSessions, 1);
    assert.deepEqual(rowOf(rows, 'etl-bot', 'orders').usage.byKind, { copy: 2 });
    assert.deepEqual(rowOf(rows, 'etl-bot', 'orders').usage.byCategory.read, 2, 'COPY TO reads');
    const script = rowOf(rows, 'nightly-script', 'orders').usage;
    assert.deepEqual([script.byCategory.ddl, script.byCategory.unknown], [1, 1]);
  });

  test('rights never used are flagged, each with a suggestion', () => {
    const { rows } = buildReport(facts());
    assert.deepEqual(codes(rowOf(rows, 'alice', 'orders')), ['unused-grants', 'unused-writes', 'unused-ddl']);
    const writes = rowOf(rows, 'alice', 'orders').flags[1]!;
    assert.match(writes.message, /alice may write on orders \(insert, update, delete\) but ran no write in the last 30d, only reads/);
    assert.match(writes.suggestion, /forbids sql:write to alice on orders/);
    assert.match(
      rowOf(rows, 'alice', 'orders').flags[0]!.message,
      /1 of 3 grants issued to alice on orders in the last 30d ended without ever being used/,
    );

    assert.deepEqual(codes(rowOf(rows, 'alice', 'payments')), ['unused-access']);
    assert.match(
      rowOf(rows, 'alice', 'payments').flags[0]!.message,
      /alice can get access to payments \(asks; a member of dba approves\) but had no grant/,
    );
    // A live grant never used is flagged once, as live, with the command that ends it.
    assert.deepEqual(codes(rowOf(rows, 'carl', 'orders')), ['unused-live-grant']);
    assert.match(rowOf(rows, 'carl', 'orders').flags[0]!.suggestion, /drawbridge access review revoke carl orders --note/);
    // Writes used: no write flag; the agent may not write at all: none either.
    assert.deepEqual(codes(rowOf(rows, 'bob', 'orders')), ['unused-ddl']);
    assert.deepEqual(codes(rowOf(rows, 'etl-bot', 'orders')), ['unused-ddl']);
    // No way in: nothing to flag.
    assert.deepEqual(codes(rowOf(rows, 'dora', 'orders')), []);
    assert.deepEqual(codes(rowOf(rows, 'etl-bot', 'payments')), []);
    assert.deepEqual(codes(rowOf(rows, 'nightly-script', 'payments')), [], 'a grant-only principal asks for nothing itself');
    assert.match(rowOf(rows, 'etl-bot', 'orders').flags[0]!.message, /etl-bot may run DDL on orders but ran none/);
  });

  test('filters: a principal, a connection, only the flagged rows', () => {
    const all = buildReport(facts());
    assert.deepEqual(
      buildReport(facts(), { principal: 'alice' }).rows.map((r) => r.connection),
      ['orders', 'payments'],
    );
    assert.deepEqual(
      buildReport(facts(), { connection: 'payments', unused: true }).rows.map((r) => r.principal),
      ['alice', 'bob', 'carl'],
    );
    const flagged = buildReport(facts(), { unused: true });
    assert.equal(flagged.rows.length, all.summary.flagged);
    assert.ok(flagged.rows.every((r) => r.flags.length > 0));
  });

  test('the last decision shows on its row; access granted again after a revoke is flagged', () => {
    const decided = (principal: string, decision: 'certified' | 'revoked', decidedAt: number) => ({
      id: `rvd_${principal}`,
      principal,
      connection: 'orders',
      decision,
      note: 'quarterly review',
      decidedBy: 'audra',
      decidedAt,
      grantsRevoked: [],
    });
    const report = buildReport(
      facts({ decisions: [decided('alice', 'certified', NOW - DAY), decided('carl', 'revoked', NOW - 2 * 3_600_000)] }),
    );
    assert.deepEqual(rowOf(report.rows, 'alice', 'orders').decision, {
      id: 'rvd_alice',
      decision: 'certified',
      note: 'quarterly review',
      by: 'audra',
      at: new Date(NOW - DAY).toISOString(),
      grantsRevoked: [],
    });
    assert.equal(rowOf(report.rows, 'alice', 'payments').decision, null);
    assert.deepEqual(report.summary, { rows: 12, flagged: 7, certified: 1, revoked: 1 });
    const carl = rowOf(report.rows, 'carl', 'orders');
    assert.deepEqual(codes(carl), ['unused-live-grant', 'regranted-after-revoke']);
    assert.match(
      carl.flags[1]!.message,
      /audra revoked carl's access to orders on .* \(quarterly review\), and carl was granted access again since/,
    );
  });

  test('a connection removed from the config still shows the grants and use it had; others are left out', () => {
    const report = buildReport(
      facts({ liveGrants: [liveGrant('grt_old', 'bob', 'legacy', NOW - DAY, 0)], grants: [], sessions: [], statements: [] }),
      { connection: 'legacy' },
    );
    assert.deepEqual(
      report.rows.map((r) => [r.principal, r.access.via, r.statements.length, codes(r)]),
      [['bob', 'none', 0, ['unused-live-grant']]],
    );
    assert.match(report.rows[0]!.access.why, /legacy is not configured on this gateway/);
  });

  test('with guardrails off every kind is allowed and the report says so', () => {
    const report = buildReport(facts({ engine: undefined }), { principal: 'etl-bot', connection: 'orders' });
    assert.deepEqual(report.policy, { enabled: false, version: null });
    assert.ok(report.rows[0]!.statements.every((s) => s.outcome === 'allow'));
    assert.deepEqual(probeStatements(undefined, { name: 'x', kind: 'user', groups: [] }, 'orders', NOW).length, 7);
  });

  test('the principals without an account are those the activity names', () => {
    const f = facts();
    assert.deepEqual(
      principalsWithoutAccount({
        ...f,
        decisions: [
          {
            ...f.grants[0]!,
            id: 'rvd_1',
            principal: 'ghost',
            decision: 'certified',
            note: 'n',
            decidedBy: 'a',
            decidedAt: 1,
            grantsRevoked: [],
          },
        ],
      }),
      ['ghost', 'nightly-script'],
    );
  });
});

describe('statement categories', () => {
  test('follow the action groups of the Cedar schema', () => {
    const schema = readFileSync(new URL('../policy/cedar/schema.cedarschema', import.meta.url), 'utf8');
    const declared = new Map<string, string>();
    for (const m of schema.matchAll(/action\s+((?:"sql:[a-z-]+"\s*,?\s*)+)in\s*\["sql:([a-z]+)"\]/g)) {
      for (const action of m[1]!.matchAll(/"sql:([a-z-]+)"/g)) declared.set(action[1]!, m[2]!);
    }
    assert.ok(declared.size > 30, `only ${declared.size} actions read from the schema`);
    for (const [kind, category] of Object.entries(CATEGORY_OF_KIND)) {
      const group = kind === 'create' || kind === 'alter' || kind === 'drop' ? 'ddl' : declared.get(kind);
      assert.equal(category, group === 'any' ? kind : group, `${kind} is in sql:${group}`);
    }
    for (const [action, group] of declared) {
      if (['read', 'write', 'admin', 'code', 'session', 'ddl'].includes(group) && !action.startsWith('copy-'))
        assert.ok(action in CATEGORY_OF_KIND, `sql:${action} has a category`);
    }
  });

  test('a statement that holds another counts as what it runs', () => {
    const category = (sql: string) => categoryOf(classify(sql).statements[0]!);
    assert.equal(category('prepare p as delete from orders where id = $1'), 'write');
    assert.equal(category('explain analyze update orders set x = 1 where id = 2'), 'write');
    assert.equal(category('explain update orders set x = 1 where id = 2'), 'read', 'EXPLAIN alone only plans');
    assert.equal(category('copy orders from stdin'), 'write');
    assert.equal(category('copy orders to stdout'), 'read');
    assert.equal(category('this is not sql'), 'unknown');
  });
});
