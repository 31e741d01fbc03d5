/**
 * The guardrail case table for test/pg.guardrails.test.ts, and the fixture it runs against: a
 * throwaway database with canary data (the objects a refused statement would have destroyed),
 * objects for allowed statements to use, and a fingerprint of everything a leaked statement
 * could change (rows, relations, columns, constraints, triggers, rules, schemas, functions,
 * large objects, ALTER SYSTEM and ALTER DATABASE settings, files the server could write).
 *
 * Allowed statements write only to `scratch` (and to objects they create themselves), so that
 * the fingerprint must stay the same after every case, allowed or refused.
 *
 * Each case states what the default policy pack should do, not what it happens to do: where
 * the gateway gets a case wrong, the case keeps its right expectation and carries `todo`.
 */

import { readdir, rm } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type pg from 'pg';

/** How a case reaches the gateway: psql -c, node-postgres simple query, extended protocol unnamed or named. */
export type ClientName = 'psql' | 'simple' | 'extended' | 'named';

/** A refusal: SQLSTATE 42501 and `blocked by policy "<policy>": <reason> on <connection>`; either may be left open. */
export interface Refusal {
  readonly policy?: string;
  readonly reason?: string;
  /** Text in parentheses after the connection, as it starts (the parser's words for what does not parse). */
  readonly detail?: string;
  /** Default 42501. A message the gateway cannot read is a protocol violation (08P01), not a statement. */
  readonly sqlstate?: string;
  /** The gateway ends the session (a protocol violation); otherwise the session must go on. */
  readonly endsSession?: boolean;
}

export interface GuardrailCase {
  readonly sql: string;
  readonly expect: 'allowed' | Refusal;
  /** Parameters: the case then runs in the extended protocol only. */
  readonly values?: readonly unknown[];
  /** Several statements in one text: psql and simple queries only when allowed (the extended protocol takes one). */
  readonly multi?: boolean;
  /** Restricts the clients (when the others cannot carry the text). */
  readonly clients?: readonly ClientName[];
  /** Set when the gateway gets this case wrong today: why. */
  readonly todo?: string;
}

export function appliesTo(c: GuardrailCase, client: ClientName): boolean {
  if (c.clients && !c.clients.includes(client)) return false;
  if (c.values) return client === 'extended' || client === 'named';
  if (c.multi && c.expect === 'allowed') return client === 'psql' || client === 'simple';
  return true;
}

const ddl = (reason: string): Refusal => ({ policy: 'no-destructive-ddl', reason });
export const DROP_TABLE = ddl('DROP TABLE is not allowed');
export const DROP_SCHEMA = ddl('DROP SCHEMA is not allowed');
export const DROP_DATABASE = ddl('DROP DATABASE is not allowed');
export const ALTER_TABLE = ddl('ALTER TABLE is not allowed');
export const ALTER_SCHEMA = ddl('ALTER SCHEMA is not allowed');
export const TRUNCATE = ddl('TRUNCATE is not allowed');
const unfiltered = (reason: string): Refusal => ({ policy: 'no-unfiltered-writes', reason });
export const UNFILTERED_DELETE = unfiltered('DELETE without a WHERE clause that filters rows is not allowed');
export const UNFILTERED_UPDATE = unfiltered('UPDATE without a WHERE clause that filters rows is not allowed');
export const UNFILTERED_MERGE = unfiltered('MERGE without a join condition that filters rows is not allowed');
export const COPY_FILE = { policy: 'no-copy-file-program', reason: 'COPY to or from a server file or program is not allowed' };
export const SERVER_FUNCTION = {
  policy: 'no-server-file-functions',
  reason: 'server file, large-object, dblink and backend-signalling functions are not allowed',
};
export const ALTER_SYSTEM = { policy: 'no-alter-system', reason: 'ALTER SYSTEM is not allowed' };
export const LOAD = { policy: 'no-load', reason: 'LOAD is not allowed' };
/** What does not parse is `sql:unknown`, which nothing permits: fail closed. */
export const UNPARSED = { policy: 'default-deny', reason: 'no policy permits sql:unknown', detail: 'the statement does not parse: ' };
/** Refused, by whichever policy the lead chooses (no policy in the pack covers it yet). */
export const REFUSED: Refusal = {};
const agentCode = (reason: string): Refusal => ({ policy: 'no-agent-code', reason });
export const AGENT_CREATE = agentCode('creating functions, procedures, triggers, rules or extensions is not allowed for agents');
export const AGENT_DO = agentCode('DO blocks are not allowed for agents');
export const AGENT_DYNAMIC = agentCode('dynamic SQL is not allowed for agents');

/** The large object the fixture holds (lo_unlink, lo_export and lo_put target it). */
export const CANARY_LO = 424242;

