import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { actionFor, cedarRequest, PolicyEngine, PolicyError, type PolicyRequest, type StatementInput } from './engine.ts';

const MONDAY_2PM = Date.UTC(2025, 0, 6, 14, 30); // 2025-01-06 was a Monday

function stmt(fields: Partial<StatementInput> & { kind: string }): StatementInput {
  return { tablesRead: [], tablesWritten: [], functions: [], dangerousFunctions: [], dataModifying: false, ...fields };
}

function request(
  statement: StatementInput,
  options: { agent?: boolean; groups?: string[]; now?: number; name?: string } = {},
): PolicyRequest {
  return {
    principal: {
      name: options.name ?? (options.agent ? 'etl-bot' : 'alice'),
      kind: options.agent ? 'service-account' : 'user',
      groups: options.groups ?? [],
    },
    connection: { name: 'orders-db', type: 'postgres' },
    statement,
    statementCount: 1,
    now: options.now ?? MONDAY_2PM,
  };
}

const engine = (text: string, file = 'test.cedar') => PolicyEngine.load([{ file, text }]);
const ALLOW_ALL = '@id("all") permit (principal, action in Drawbridge::Action::"sql:any", resource);\n';

describe('loading', () => {
  it('names the file, line and column of a syntax error', () => {
    const text = 'permit (principal, action, resource);\n\nforbid (principal, action, resource) when { 1 + };\n';
    assert.throws(
      () => engine(text, 'policies/guard.cedar'),
      (error: unknown) => {
        assert.ok(error instanceof PolicyError);
        assert.match(error.message, /^policies\/guard\.cedar:3:\d+: .*unexpected token/);
        assert.equal(error.file, 'policies/guard.cedar');
        assert.equal(error.line, 3);
        return true;
      },
    );
  });

  it('refuses a policy that does not fit the schema, naming file and line', () => {
    const text = ALLOW_ALL + '\nforbid (principal, action, resource)\nwhen { context.tables.contains("orders") };\n';
    assert.throws(() => engine(text, 'ops.cedar'), /^PolicyError: ops\.cedar:4:\d+: attribute `tables` in context .* not found/);
    assert.throws(
      () => engine('permit (principal, action == Drawbridge::Action::"sql:nuke", resource);', 'ops.cedar'),
      (error: unknown) => error instanceof PolicyError && /^ops\.cedar:1:\d+: .*sql:nuke/.test(error.message),
    );
    assert.throws(
      () => engine('permit (principal is Drawbridge::Robot, action, resource);', 'x.cedar'),
      /^PolicyError: x\.cedar:1:\d+: .*Robot/,
    );
  });

  it('names the right file among several', () => {
    assert.throws(
      () =>
        PolicyEngine.load([
          { file: 'a.cedar', text: ALLOW_ALL },
          { file: 'b.cedar', text: 'forbid (principal, action, resource) when { context.hour == "noon" };' },
        ]),
      /^PolicyError: b\.cedar:1:/,
    );
  });

  it('refuses @approval on a permit, and an empty @approval', () => {
    assert.throws(
      () => engine(ALLOW_ALL + '@approval("dba")\npermit (principal, action, resource);'),
      /^PolicyError: test\.cedar:2: @approval only applies to forbid/,
    );
    assert.throws(
      () => engine('@approval\nforbid (principal, action, resource);'),
      /^PolicyError: test\.cedar:1: @approval needs the approver group/,
    );
  });

  it('refuses templates', () => {
    assert.throws(() => engine('permit (principal == ?principal, action, resource);'), PolicyError);
  });

  it('changes version with the policy text and file name, and only then', () => {
    const a = engine(ALLOW_ALL);
    assert.equal(engine(ALLOW_ALL).version, a.version);
    assert.notEqual(engine(ALLOW_ALL + '\n').version, a.version);
    assert.notEqual(engine(ALLOW_ALL, 'other.cedar').version, a.version);
    assert.match(a.version, /^[0-9a-f]{64}$/);
    assert.notEqual(PolicyEngine.defaultPack().version, a.version);
    assert.equal(PolicyEngine.defaultPack().version, PolicyEngine.defaultPack().version);
  });
});