const FIXTURE_SQL = `
CREATE SCHEMA IF NOT EXISTS sales;
CREATE TABLE canary (id int PRIMARY KEY, note text NOT NULL);
INSERT INTO canary SELECT g, 'canary row ' || g FROM generate_series(1, 5) g;
CREATE TABLE "Canary" (id int PRIMARY KEY, note text NOT NULL);
INSERT INTO "Canary" VALUES (1, 'the quoted canary');
CREATE TABLE sales.canary (id int PRIMARY KEY, note text NOT NULL);
INSERT INTO sales.canary VALUES (1, 'sales canary'), (2, 'another sales canary');
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text);
INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Grace', 'grace@example.com');
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, status text NOT NULL, drop_count int NOT NULL DEFAULT 0);
INSERT INTO orders SELECT g, 1 + g % 2, CASE WHEN g % 3 = 0 THEN 'void' ELSE 'new' END, g FROM generate_series(1, 10) g;
CREATE VIEW order_summary AS SELECT c.name, count(o.id) AS orders FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.name;
CREATE FUNCTION order_total(n int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT n * 2';
CREATE FUNCTION sales.canary_fn() RETURNS text LANGUAGE sql AS $$SELECT 'sales'$$;
CREATE TABLE scratch (id int, note text);
CREATE PROCEDURE touch_scratch() LANGUAGE sql AS $$INSERT INTO scratch VALUES (0, 'from a procedure')$$;
SELECT lo_from_bytea(${CANARY_LO}, 'canary large object');
`;

/** Objects that allowed cases create or write: the fingerprint leaves them out. */
const ALLOWED_OBJECTS = `('scratch', 'scratch_view', 'scratch_id_idx', 'made_here', 'add_one', 'playground')`;

export async function setUpFixture(admin: pg.Client): Promise<void> {
  await admin.query(FIXTURE_SQL);
}

/**
 * Everything a leaked statement could have changed, as the superuser sees it directly (not
 * through the gateway). `files` lists the paths under `scratchPath`'s folder that start with
 * its name: the server writes there only if a COPY or lo_export got through.
 */
export async function fingerprint(admin: pg.Client, scratchPath: string): Promise<Record<string, unknown>> {
  const print: Record<string, unknown> = {};
  for (const table of ['public.canary', 'public."Canary"', 'sales.canary', 'public.customers', 'public.orders', 'public.order_summary']) {
    try {
      const { rows } = await admin.query(
        `SELECT count(*)::int AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS sum FROM ${table} t`,
      );
      print[table] = rows[0];
    } catch (error) {
      print[table] = `unreadable: ${(error as Error).message}`;
    }
  }
  for (const call of ['public.order_total(21)', 'sales.canary_fn()']) {
    try {
      print[call] = (await admin.query(`SELECT ${call} AS v`)).rows[0].v;
    } catch (error) {
      print[call] = `failed: ${(error as Error).message}`;
    }
  }
  const { rows } = await admin.query(`
    WITH ns AS (SELECT oid, nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' AND nspname NOT IN ${ALLOWED_OBJECTS}),
    rel AS (SELECT c.* FROM pg_class c JOIN ns ON ns.oid = c.relnamespace WHERE c.relname NOT IN ${ALLOWED_OBJECTS})
    SELECT
      (SELECT string_agg(format('%s owner=%s', nspname, pg_get_userbyid(n.nspowner)), ', ' ORDER BY nspname) FROM ns JOIN pg_namespace n USING (oid, nspname)) AS schemas,
      (SELECT string_agg(format('%s %s owner=%s rls=%s/%s acl=%s', oid::regclass, relkind, pg_get_userbyid(relowner), relrowsecurity, relforcerowsecurity, relacl), ', ' ORDER BY oid::regclass::text) FROM rel) AS relations,
      (SELECT string_agg(format('%s.%s %s notnull=%s default=%s', a.attrelid::regclass, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)), ', ' ORDER BY a.attrelid::regclass::text, a.attnum)
         FROM pg_attribute a JOIN rel ON rel.oid = a.attrelid LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attnum > 0 AND NOT a.attisdropped) AS columns,
      (SELECT string_agg(format('%s %s %s valid=%s', conrelid::regclass, conname, pg_get_constraintdef(k.oid), convalidated), ', ' ORDER BY conrelid::regclass::text, conname)
         FROM pg_constraint k JOIN rel ON rel.oid = k.conrelid) AS constraints,
      (SELECT string_agg(format('%s %s %s', tgrelid::regclass, CASE WHEN tgisinternal THEN 'internal' ELSE tgname END, tgenabled), ', ' ORDER BY tgrelid::regclass::text, CASE WHEN tgisinternal THEN 'internal' ELSE tgname END, tgenabled)
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname NOT LIKE 'pg\\_%' AND c.relname NOT IN ${ALLOWED_OBJECTS}) AS triggers,
      (SELECT string_agg(format('%s.%s %s', schemaname, tablename, rulename), ', ' ORDER BY schemaname, tablename, rulename) FROM pg_rules WHERE schemaname NOT LIKE 'pg\\_%') AS rules,
      (SELECT string_agg(p.oid::regprocedure::text, ', ' ORDER BY p.oid::regprocedure::text) FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace WHERE p.proname NOT IN ${ALLOWED_OBJECTS}) AS functions,
      (SELECT string_agg(format('%s %s', oid, encode(lo_get(oid), 'escape')), ', ' ORDER BY oid) FROM pg_largeobject_metadata) AS large_objects,
      (SELECT string_agg(format('%s=%s', name, setting), ', ' ORDER BY name) FROM pg_file_settings WHERE name LIKE 'drawbridge%') AS alter_system,
      (SELECT string_agg(array_to_string(setconfig, ','), '; ') FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())) AS database_settings
  `);
  Object.assign(print, rows[0]);
  print.files = await serverFiles(scratchPath);
  return print;
}

async function serverFiles(scratchPath: string): Promise<string[]> {
  const prefix = basename(scratchPath);
  return (await readdir(dirname(scratchPath))).filter((name) => name.startsWith(prefix)).sort();
}

/**
 * Puts the fixture back after a statement got through and changed it, so that the cases after
 * it start from the same state: every non-system schema is dropped and built again.
 */
export async function restoreFixture(admin: pg.Client, database: string, scratchPath: string): Promise<void> {
  const schemas = await admin.query(`SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'`);
  for (const { nspname } of schemas.rows) await admin.query(`DROP SCHEMA "${String(nspname).replaceAll('"', '""')}" CASCADE`);
  await admin.query('CREATE SCHEMA public AUTHORIZATION pg_database_owner; GRANT USAGE ON SCHEMA public TO PUBLIC');
  await admin.query('SELECT lo_unlink(oid) FROM pg_largeobject_metadata');
  await admin.query(`ALTER DATABASE ${database} RESET ALL`);
  const settings = await admin.query(`SELECT DISTINCT name FROM pg_file_settings WHERE name LIKE 'drawbridge%'`);
  for (const { name } of settings.rows) await admin.query(`ALTER SYSTEM RESET "${String(name)}"`);
  for (const file of await serverFiles(scratchPath)) await rm(`${dirname(scratchPath)}/${file}`, { force: true });
  await setUpFixture(admin);
}

/** Cases that share an expectation and need nothing else. */
function each(expect: GuardrailCase['expect'], ...sqls: string[]): GuardrailCase[] {
  return sqls.map((sql) => ({ sql, expect }));
}

/** Texts of several statements that share an expectation. */
function several(expect: GuardrailCase['expect'], ...sqls: string[]): GuardrailCase[] {
  return each(expect, ...sqls).map((c) => ({ ...c, multi: true }));
}