describe('outcomes', () => {
  it('allows, listing the determining permits by @id, else policy<N>', () => {
    const e = engine(ALLOW_ALL + 'permit (principal, action == Drawbridge::Action::"sql:select", resource);');
    assert.deepEqual(e.decide(request(stmt({ kind: 'select' }))), { outcome: 'allow', policies: ['all', 'policy1'] });
    assert.deepEqual(e.decide(request(stmt({ kind: 'insert' }))), { outcome: 'allow', policies: ['all'] });
  });

  it('denies by default when nothing permits', () => {
    const e = engine('permit (principal, action in Drawbridge::Action::"sql:read", resource);');
    assert.deepEqual(e.decide(request(stmt({ kind: 'insert' }))), {
      outcome: 'deny',
      policy: 'default-deny',
      reason: 'no policy permits sql:insert',
    });
    assert.deepEqual(PolicyEngine.load([]).decide(request(stmt({ kind: 'select' }))), {
      outcome: 'deny',
      policy: 'default-deny',
      reason: 'no policy permits sql:select',
    });
  });

  it('denies with the forbid @id and @reason, or fallbacks', () => {
    const e = engine(
      ALLOW_ALL +
        '@id("no-writes") @reason("writing is not allowed") forbid (principal, action in Drawbridge::Action::"sql:write", resource);\n' +
        'forbid (principal, action == Drawbridge::Action::"sql:grant", resource);',
    );
    assert.deepEqual(e.decide(request(stmt({ kind: 'update', hasWhere: true }))), {
      outcome: 'deny',
      policy: 'no-writes',
      reason: 'writing is not allowed',
    });
    assert.deepEqual(e.decide(request(stmt({ kind: 'grant' }))), {
      outcome: 'deny',
      policy: 'policy2',
      reason: 'sql:grant is not allowed',
    });
    assert.equal(e.decide(request(stmt({ kind: 'select' }))).outcome, 'allow');
  });

  it('names the first forbid in load order when several match', () => {
    const e = PolicyEngine.load([
      { file: 'a.cedar', text: ALLOW_ALL + '@id("first") forbid (principal, action == Drawbridge::Action::"sql:delete", resource);' },
      { file: 'b.cedar', text: '@id("second") forbid (principal, action in Drawbridge::Action::"sql:write", resource);' },
    ]);
    assert.equal((e.decide(request(stmt({ kind: 'delete', hasWhere: true }))) as { policy: string }).policy, 'first');
    // Within one file too, whatever order Cedar keeps them in.
    const names = Array.from({ length: 12 }, (_, i) => `rule-${String(i).padStart(2, '0')}`);
    const one = PolicyEngine.load([
      { file: 'c.cedar', text: ALLOW_ALL + names.map((n) => `@id("${n}") forbid (principal, action, resource);`).join('\n') },
    ]);
    assert.equal((one.decide(request(stmt({ kind: 'select' }))) as { policy: string }).policy, 'rule-00');
  });

  const APPROVAL =
    ALLOW_ALL +
    '@id("prod-writes") @reason("writes need a DBA") @approval("dba")\n' +
    'forbid (principal, action in Drawbridge::Action::"sql:write", resource) unless { principal in Drawbridge::Group::"dba" };\n' +
    '@id("no-truncate") @reason("TRUNCATE is not allowed")\n' +
    'forbid (principal, action == Drawbridge::Action::"sql:truncate", resource);\n';

  it('routes an @approval forbid to approval', () => {
    assert.deepEqual(engine(APPROVAL).decide(request(stmt({ kind: 'insert' }))), {
      outcome: 'approval',
      policy: 'prod-writes',
      reason: 'writes need a DBA',
      approvers: 'dba',
    });
  });

  it('denies when a forbid without @approval also matches', () => {
    assert.deepEqual(engine(APPROVAL).decide(request(stmt({ kind: 'truncate' }))), {
      outcome: 'deny',
      policy: 'no-truncate',
      reason: 'TRUNCATE is not allowed',
    });
  });

  it('honours group membership', () => {
    const e = engine(APPROVAL);
    assert.equal(e.decide(request(stmt({ kind: 'insert' }), { groups: ['dba'] })).outcome, 'allow');
    assert.equal(e.decide(request(stmt({ kind: 'insert' }), { groups: ['dev', 'dba'] })).outcome, 'allow');
    assert.equal(e.decide(request(stmt({ kind: 'insert' }), { groups: ['dev'] })).outcome, 'approval');
    const only = engine('permit (principal in Drawbridge::Group::"analysts", action == Drawbridge::Action::"sql:select", resource);');
    assert.equal(only.decide(request(stmt({ kind: 'select' }), { groups: ['analysts'] })).outcome, 'allow');
    assert.equal(only.decide(request(stmt({ kind: 'select' }), { groups: ['analysts'], agent: true })).outcome, 'allow');
    assert.equal(only.decide(request(stmt({ kind: 'select' }), { groups: ['analysts-2'] })).outcome, 'deny');
    // A principal named like the group is not in it.
    assert.equal(only.decide(request(stmt({ kind: 'select' }), { name: 'analysts' })).outcome, 'deny');
  });

  it('tells users and agents apart, and connections by name', () => {
    const e = engine(
      'permit (principal is Drawbridge::User, action, resource == Drawbridge::Connection::"orders-db");\n' +
        'permit (principal == Drawbridge::Agent::"etl-bot", action == Drawbridge::Action::"sql:select", resource) when { resource.type == "postgres" };',
    );
    assert.equal(e.decide(request(stmt({ kind: 'insert' }))).outcome, 'allow');
    assert.equal(e.decide(request(stmt({ kind: 'insert' }), { agent: true })).outcome, 'deny');
    assert.equal(e.decide(request(stmt({ kind: 'select' }), { agent: true })).outcome, 'allow');
    assert.equal(e.decide(request(stmt({ kind: 'select' }), { agent: true, name: 'other-bot' })).outcome, 'deny');
    const elsewhere = { ...request(stmt({ kind: 'insert' })), connection: { name: 'billing-db', type: 'postgres' as const } };
    assert.equal(e.decide(elsewhere).outcome, 'deny');
  });

  it('fills time of day (UTC hour, weekday 0 = Sunday) into the context', () => {
    const e = engine(
      ALLOW_ALL +
        '@id("office-hours") @reason("writes outside office hours are not allowed")\n' +
        'forbid (principal, action in Drawbridge::Action::"sql:write", resource)\n' +
        'when { context.hour < 8 || context.hour >= 18 || context.weekday == 0 || context.weekday == 6 };',
    );
    const write = stmt({ kind: 'insert' });
    assert.equal(e.decide(request(write, { now: MONDAY_2PM })).outcome, 'allow');
    assert.equal(e.decide(request(write, { now: Date.UTC(2025, 0, 6, 7, 59) })).outcome, 'deny');
    assert.equal(e.decide(request(write, { now: Date.UTC(2025, 0, 6, 18, 0) })).outcome, 'deny');
    assert.equal(e.decide(request(write, { now: Date.UTC(2025, 0, 5, 14) })).outcome, 'deny'); // Sunday
    assert.equal(e.decide(request(write, { now: Date.UTC(2025, 0, 11, 14) })).outcome, 'deny'); // Saturday
    assert.equal(e.decide(request(stmt({ kind: 'select' }), { now: Date.UTC(2025, 0, 5, 3) })).outcome, 'allow');
  });

  it('reads tables, functions and statement count from the context', () => {
    const e = engine(
      ALLOW_ALL +
        '@id("no-salaries") forbid (principal, action, resource) when { context.tables_read.contains("public.salaries") };\n' +
        '@id("one-at-a-time") forbid (principal is Drawbridge::Agent, action, resource) when { context.statement_count > 1 };\n' +
        '@id("no-sleep") forbid (principal, action, resource) when { context.functions.contains("pg_sleep") };',
    );
    assert.equal(
      (e.decide(request(stmt({ kind: 'select', tablesRead: ['public.salaries'] }))) as { policy: string }).policy,
      'no-salaries',
    );
    assert.equal(e.decide(request(stmt({ kind: 'select', tablesRead: ['public.orders'] }))).outcome, 'allow');
    assert.equal((e.decide(request(stmt({ kind: 'select', functions: ['pg_sleep'] }))) as { policy: string }).policy, 'no-sleep');
    const many = { ...request(stmt({ kind: 'select' }), { agent: true }), statementCount: 3 };
    assert.equal((e.decide(many) as { policy: string }).policy, 'one-at-a-time');
    assert.equal(e.decide({ ...many, principal: { ...many.principal, kind: 'user' } }).outcome, 'allow');
  });
  it('sends every context attribute a policy reads, however it reads it', () => {
    const e = engine(
      ALLOW_ALL +
        '@id("has-read") forbid (principal, action, resource) when { context has tables_written && context.tables_written.contains("audit") };\n' +
        '@id("like") forbid (principal, action, resource) when { context.object_type like "*view*" };',
    );
    assert.equal((e.decide(request(stmt({ kind: 'insert', tablesWritten: ['audit'] }))) as { policy: string }).policy, 'has-read');
    assert.equal((e.decide(request(stmt({ kind: 'create', objectType: 'materialized_view' }))) as { policy: string }).policy, 'like');
    assert.equal(e.decide(request(stmt({ kind: 'insert', tablesWritten: ['orders'] }))).outcome, 'allow');
  });
});