/** What the default pack must do for every principal (the suite runs them as a user). `scratchPath` prefixes the files cases ask the server to write. */
export function guardrailCases(database: string, scratchPath: string): GuardrailCase[] {
  const file = (n: number): string => `${scratchPath}-${n}`;
  return [
    // ---- DROP TABLE in every spelling
    ...each(
      DROP_TABLE,
      'DROP TABLE canary',
      'drop table canary',
      'DrOp TaBlE CaNaRy',
      'DROP TABLE "canary"',
      'DROP TABLE "Canary"',
      'DROP TABLE public.canary',
      'DROP TABLE "public"."canary"',
      'DROP TABLE sales.canary',
      'DROP TABLE IF EXISTS canary',
      'DROP TABLE canary CASCADE',
      'DROP TABLE IF EXISTS no_such_table, canary, orders CASCADE',
      'drop table if exists "Canary", sales.canary restrict',
      '-- just a comment\nDROP TABLE canary',
      '/* a comment */ DROP TABLE canary',
      'DROP /* inside */ TABLE /* again */ canary',
      '/* outer /* nested */ still a comment */ DROP TABLE canary',
      'DROP TABLE canary -- trailing',
      'DROP TABLE canary /* trailing */',
      '\n\n \t  DROP TABLE canary',
      ';DROP TABLE canary',
      ';; ; DROP TABLE canary;;',
      String.raw`DROP TABLE U&"\0063anary"`,
      String.raw`DROP TABLE U&"!0063anary" UESCAPE '!'`,
      'DROP TABLE customers CASCADE',
    ),
    ...each(DROP_DATABASE, 'DROP DATABASE IF EXISTS drawbridge_guardrails_no_such_database'),

    // ---- DROP SCHEMA
    ...each(
      DROP_SCHEMA,
      'DROP SCHEMA sales',
      'DROP SCHEMA sales CASCADE',
      'drop schema if exists sales cascade',
      'DROP SCHEMA "sales" RESTRICT',
      'DROP SCHEMA IF EXISTS no_such_schema, sales CASCADE',
      'DROP SCHEMA public CASCADE',
      '/* tidy up */ DROP SCHEMA sales CASCADE -- bye',
      String.raw`DROP SCHEMA U&"sale\0073" CASCADE`,
    ),

    // ---- TRUNCATE
    ...each(
      TRUNCATE,
      'TRUNCATE canary',
      'truncate table canary',
      'TRUNCATE TABLE ONLY canary',
      'TRUNCATE "Canary"',
      'TRUNCATE public.canary RESTART IDENTITY',
      'TrUnCaTe sales.canary',
      'TRUNCATE canary, orders CASCADE',
      'TRUNCATE customers CASCADE',
      '-- x\nTRUNCATE /* y */ canary;',
      String.raw`TRUNCATE U&"\0063anary"`,
    ),

    // ---- ALTER TABLE and ALTER SCHEMA
    ...each(
      ALTER_TABLE,
      'ALTER TABLE canary ADD COLUMN pwned int',
      'ALTER TABLE canary DROP COLUMN note',
      'alter table if exists "canary" drop column note cascade',
      'ALTER TABLE ONLY public.canary ALTER COLUMN note DROP NOT NULL',
      'ALTER TABLE canary ALTER COLUMN note TYPE int USING length(note)',
      "ALTER TABLE canary ALTER note SET DEFAULT 'x'",
      'ALTER TABLE canary DROP CONSTRAINT canary_pkey',
      'ALTER TABLE "Canary" ADD CHECK (false) NOT VALID',
      'ALTER TABLE canary DISABLE TRIGGER ALL',
      'ALTER TABLE canary ENABLE ROW LEVEL SECURITY',
      'ALTER TABLE canary OWNER TO pg_monitor',
      'ALTER TABLE canary RENAME TO gone',
      'ALTER TABLE sales.canary RENAME TO old_canary',
      'ALTER TABLE "Canary" SET SCHEMA sales',
      'ALTER TABLE order_summary RENAME TO gone_summary',
      '/* x */ ALTER /* y */ TABLE canary -- z\nADD COLUMN pwned int',
    ),
    { sql: 'ALTER TABLE canary RENAME COLUMN note TO gone', expect: ALTER_TABLE },
    { sql: 'alter table if exists canary rename note to gone', expect: ALTER_TABLE },
    { sql: 'ALTER TABLE canary RENAME CONSTRAINT canary_pkey TO gone_pkey', expect: ALTER_TABLE },
    ...each(ALTER_SCHEMA, 'ALTER SCHEMA sales RENAME TO gone', 'alter schema "sales" owner to pg_monitor'),

    // ---- DELETE and UPDATE that do not filter
    ...each(
      UNFILTERED_DELETE,
      'DELETE FROM canary',
      'delete from canary',
      'DELETE FROM public.canary',
      'DELETE FROM "Canary"',
      'DELETE FROM ONLY sales.canary',
      'DELETE FROM canary WHERE 1=1',
      'DELETE FROM canary WHERE true',
      "DELETE FROM canary WHERE 'a'='a'",
      'DELETE FROM canary WHERE 1=1 OR id=1',
      'DELETE FROM canary WHERE id = 1 OR true',
      'DELETE FROM canary WHERE NOT false',
      'DELETE FROM canary WHERE (true)',
      'DELETE FROM canary WHERE 2 > 1',
      'DELETE FROM canary WHERE id = id',
      'DELETE FROM canary WHERE id IS NOT DISTINCT FROM id',
      'DELETE FROM canary WHERE note IS NULL OR note IS NOT NULL',
      'DELETE FROM canary WHERE EXISTS (SELECT 1)',
      'DELETE FROM canary WHERE random() < 2',
      'DELETE FROM canary WHERE current_user = current_user',
      'DELETE FROM canary WHERE $$a$$ = $$a$$',
      "DELETE FROM canary WHERE E'a' = E'a'",
      'DELETE FROM canary USING orders',
      'DELETE /* WHERE id = 1 */ FROM canary',
      'DELETE FROM canary -- WHERE id = 1',
      String.raw`DELETE FROM canary WHERE note = 'a\' OR true --'`,
      String.raw`DELETE FROM U&"\0063anary"`,
    ),
    ...each(
      UNFILTERED_UPDATE,
      "UPDATE canary SET note = 'x'",
      `update "canary" set note = 'x'`,
      "UPDATE public.canary SET note = 'x' WHERE 1=1",
      "UPDATE canary SET note = 'x' WHERE true",
      "UPDATE canary SET note = 'x' WHERE 'a'='a'",
      "UPDATE canary SET note = 'x' WHERE 1=1 OR id = 1",
      "UPDATE canary SET note = 'x' WHERE id = 1 OR true",
      "UPDATE canary SET note = 'x' WHERE NOT false",
      'UPDATE ONLY canary SET id = id + 100',
      "UPDATE canary SET note = note || '!' FROM orders",
      `UPDATE "Canary" SET note = 'x'`,
      "UPDATE sales.canary SET note = 'x' WHERE id = id",
    ),
    {
      sql: "INSERT INTO canary SELECT * FROM canary ON CONFLICT (id) DO UPDATE SET note = 'pwned'",
      expect: { policy: 'no-unfiltered-writes' },
    },

    // ---- the same writes hidden in CTEs, second statements, comments, PREPARE, EXPLAIN ANALYZE, COPY
    ...each(
      UNFILTERED_DELETE,
      'WITH d AS (DELETE FROM canary RETURNING *) SELECT * FROM d',
      'with d as (delete from canary where 1=1 returning id) select count(*) from d',
    ),
    ...each(UNFILTERED_UPDATE, "WITH u AS (UPDATE canary SET note = 'x' RETURNING id) SELECT * FROM u"),
    ...each(
      UNFILTERED_DELETE,
      'WITH keep AS (SELECT id FROM canary WHERE id = 1), gone AS (DELETE FROM canary WHERE true RETURNING 1) SELECT * FROM keep',
      'WITH a AS (WITH d AS (DELETE FROM canary RETURNING id) SELECT id FROM d) SELECT * FROM a',
      'WITH canary AS (SELECT 1 AS id) DELETE FROM canary',
      'WITH d AS (DELETE FROM canary RETURNING id, note) INSERT INTO scratch SELECT * FROM d',
    ),
    ...several(UNFILTERED_DELETE, 'SELECT 1; DELETE FROM canary', 'SELECT 1;DELETE FROM canary;SELECT 2'),
    ...several(UNFILTERED_UPDATE, "SELECT 'x'; -- harmless\nUPDATE canary SET note = 'x'"),
    ...several(DROP_TABLE, 'SELECT * FROM orders WHERE id = 1; DROP TABLE canary'),
    ...several(TRUNCATE, 'SELECT 1 /* ; */; TRUNCATE canary'),
    ...several(DROP_TABLE, 'BEGIN; DROP TABLE canary; COMMIT'),
    ...several(UNFILTERED_DELETE, "INSERT INTO scratch VALUES (1, 'first'); DELETE FROM canary WHERE true"),
    ...several(DROP_SCHEMA, "SET application_name = 'x'; DROP SCHEMA sales CASCADE"),
    ...each(UNFILTERED_DELETE, '-- DELETE is fine here\nDELETE FROM canary', '/* SELECT 1 */ DELETE FROM canary'),
    ...several(UNFILTERED_DELETE, 'SELECT 1 -- a comment\n; DELETE FROM canary'),
    ...each(UNFILTERED_DELETE, '/* /* nested */ SELECT 1; */ DELETE FROM canary'),
    ...several(UNFILTERED_DELETE, 'PREPARE wipe AS DELETE FROM canary; EXECUTE wipe'),
    ...each(UNFILTERED_DELETE, 'PREPARE wipe2 AS DELETE FROM canary', 'PREPARE wipe3 (bool) AS DELETE FROM canary WHERE $1'),
    ...several(UNFILTERED_UPDATE, "PREPARE wipe4 (int) AS UPDATE canary SET note = 'x' WHERE $1 = $1; EXECUTE wipe4(1)"),
    ...each(UNFILTERED_DELETE, 'EXPLAIN ANALYZE DELETE FROM canary', 'explain analyse delete from canary'),
    ...each(UNFILTERED_UPDATE, "EXPLAIN (ANALYZE, COSTS OFF) UPDATE canary SET note = 'x'"),
    ...each(
      UNFILTERED_DELETE,
      'EXPLAIN (ANALYZE true, FORMAT json) WITH d AS (DELETE FROM canary RETURNING 1) SELECT * FROM d',
      'COPY (DELETE FROM canary RETURNING *) TO STDOUT',
    ),
    ...each(
      UNFILTERED_MERGE,
      'MERGE INTO canary c USING orders o ON true WHEN MATCHED THEN DELETE',
      "MERGE INTO canary c USING (SELECT 1 AS k) s ON 1 = 1 WHEN MATCHED THEN UPDATE SET note = 'x'",
      'MERGE INTO canary c USING orders o ON c.id = o.id OR true WHEN MATCHED THEN DELETE',
    ),

    // ---- quoting that hides or assembles statements
    ...several(DROP_TABLE, String.raw`SELECT 'a\'; DROP TABLE canary; --'`, "SELECT $$'$$; DROP TABLE canary"),
    ...several(UNFILTERED_DELETE, 'SELECT $a$ $b$ $a$; DELETE FROM canary; SELECT $b$ x $b$'),
    // Multi for psql's sake: its own lexer would read the unterminated $b$ to the end of a script.
    ...several(UNPARSED, 'SELECT $a$ $b$ $a$; DROP TABLE canary; SELECT $b$'),
    ...several(DROP_TABLE, String.raw`SELECT E'\\'; DROP TABLE canary; --'`),
    ...several(UNFILTERED_DELETE, String.raw`SELECT U&'\0027'; DELETE FROM canary`),
    // Code is decided by what it runs; what cannot be read is refused.
    ...each(UNFILTERED_DELETE, `DO $$BEGIN DELETE FROM canary; END$$`, `do $$ begin if true then delete from canary where 1 = 1; end if; end $$`),
    ...each(DROP_TABLE, `DO $$ BEGIN DROP TABLE canary; END $$`),
    ...each(
      { policy: 'no-unchecked-code' },
      `DO $x$BEGIN EXECUTE 'DROP TABLE ' || 'canary'; END$x$`,
      `DO LANGUAGE plpgsql 'BEGIN EXECUTE format(''TRUNCATE %I'', ''canary''); END'`,
    ),
    {
      sql: 'CREATE FUNCTION wipe_canary() RETURNS void LANGUAGE sql AS $$DELETE FROM canary$$; SELECT wipe_canary()',
      expect: UNFILTERED_DELETE,
      multi: true,
    },
    ...each(
      UNFILTERED_DELETE,
      'CREATE FUNCTION wipe_later() RETURNS void LANGUAGE plpgsql AS $$ BEGIN DELETE FROM canary; END $$',
      'CREATE PROCEDURE wipe_proc() LANGUAGE sql BEGIN ATOMIC DELETE FROM canary; END',
    ),
    {
      sql: 'CREATE RULE wipe_on_insert AS ON INSERT TO scratch DO ALSO DELETE FROM canary',
      expect: { policy: 'no-unfiltered-writes' },
    },

    // ---- COPY to or from server files and programs
    ...each(
      COPY_FILE,
      `COPY canary TO '${file(1)}'`,
      `copy canary to '${file(2)}' with (format csv)`,
      `COPY (SELECT * FROM canary) TO '${file(3)}'`,
      "COPY canary FROM '/etc/hostname'",
      `COPY canary TO PROGRAM 'touch ${file(4)}'`,
      String.raw`COPY canary FROM PROGRAM 'printf ''99\tpwned\n'''`,
      `COPY "Canary" (id, note) TO PROGRAM 'cat > ${file(5)}'`,
      `/* backup */ COPY canary TO PROGRAM $$touch ${file(6)}$$`,
    ),
    ...several(COPY_FILE, `SELECT 1; COPY canary TO '${file(7)}'`),

    // ---- server files, large objects, dblink, backend signalling, settings, sleeping
    ...each(
      SERVER_FUNCTION,
      "SELECT pg_read_file('/etc/hostname')",
      "select PG_READ_FILE('/etc/hostname')",
      `SELECT "pg_read_file"('/etc/hostname')`,
      "SELECT pg_catalog.pg_read_file('/etc/passwd')",
      String.raw`SELECT U&"pg\005fread\005ffile"('/etc/hostname')`,
      "SELECT pg_read_binary_file('/etc/hostname')",
      "SELECT * FROM pg_ls_dir('.')",
      "SELECT pg_stat_file('/etc/hostname')",
      "SELECT count(*) FROM orders WHERE status = pg_read_file('/etc/hostname')",
      "WITH f AS (SELECT pg_read_file('/etc/hostname') AS t) SELECT length(t) FROM f",
      "SELECT (SELECT d FROM pg_ls_dir('.') d LIMIT 1)",
      "INSERT INTO scratch VALUES (1, pg_read_file('/etc/hostname'))",
      "CREATE TABLE loot AS SELECT pg_read_file('/etc/hostname') AS t",
      "CREATE VIEW loot_view AS SELECT pg_read_file('/etc/hostname') AS t",
      "SELECT d INTO loot_into FROM pg_ls_dir('.') d",
    ),
    ...several(SERVER_FUNCTION, "BEGIN; DECLARE c CURSOR FOR SELECT pg_read_file('/etc/hostname'); FETCH c; COMMIT"),
    ...each(
      SERVER_FUNCTION,
      "EXPLAIN ANALYZE SELECT pg_read_file('/etc/hostname')",
      "SELECT lo_import('/etc/hostname')",
      `SELECT lo_export(${CANARY_LO}, '${file(8)}')`,
      `SELECT lo_unlink(${CANARY_LO})`,
      `SELECT lo_put(${CANARY_LO}, 0, 'PWNED')`,
      `SELECT lowrite(lo_open(${CANARY_LO}, 131072), 'PWNED')`,
      "SELECT lo_from_bytea(0, 'new')",
      "SELECT * FROM dblink('dbname=postgres', 'DELETE FROM canary') AS t(x text)",
      "SELECT dblink_exec('dbname=postgres', 'DROP TABLE canary')",
      'SELECT pg_terminate_backend(pg_backend_pid())',
      'SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = pg_backend_pid()',
      'SELECT pg_cancel_backend(pg_backend_pid())',
      'SELECT pg_reload_conf()',
    ),
    ...each(
      SERVER_FUNCTION,
      "SELECT query_to_xml('DELETE FROM canary RETURNING *', true, false, '')",
      "SELECT table_to_xml('canary', true, false, '')",
    ),

    // ---- server configuration and code loading
    ...each(ALTER_SYSTEM, "ALTER SYSTEM SET drawbridge.guardrail_canary = 'on'", 'alter system reset drawbridge.guardrail_canary'),
    ...each(LOAD, "LOAD 'plpgsql'", "/* x */ load '$libdir/plpgsql'"),

    // (Switching standard_conforming_strings off has tests of its own: it changes the session.)

    // ---- what does not parse is refused (fail closed), including what psql cannot send
    ...each(UNPARSED, 'SELEC 1', 'DROP TABLE canary garbage garbage'),
    { sql: 'SELECT 1\0; DROP TABLE canary', expect: { sqlstate: '08P01', endsSession: true }, clients: ['simple', 'extended'] },

    // ---- parameters in the extended protocol
    { sql: 'DELETE FROM canary WHERE $1::int = $1::int', values: [1], expect: UNFILTERED_DELETE },
    { sql: 'DELETE FROM canary WHERE $1', values: [true], expect: UNFILTERED_DELETE },
    { sql: 'DELETE FROM canary WHERE id = $1 OR $2', values: [1, true], expect: UNFILTERED_DELETE },
    { sql: "DELETE FROM canary WHERE $1::text = 'a'", values: ['a'], expect: UNFILTERED_DELETE },
    { sql: 'UPDATE canary SET note = $1', values: ['x'], expect: UNFILTERED_UPDATE },
    { sql: 'UPDATE canary SET note = $1 WHERE $2::text = $2::text', values: ['x', 'a'], expect: UNFILTERED_UPDATE },
    {
      sql: 'WITH d AS (DELETE FROM canary RETURNING id) SELECT count(*) FROM d WHERE $1::int >= 0',
      values: [0],
      expect: UNFILTERED_DELETE,
    },
    { sql: 'SELECT pg_read_file($1)', values: ['/etc/hostname'], expect: SERVER_FUNCTION },
    { sql: 'SELECT lo_unlink($1)', values: [CANARY_LO], expect: SERVER_FUNCTION },

    // ==== look-alikes and ordinary work: allowed
    ...each(
      'allowed',
      'SELECT 1',
      "SELECT 'DROP TABLE canary' AS text",
      "SELECT 'DELETE FROM canary; TRUNCATE canary' AS text",
      'SELECT $$DELETE FROM canary$$ AS text',
      'SELECT $tag$DROP SCHEMA sales CASCADE; $$ $tag$ AS text',
      "SELECT 'a' || $$;DROP TABLE canary;$$ || 'b' AS text",
      String.raw`SELECT E'\'; DROP TABLE canary; --' AS text`,
      String.raw`SELECT 'a\' AS backslash`,
      String.raw`SELECT U&'\0044ROP TABLE canary' AS text`,
      String.raw`SELECT U&'!0044ROP TABLE canary' UESCAPE '!' AS text`,
      String.raw`SELECT count(*) FROM canary WHERE note = U&'\0027; DELETE FROM canary; --'`,
      String.raw`SELECT * FROM U&"\0063anary" ORDER BY id`,
      'SELECT id, drop_count FROM orders ORDER BY drop_count DESC LIMIT 3',
      'SELECT drop_count AS "DROP TABLE canary" FROM orders WHERE id = 1',
      'SELECT 1 AS "delete", 2 AS "drop", 3 AS "truncate"',
      'SELECT 1 -- DROP TABLE canary',
      '/* DROP TABLE canary */ SELECT 1',
      '/* /* nested */ DROP TABLE canary; */ SELECT 1',
      'SELECT 1 /* ; DELETE FROM canary */',
      '-- TRUNCATE canary\nSELECT 2',
      "SELECT 'x' -- ; DELETE FROM canary",
      'SELECT * FROM canary ORDER BY id',
      'TABLE canary',
      'SELECT * FROM "Canary"',
      'SELECT * FROM sales.canary WHERE 1=1',
      'SELECT * FROM canary WHERE true OR id = 1',
      "SELECT id FROM canary WHERE note LIKE '%DELETE%'",
      'SELECT * FROM canary WHERE id = 1 FOR UPDATE',
      'SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.status = $$new$$',
      "VALUES (1, 'DELETE'), (2, 'DROP')",
      'DELETE FROM scratch WHERE id = 1',
      'delete from scratch where id in (1, 2, 3)',
      "DELETE FROM scratch s WHERE EXISTS (SELECT 1 FROM orders o WHERE o.id = s.id AND o.status = 'void')",
      "DELETE FROM scratch WHERE note = 'WHERE 1=1 OR true'",
      String.raw`DELETE FROM scratch WHERE note = E'a\' OR true --'`,
      'DELETE FROM scratch WHERE id = 9 AND true',
      "UPDATE scratch SET note = 'x' WHERE id = 3",
      "UPDATE scratch SET note = upper(note) WHERE note LIKE 'a%'",
      "UPDATE scratch SET note = 'DELETE FROM canary' WHERE id = 4 OR id = 5",
      'UPDATE scratch s SET note = o.status FROM orders o WHERE o.id = s.id',
      'WITH recent AS (SELECT * FROM orders WHERE id > 5) SELECT count(*) FROM recent',
      'WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) SELECT sum(i) FROM n',
      'WITH c AS (SELECT id FROM canary) SELECT count(*) FROM c',
      'WITH d AS (DELETE FROM scratch WHERE id = 42 RETURNING *) SELECT count(*) FROM d',
      'EXPLAIN DELETE FROM canary',
      "EXPLAIN (COSTS OFF) UPDATE canary SET note = 'x'",
      'EXPLAIN WITH d AS (DELETE FROM canary RETURNING *) SELECT * FROM d',
      'EXPLAIN ANALYZE SELECT * FROM orders',
      'COPY orders TO STDOUT',
      'COPY (SELECT * FROM canary) TO STDOUT WITH (FORMAT csv, HEADER)',
      'CREATE TABLE IF NOT EXISTS made_here (id int, note text)',
      'CREATE TEMP TABLE tmp_orders AS SELECT * FROM orders',
      'CREATE TEMPORARY TABLE IF NOT EXISTS tmp_notes (note text)',
      'CREATE INDEX IF NOT EXISTS scratch_id_idx ON scratch (id)',
      'CREATE OR REPLACE VIEW scratch_view AS SELECT id, note FROM scratch',
      'CREATE SCHEMA IF NOT EXISTS playground',
      'CREATE OR REPLACE FUNCTION add_one(n int) RETURNS int LANGUAGE sql AS $$SELECT n + 1$$',
      "INSERT INTO scratch VALUES (100, 'DROP TABLE canary')",
      'INSERT INTO scratch SELECT id, status FROM orders WHERE id <= 3',
      'INSERT INTO scratch (id, note) SELECT id, note FROM canary',
      'MERGE INTO scratch s USING orders o ON s.id = o.id WHEN MATCHED THEN UPDATE SET note = o.status',
      "MERGE INTO scratch s USING (VALUES (900)) v(id) ON s.id = v.id WHEN NOT MATCHED THEN INSERT VALUES (v.id, 'merged')",
      'CALL touch_scratch()',
      "COMMENT ON TABLE scratch IS 'DROP TABLE canary'",
      'ANALYZE scratch',
      "NOTIFY guardrails, 'DROP TABLE canary'",
      'SELECT * FROM order_summary ORDER BY name',
      'SELECT order_total(21) AS total, sales.canary_fn() AS fn',
      "SELECT upper('drop table canary'), length('TRUNCATE'), replace('DELETE', 'E', 'e'), format('%I', 'canary')",
      "SELECT concat('DROP ', 'TABLE ', 'canary') AS assembled",
      "SELECT current_setting('server_version_num')::int >= 150000 AS modern",
      'SELECT pg_backend_pid() > 0 AS has_pid, now() IS NOT NULL AS has_time',
      "SET application_name TO 'guardrails'",
      "SELECT set_config('application_name', 'DROP TABLE canary', false)",
      'SELECT pg_sleep(0)',
      'SHOW search_path',
      'RESET application_name',
    ),
    ...several(
      'allowed',
      "BEGIN; INSERT INTO scratch VALUES (7, 'in a transaction'); COMMIT",
      'START TRANSACTION READ ONLY; SELECT count(*) FROM canary; COMMIT',
      'BEGIN; SELECT 1; ROLLBACK',
    ),
    {
      sql: 'PREPARE find_order (int) AS SELECT * FROM orders WHERE id = $1; EXECUTE find_order(2); DEALLOCATE find_order',
      expect: 'allowed',
      multi: true,
    },
    { sql: 'SELECT * FROM orders WHERE id = $1', values: [1], expect: 'allowed' },
    { sql: 'SELECT $1::text AS sql', values: ["'; DROP TABLE canary; --"], expect: 'allowed' },
    { sql: 'SELECT count(*) FROM canary WHERE note <> $1', values: ['DELETE FROM canary'], expect: 'allowed' },
    { sql: 'DELETE FROM scratch WHERE id = $1', values: [999], expect: 'allowed' },
    { sql: 'UPDATE scratch SET note = $1 WHERE id = $2', values: ['DROP TABLE canary', 1], expect: 'allowed' },
    { sql: 'INSERT INTO scratch (id, note) VALUES ($1, $2)', values: [50, 'TRUNCATE canary'], expect: 'allowed' },
    { sql: 'SELECT set_config($1, $2, false)', values: ['application_name', 'guardrails'], expect: 'allowed' },
  ];
}