describe('fail closed', () => {
  it('denies when a forbid errors at run time (Cedar alone would skip it and allow)', () => {
    const e = engine(
      ALLOW_ALL +
        '@id("overflowing") @reason("big numbers") forbid (principal, action, resource) when { context.statement_count + 9223372036854775807 > 5 };',
    );
    const outcome = e.decide(request(stmt({ kind: 'select' })));
    assert.equal(outcome.outcome, 'deny');
    assert.equal((outcome as { policy: string }).policy, 'overflowing');
    assert.equal((outcome as { reason: string }).reason, 'policy evaluation failed, so the statement is refused (fail closed)');
    assert.match((outcome as { detail?: string }).detail ?? '', /overflow/);
  });

  it('denies odd input instead of throwing', () => {
    const e = PolicyEngine.defaultPack();
    const odd: unknown[] = [
      null,
      {},
      { ...request(stmt({ kind: 'select' })), now: Number.NaN },
      { ...request(stmt({ kind: 'select' })), statement: null },
      { ...request(stmt({ kind: 'select' })), principal: null },
      { ...request(stmt({ kind: 'select' })), connection: { name: undefined, type: 'postgres' } },
      { ...request(stmt({ kind: 'select' }), { name: '' }) },
    ];
    for (const input of odd) {
      const outcome = e.decide(input as PolicyRequest);
      assert.equal(outcome.outcome, 'deny', JSON.stringify(input));
      assert.equal((outcome as { policy: string }).policy, 'evaluation-error');
    }
    // Malformed fields that can be read safely are read as "no such fact".
    const sloppy = {
      kind: 42,
      tablesRead: 'orders',
      tablesWritten: null,
      functions: undefined,
      dangerousFunctions: {},
    } as unknown as StatementInput;
    assert.deepEqual(e.decide(request(sloppy)), {
      outcome: 'deny',
      policy: 'default-deny',
      reason: 'no policy permits sql:unknown',
    });
  });

  it('refuses unclassified statements and fast-path calls unless a policy names them', () => {
    const pack = PolicyEngine.defaultPack();
    for (const kind of ['unknown', 'fastpath', 'frobnicate']) {
      assert.deepEqual(pack.decide(request(stmt({ kind }))), {
        outcome: 'deny',
        policy: 'default-deny',
        reason: `no policy permits sql:${kind === 'frobnicate' ? 'unknown' : kind}`,
      });
    }
    const lenient = PolicyEngine.load([
      { file: 'default-pack.cedar', text: readFileSync(new URL('./default-pack.cedar', import.meta.url), 'utf8') },
      {
        file: 'unknown.cedar',
        text: '@id("trust-alice") permit (principal == Drawbridge::User::"alice", action == Drawbridge::Action::"sql:unknown", resource);',
      },
    ]);
    assert.deepEqual(lenient.decide(request(stmt({ kind: 'unknown' }))), { outcome: 'allow', policies: ['trust-alice'] });
  });
});