/**
 * For agents (service accounts): the default pack also refuses code — DO blocks, functions,
 * procedures, triggers, rules, extensions — and dynamic SQL; everything above applies too.
 */
export function agentCases(): GuardrailCase[] {
  return [
    ...each(
      AGENT_DO,
      'DO $$BEGIN PERFORM 1; END$$',
      'DO $$BEGIN DELETE FROM canary; END$$',
      "do $tag$ begin execute 'drop table ' || quote_ident('canary'); end $tag$",
      "DO E'BEGIN EXECUTE ''TRUNCATE canary''; END'",
      'DO LANGUAGE plpgsql $x$BEGIN NULL; END$x$',
    ),
    ...each(
      AGENT_CREATE,
      'CREATE FUNCTION agent_fn() RETURNS int LANGUAGE sql AS $$SELECT 1$$',
      'CREATE OR REPLACE FUNCTION add_one(n int) RETURNS int LANGUAGE sql AS $$SELECT n + 1$$',
      'create procedure agent_proc() language sql as $$DELETE FROM canary$$',
      'CREATE FUNCTION agent_trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN DELETE FROM canary; RETURN NEW; END$$',
      'CREATE TRIGGER agent_trigger BEFORE UPDATE ON scratch FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()',
      'CREATE RULE agent_rule AS ON INSERT TO scratch DO ALSO NOTIFY guardrails',
      'CREATE EXTENSION IF NOT EXISTS pg_trgm',
    ),
    ...each(AGENT_DYNAMIC, 'CALL touch_scratch()'),
    ...each(DROP_TABLE, 'DROP TABLE canary'),
    ...each(UNFILTERED_DELETE, 'DELETE FROM canary WHERE 1=1'),
    ...each(
      'allowed',
      'SELECT 1',
      "SELECT 'DO $$ BEGIN DELETE FROM canary; END $$' AS text",
      'SELECT order_total(2) AS total',
      "UPDATE scratch SET note = 'agent' WHERE id = 1",
    ),
  ];
}