describe('request mapping', () => {
  it('maps kinds to actions', () => {
    const cases: [StatementInput, string][] = [
      [stmt({ kind: 'select' }), 'sql:select'],
      [stmt({ kind: 'SELECT' }), 'sql:select'],
      [stmt({ kind: 'create', objectType: 'table' }), 'sql:ddl'],
      [stmt({ kind: 'alter' }), 'sql:ddl'],
      [stmt({ kind: 'drop', objectType: 'schema' }), 'sql:ddl'],
      [stmt({ kind: 'copy', copy: { direction: 'to', target: 'stdout' } }), 'sql:copy-to'],
      [stmt({ kind: 'copy', copy: { direction: 'from', target: 'stdin' } }), 'sql:copy-from'],
      [stmt({ kind: 'copy' }), 'sql:copy-from'],
      [stmt({ kind: 'alter-system' }), 'sql:alter-system'],
      [stmt({ kind: 'transaction' }), 'sql:transaction'],
      [stmt({ kind: 'whatever' }), 'sql:unknown'],
    ];
    for (const [statement, action] of cases) assert.equal(actionFor(statement), action, statement.kind);
  });

  it('builds requests that conform to the schema', () => {
    const schema = readFileSync(new URL('./schema.cedarschema', import.meta.url), 'utf8');
    const statements = [
      stmt({ kind: 'select', tablesRead: ['orders'], functions: ['lower'] }),
      stmt({ kind: 'copy', copy: { direction: 'to', target: 'program' } }),
      stmt({ kind: 'create', objectType: 'function', dynamicSql: true }),
      stmt({ kind: 'comment' }),
      stmt({ kind: 'nonsense' }),
    ];
    for (const statement of statements) {
      for (const agent of [false, true]) {
        const answer = cedar.isAuthorized({
          ...cedarRequest(request(statement, { agent, groups: ['dev', 'dba'] }), statement),
          schema,
          validateRequest: true,
          policies: { staticPolicies: 'permit (principal, action, resource);' },
        });
        assert.equal(answer.type, 'success', JSON.stringify(answer));
      }
    }
  });

  it('decides statements that run a nested one, strictest wins', () => {
    const pack = PolicyEngine.defaultPack();
    const unfiltered = stmt({ kind: 'delete', tablesWritten: ['orders'], dataModifying: true });
    const analyze = stmt({ kind: 'explain', explainAnalyze: true, inner: unfiltered, dataModifying: true });
    assert.equal((pack.decide(request(analyze)) as { policy: string }).policy, 'no-unfiltered-writes');
    // EXPLAIN without ANALYZE only plans the DELETE.
    assert.equal(pack.decide(request(stmt({ kind: 'explain', inner: unfiltered }))).outcome, 'allow');
    const prepare = stmt({ kind: 'prepare', inner: stmt({ kind: 'drop', objectType: 'table' }) });
    assert.equal((pack.decide(request(prepare)) as { reason: string }).reason, 'DROP TABLE is not allowed');
    let deep: StatementInput = stmt({ kind: 'select' });
    for (let i = 0; i < 20; i++) deep = stmt({ kind: 'prepare', inner: deep });
    assert.equal((pack.decide(request(deep)) as { policy: string }).policy, 'evaluation-error');
    const approval = engine(
      ALLOW_ALL + '@id("hold-deletes") @approval("dba") forbid (principal, action == Drawbridge::Action::"sql:delete", resource);',
    );
    assert.equal(approval.decide(request(stmt({ kind: 'explain', explainAnalyze: true, inner: unfiltered }))).outcome, 'approval');
  });

  it('decides what code runs: the statements of a DO block or a function body', () => {
    const pack = PolicyEngine.defaultPack();
    const harmless = stmt({ kind: 'do', body: [stmt({ kind: 'select', tablesRead: ['orders'] })] });
    assert.equal(pack.decide(request(harmless)).outcome, 'allow');
    const wipes = stmt({ kind: 'do', body: [stmt({ kind: 'select' }), stmt({ kind: 'delete', hasWhere: false, dataModifying: true })] });
    assert.deepEqual(pack.decide(request(wipes)), {
      outcome: 'deny',
      policy: 'no-unfiltered-writes',
      reason: 'DELETE without a WHERE clause that filters rows is not allowed',
    });
    const unreadable = stmt({ kind: 'create', objectType: 'function', dynamicSql: true });
    assert.equal((pack.decide(request(unreadable)) as { policy: string }).policy, 'no-unchecked-code');
    assert.equal((pack.decide(request(harmless, { agent: true })) as { policy: string }).policy, 'no-agent-code');
  });
});

describe('default pack', () => {
  const pack = PolicyEngine.defaultPack();

  // [what, statement, agent?, the policy that blocks it, or null when it must pass]
  const cases: [string, StatementInput, boolean, string | null, string?][] = [
    [
      'DROP TABLE',
      stmt({ kind: 'drop', objectType: 'table', tablesWritten: ['orders'] }),
      false,
      'no-destructive-ddl',
      'DROP TABLE is not allowed',
    ],
    ['DROP TABLE by an agent', stmt({ kind: 'drop', objectType: 'table' }), true, 'no-destructive-ddl', 'DROP TABLE is not allowed'],
    ['DROP SCHEMA', stmt({ kind: 'drop', objectType: 'schema' }), false, 'no-destructive-ddl', 'DROP SCHEMA is not allowed'],
    ['DROP DATABASE', stmt({ kind: 'drop', objectType: 'database' }), false, 'no-destructive-ddl'],
    ['ALTER TABLE', stmt({ kind: 'alter', objectType: 'table' }), false, 'no-destructive-ddl', 'ALTER TABLE is not allowed'],
    ['ALTER SCHEMA', stmt({ kind: 'alter', objectType: 'schema' }), false, 'no-destructive-ddl'],
    [
      'TRUNCATE',
      stmt({ kind: 'truncate', tablesWritten: ['orders'], dataModifying: true }),
      false,
      'no-destructive-ddl',
      'TRUNCATE is not allowed',
    ],
    ['look-alike: DROP INDEX', stmt({ kind: 'drop', objectType: 'index' }), false, null],
    ['look-alike: CREATE TABLE', stmt({ kind: 'create', objectType: 'table' }), false, null],
    ['look-alike: SELECT with drop_count', stmt({ kind: 'select', tablesRead: ['drop_count'] }), false, null],

    [
      'DELETE without WHERE',
      stmt({ kind: 'delete', tablesWritten: ['orders'], dataModifying: true }),
      false,
      'no-unfiltered-writes',
      'DELETE without a WHERE clause that filters rows is not allowed',
    ],
    ['DELETE WHERE 1=1 (hasWhere false)', stmt({ kind: 'delete', hasWhere: false, dataModifying: true }), false, 'no-unfiltered-writes'],
    [
      'UPDATE without WHERE',
      stmt({ kind: 'update', dataModifying: true }),
      false,
      'no-unfiltered-writes',
      'UPDATE without a WHERE clause that filters rows is not allowed',
    ],
    ['MERGE without filter', stmt({ kind: 'merge', dataModifying: true }), false, 'no-unfiltered-writes'],
    ['look-alike: DELETE WHERE id = 1', stmt({ kind: 'delete', hasWhere: true, dataModifying: true }), false, null],
    ['look-alike: UPDATE WHERE id = 1', stmt({ kind: 'update', hasWhere: true, dataModifying: true }), false, null],
    ['look-alike: MERGE ON id', stmt({ kind: 'merge', hasWhere: true, dataModifying: true }), false, null],
    ['look-alike: INSERT (no WHERE needed)', stmt({ kind: 'insert', dataModifying: true }), false, null],

    [
      'COPY TO file',
      stmt({ kind: 'copy', copy: { direction: 'to', target: 'file' } }),
      false,
      'no-copy-file-program',
      'COPY to or from a server file or program is not allowed',
    ],
    ['COPY FROM program', stmt({ kind: 'copy', copy: { direction: 'from', target: 'program' } }), false, 'no-copy-file-program'],
    ['COPY FROM file', stmt({ kind: 'copy', copy: { direction: 'from', target: 'file' } }), false, 'no-copy-file-program'],
    ['look-alike: COPY TO STDOUT', stmt({ kind: 'copy', copy: { direction: 'to', target: 'stdout' } }), false, null],
    ['look-alike: COPY FROM STDIN', stmt({ kind: 'copy', copy: { direction: 'from', target: 'stdin' } }), false, null],

    [
      'pg_read_file',
      stmt({ kind: 'select', functions: ['pg_read_file'], dangerousFunctions: ['pg_read_file'] }),
      false,
      'no-server-file-functions',
    ],
    [
      'lo_export in an INSERT',
      stmt({ kind: 'insert', functions: ['lo_export'], dangerousFunctions: ['lo_export'] }),
      false,
      'no-server-file-functions',
    ],
    ['look-alike: ordinary functions', stmt({ kind: 'select', functions: ['lower', 'now'] }), false, null],

    ['ALTER SYSTEM', stmt({ kind: 'alter-system' }), false, 'no-alter-system', 'ALTER SYSTEM is not allowed'],
    ['look-alike: SET work_mem', stmt({ kind: 'set' }), false, null],
    ['LOAD', stmt({ kind: 'load' }), false, 'no-load', 'LOAD is not allowed'],
    ['look-alike: VACUUM', stmt({ kind: 'vacuum' }), false, null],

    ['agent CREATE FUNCTION', stmt({ kind: 'create', objectType: 'function' }), true, 'no-agent-code'],
    ['agent CREATE PROCEDURE', stmt({ kind: 'create', objectType: 'procedure' }), true, 'no-agent-code'],
    ['agent CREATE TRIGGER', stmt({ kind: 'create', objectType: 'trigger' }), true, 'no-agent-code'],
    ['agent CREATE RULE', stmt({ kind: 'create', objectType: 'rule' }), true, 'no-agent-code'],
    [
      'agent CREATE EXTENSION',
      stmt({ kind: 'create', objectType: 'extension' }),
      true,
      'no-agent-code',
      'creating functions, procedures, triggers, rules or extensions is not allowed for agents',
    ],
    ['agent DO', stmt({ kind: 'do' }), true, 'no-agent-code', 'DO blocks are not allowed for agents'],
    ['agent dynamic SQL', stmt({ kind: 'call', dynamicSql: true }), true, 'no-agent-code', 'dynamic SQL is not allowed for agents'],
    ['look-alike: user CREATE FUNCTION', stmt({ kind: 'create', objectType: 'function' }), false, null],
    ['look-alike: user DO', stmt({ kind: 'do' }), false, null],
    ['look-alike: user dynamic SQL', stmt({ kind: 'call', dynamicSql: true }), false, null],
    ['look-alike: agent DROP FUNCTION', stmt({ kind: 'drop', objectType: 'function' }), true, null],
    ['look-alike: agent CREATE VIEW', stmt({ kind: 'create', objectType: 'view' }), true, null],
    ['look-alike: agent CALL', stmt({ kind: 'call' }), true, null],
    ['look-alike: agent SELECT', stmt({ kind: 'select', tablesRead: ['orders'] }), true, null],
  ];

  for (const [what, statement, agent, policy, reason] of cases) {
    it(`${policy ? 'blocks' : 'passes'} ${what}`, () => {
      const outcome = pack.decide(request(statement, { agent }));
      if (policy === null) {
        assert.deepEqual(outcome, { outcome: 'allow', policies: ['guardrails-baseline'] });
      } else {
        assert.equal(outcome.outcome, 'deny');
        assert.equal((outcome as { policy: string }).policy, policy);
        if (reason !== undefined) assert.equal((outcome as { reason: string }).reason, reason);
      }
    });
  }

  it('renders the issue example', () => {
    const outcome = pack.decide(request(stmt({ kind: 'drop', objectType: 'table', tablesWritten: ['orders'] }), { agent: true }));
    assert.ok(outcome.outcome === 'deny');
    assert.equal(
      `ERROR: blocked by policy "${outcome.policy}": ${outcome.reason} on orders-db`,
      'ERROR: blocked by policy "no-destructive-ddl": DROP TABLE is not allowed on orders-db',
    );
  });
});

describe('speed', () => {
  it('measures decide() per call (reported, not asserted)', (t) => {
    const pack = PolicyEngine.defaultPack();
    const requests = [
      request(stmt({ kind: 'select', tablesRead: ['orders', 'customers'], functions: ['lower'] }), { groups: ['dev', 'analysts'] }),
      request(stmt({ kind: 'update', hasWhere: true, tablesWritten: ['orders'], dataModifying: true }), { agent: true }),
      request(stmt({ kind: 'drop', objectType: 'table' })),
    ];
    for (let i = 0; i < 500; i++) pack.decide(requests[i % requests.length]!);
    const n = 20_000;
    const started = process.hrtime.bigint();
    for (let i = 0; i < n; i++) pack.decide(requests[i % requests.length]!);
    const micros = Number(process.hrtime.bigint() - started) / 1000 / n;
    t.diagnostic(`decide(): ${micros.toFixed(1)} µs per call (default pack, ${n} calls)`);
  });
});
