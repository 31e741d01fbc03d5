/**
 * PostgreSQL statement classifier for the guardrails.
 *
 * What it is for: turning the text of a client's query into facts that policy can decide on —
 * what kind of statement each one is, which tables it reads and writes, which functions it
 * calls (and which of those are dangerous), whether an UPDATE/DELETE/MERGE really filters,
 * whether it runs SQL we cannot see, and whether it writes anything at all.
 *
 * What it guarantees:
 * - The text is parsed by PostgreSQL's own parser (`libpg-query`, libpg_query compiled to
 *   WASM; no native build). Comments, quoting (E'', U&'', $tag$), case and whitespace are
 *   therefore understood exactly as the server understands them.
 * - The whole parse tree is walked generically: every object and array is visited, so a
 *   table, a function call or a data-modifying statement is found wherever it hides (CTEs,
 *   subqueries, joins, function arguments, EXPLAIN/PREPARE/DECLARE/COPY/CREATE ... AS, rule
 *   actions, SQL-standard function bodies).
 * - Fail closed: text that does not parse (or whose tree cannot be walked) classifies as
 *   `unknown` with `dataModifying: true`; a statement node we do not recognise classifies as
 *   `other` with `dataModifying: true`. Policy must allow these explicitly.
 * - Literal values never change a classification (only keywords, identifiers, operators and
 *   structure do). `statementShape` in `normalize.ts` relies on this to key a verdict cache.
 *
 * Loading: `await initClassifier()` once at start (it awaits `loadModule()` of libpg-query,
 * which instantiates the WASM); afterwards `classify()` is synchronous (`parseSync`).
 *
 * Known limits:
 * - "A WHERE that really filters" is decided structurally: a predicate that does not depend on
 *   the row (no column reference: `1=1`, `true`, `'a'='a'`, `NOT false`, `$1`, `random() < 2`,
 *   `EXISTS (SELECT 1)`) does not count, whatever its value, nor does an OR with such a
 *   branch, nor `x = x`/`x IS NULL OR x IS NOT NULL`. Tautologies that use columns in other
 *   ways (`id > 0 OR id <= 0`) are not detected: this guards against accidents and naive
 *   bypasses, it is not a proof.
 * - Function names are matched on their last name component whatever the schema, so a user
 *   function `myschema.dblink` counts as dangerous (fail closed); a function reached through
 *   an operator, a cast, a trigger that already exists or a view's definition is not seen.
 * - Tables named through strings (`'orders'::regclass`, `table_to_xml('orders', ...)`) are
 *   not seen; such functions are in the dangerous list instead.
 * - The parser assumes `standard_conforming_strings = on` and UTF-8 text, like a default
 *   server. A session that turns standard_conforming_strings off, or uses a client encoding
 *   other than UTF-8, could make the server read the text differently: the gateway must not
 *   allow either (`setting` is reported for SET/RESET/SHOW/ALTER SYSTEM to make that easy).
 */
import { loadModule, parsePlPgSQLSync, parseSync } from 'libpg-query';

export type StatementKind =
  | 'select'
  | 'insert'
  | 'update'
  | 'delete'
  | 'merge'
  | 'create'
  | 'alter'
  | 'drop'
  | 'truncate'
  | 'copy'
  | 'call'
  | 'do'
  | 'prepare'
  | 'execute'
  | 'deallocate'
  | 'explain'
  | 'set'
  | 'show'
  | 'reset'
  | 'grant'
  | 'revoke'
  | 'transaction'
  | 'listen'
  | 'notify'
  | 'unlisten'
  | 'vacuum'
  | 'analyze'
  | 'lock'
  | 'declare'
  | 'fetch'
  | 'close'
  | 'discard'
  | 'load'
  | 'alter-system'
  | 'comment'
  | 'refresh'
  | 'reindex'
  | 'cluster'
  | 'checkpoint'
  | 'other'
  | 'unknown';

export type DmlKind = 'insert' | 'update' | 'delete' | 'merge';

export interface StatementClass {
  /**
   * The statement's kind. A SELECT or INSERT that carries data-modifying CTEs takes the kind
   * of the most destructive DML it carries (delete > merge > update > insert).
   * `SELECT ... INTO t` is `create` with objectType 'table'.
   */
  readonly kind: StatementKind;
  /**
   * For create/alter/drop/comment: the object type, lower-case, hyphenated: 'table',
   * 'schema', 'function', 'procedure', 'trigger', 'rule', 'extension', 'index', 'view',
   * 'materialized-view', 'role', 'database', 'sequence', 'type', 'policy', ...
   */
  readonly objectType?: string;
  /** Qualified when written qualified ('public.orders'), else bare; case as PostgreSQL folds it. */
  readonly tablesRead: readonly string[];
  readonly tablesWritten: readonly string[];
  /** Every function called anywhere in the tree (trigger functions included), schema-qualified if written so. */
  readonly functions: readonly string[];
  /** The subset of `functions` in DANGEROUS_FUNCTIONS. */
  readonly dangerousFunctions: readonly string[];
  /** Every DML statement kind found anywhere in the tree (the statement itself included). */
  readonly dmlKinds: readonly DmlKind[];
  /**
   * Present when the tree holds an UPDATE, DELETE or MERGE: true only if every one of them has
   * a WHERE (MERGE: an ON condition) that really filters.
   */
  readonly hasWhere?: boolean;
  readonly copy?: { readonly direction: 'to' | 'from'; readonly target: 'stdout' | 'stdin' | 'file' | 'program' };
  /** EXPLAIN only: whether the explained statement is executed (ANALYZE). */
  readonly explainAnalyze?: boolean;
  /** explain, prepare, declare, create table as / materialized view / view, copy (query): the inner statement. */
  readonly inner?: StatementClass;
  /**
   * DO blocks and CREATE FUNCTION/PROCEDURE in LANGUAGE sql or plpgsql: the statements their
   * code runs, classified as if sent on their own (PL/pgSQL expressions as SELECTs of them).
   * Absent for code in any other language, which is `dynamicSql`.
   */
  readonly body?: readonly StatementClass[];
  /**
   * The statement runs SQL that is not in this text: EXECUTE of a prepared statement, CALL,
   * dblink, query_to_xml, PL/pgSQL's EXECUTE of a string built at run time, or code in a
   * language other than sql and plpgsql.
   */
  readonly dynamicSql?: boolean;
  /** SET/RESET/SHOW/ALTER SYSTEM: the configuration parameter, lower-case ('all' for RESET ALL). */
  readonly setting?: string;
  /** Writes anything, anywhere in the tree, or may (DDL, DML in a CTE, COPY FROM/TO a file, dynamic SQL, unknown). */
  readonly dataModifying: boolean;
}

export interface Classification {
  readonly statements: readonly StatementClass[];
  readonly multiStatement: boolean;
  /** Set when the text does not parse: statements is then one `unknown` statement. Fail closed. */
  readonly parseError?: string;
}

/**
 * Functions a policy should treat as dangerous, matched on the function's own name (last
 * component, whatever the schema). Exact names, then prefixes.
 */
export const DANGEROUS_FUNCTIONS: readonly string[] = [
  // server file access
  'pg_read_file',
  'pg_read_binary_file',
  'pg_stat_file',
  'pg_ls_dir',
  'pg_ls_logdir',
  'pg_ls_waldir',
  'pg_ls_tmpdir',
  'pg_ls_archive_statusdir',
  'pg_ls_logicalsnapdir',
  'pg_ls_logicalmapdir',
  'pg_ls_replslotdir',
  'pg_ls_summariesdir',
  'pg_file_write',
  'pg_file_rename',
  'pg_file_unlink',
  'pg_file_sync',
  'pg_logdir_ls',
  'pg_current_logfile',
  // large objects (server-side import/export and writes)
  'loread',
  'lowrite',
  // backend signalling and server control
  'pg_terminate_backend',
  'pg_cancel_backend',
  'pg_reload_conf',
  'pg_rotate_logfile',
  'pg_promote',
  'pg_switch_wal',
  'pg_create_restore_point',
  'pg_backup_start',
  'pg_backup_stop',
  'pg_log_backend_memory_contexts',
  'pg_create_physical_replication_slot',
  'pg_create_logical_replication_slot',
  'pg_drop_replication_slot',
  'pg_copy_physical_replication_slot',
  'pg_copy_logical_replication_slot',
  'pg_logical_emit_message',
  'pg_truncate_visibility_map',
  'get_raw_page',
  // Not here: set_config (what SET does, which is allowed) and pg_sleep (a policy can forbid it
  // through context.functions).
  // dynamic SQL and tables named by string
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'table_to_xml',
  'table_to_xmlschema',
  'table_to_xml_and_xmlschema',
  'schema_to_xml',
  'schema_to_xmlschema',
  'schema_to_xml_and_xmlschema',
  'database_to_xml',
  'database_to_xmlschema',
  'database_to_xml_and_xmlschema',
  'ts_stat',
  'ts_rewrite',
];
/** Name prefixes that are dangerous as a family: large objects, dblink, replication origins, adminpack, binary upgrade. */
export const DANGEROUS_FUNCTION_PREFIXES: readonly string[] = [
  'lo_',
  'dblink',
  'pg_replication_origin_',
  'pg_stat_reset',
  'binary_upgrade_',
];
/** Functions that run SQL given as a string (or open a connection that can): `dynamicSql`. */
const DYNAMIC_SQL_FUNCTIONS = new Set([
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'ts_stat',
  'ts_rewrite',
]);
/** Functions that write (sequences, large objects, files): `dataModifying`. */
const WRITING_FUNCTIONS = new Set(['nextval', 'setval', 'lowrite', 'pg_file_write', 'pg_file_rename', 'pg_file_unlink']);

const DANGEROUS_SET = new Set(DANGEROUS_FUNCTIONS);

export function isDangerousFunction(name: string): boolean {
  const base = name.slice(name.lastIndexOf('.') + 1);
  return DANGEROUS_SET.has(base) || DANGEROUS_FUNCTION_PREFIXES.some((p) => base.startsWith(p));
}

let loaded = false;

/** Loads the WASM parser once. Call (and await) before `classify`. */
export async function initClassifier(): Promise<void> {
  if (loaded) return;
  await loadModule();
  loaded = true;
}

/** Classifies every statement in `sql`. Synchronous; throws if `initClassifier` was not awaited. */
export function classify(sql: string): Classification {
  if (!loaded) throw new Error('SQL classifier not initialized: await initClassifier() first');
  // The parser receives a C string: a NUL would end the text early and hide what follows.
  if (sql.includes('\0')) return unparsed('NUL character in statement text');
  // Lone UTF-16 surrogates have no UTF-8 form: what the parser would see is not what was sent.
  if (/\p{Cs}/u.test(sql)) return unparsed('text is not well-formed Unicode');
  let tree: { stmts?: { stmt?: unknown }[] };
  try {
    tree = parseSync(sql) as typeof tree;
  } catch (err) {
    if (sql.trim() === '') return { statements: [], multiStatement: false };
    return unparsed(errorMessage(err));
  }
  try {
    const bytes = Buffer.from(sql, 'utf8');
    const statements = (tree.stmts ?? []).map((s) => {
      // Offsets are in bytes of the UTF-8 text; a length of 0 (omitted) runs to the end.
      const at = (s as { stmt_location?: number }).stmt_location ?? 0;
      const length = (s as { stmt_len?: number }).stmt_len ?? 0;
      return classifyNode(s.stmt, () => bytes.toString('utf8', at, length === 0 ? bytes.length : at + length), 0);
    });
    return { statements, multiStatement: statements.length > 1 };
  } catch (err) {
    // A tree too deep to walk is not classified: fail closed.
    return unparsed(`cannot classify: ${errorMessage(err)}`);
  }
}

function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    const pos = (err as { sqlDetails?: { cursorPosition?: number } }).sqlDetails?.cursorPosition;
    return pos === undefined ? err.message : `${err.message} (at offset ${pos})`;
  }
  return String(err);
}

const UNKNOWN: StatementClass = Object.freeze({
  kind: 'unknown',
  tablesRead: [],
  tablesWritten: [],
  functions: [],
  dangerousFunctions: [],
  dmlKinds: [],
  dataModifying: true,
});

function unparsed(parseError: string): Classification {
  return { statements: [UNKNOWN], multiStatement: false, parseError };
}

// ---------------------------------------------------------------------------------------------
// The tree. libpg-query gives JSON: a node in a generic (Node *) field is wrapped as
// `{ TypeName: { ...fields } }`; a node in a typed field (e.g. DeleteStmt.relation, a RangeVar)
// is not wrapped. Fields equal to their default (false, 0, empty) are omitted.

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `{ TypeName: body }` → [TypeName, body]; otherwise undefined. */
function unwrap(v: unknown): [string, Obj] | undefined {
  if (!isObj(v)) return undefined;
  const keys = Object.keys(v);
  if (keys.length !== 1) return undefined;
  const k = keys[0]!;
  const body = v[k];
  if (!/^[A-Z]/.test(k) || !isObj(body)) return undefined;
  return [k, body];
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** A name part as PostgreSQL resolved it; quoted when it would otherwise read as two parts. */
function namePart(s: string): string {
  return /[."]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

function rangeVarName(rv: Obj): string {
  return [str(rv.catalogname), str(rv.schemaname), str(rv.relname)]
    .filter((p): p is string => p !== undefined && p !== '')
    .map(namePart)
    .join('.');
}

/** A list of String nodes (`[{String:{sval}}]`) → 'a.b'. */
function nameList(v: unknown): string | undefined {
  if (!Array.isArray(v)) return undefined;
  const parts: string[] = [];
  for (const item of v) {
    const u = unwrap(item);
    if (!u || u[0] !== 'String') return undefined;
    const s = str(u[1].sval);
    if (s === undefined) return undefined;
    parts.push(namePart(s));
  }
  return parts.length > 0 ? parts.join('.') : undefined;
}

// ---------------------------------------------------------------------------------------------
// Kinds

const OBJECT_TYPE_NAMES: Record<string, string> = {
  MATVIEW: 'materialized-view',
  FDW: 'foreign-data-wrapper',
  STATISTIC_EXT: 'statistics',
  TSDICTIONARY: 'text-search-dictionary',
  TSCONFIGURATION: 'text-search-configuration',
  TSPARSER: 'text-search-parser',
  TSTEMPLATE: 'text-search-template',
  OPCLASS: 'operator-class',
  OPFAMILY: 'operator-family',
  OPERATOR: 'operator',
};

/** 'OBJECT_FOREIGN_TABLE' → 'foreign-table'. */
function objectTypeName(v: unknown): string | undefined {
  const s = str(v);
  if (s === undefined) return undefined;
  const bare = s.replace(/^OBJECT_/, '');
  return OBJECT_TYPE_NAMES[bare] ?? bare.toLowerCase().replaceAll('_', '-');
}

/** Object types whose DROP/COMMENT names a relation (a table-like thing). */
const RELATION_OBJECT_TYPES = new Set([
  'OBJECT_TABLE',
  'OBJECT_VIEW',
  'OBJECT_MATVIEW',
  'OBJECT_FOREIGN_TABLE',
  'OBJECT_SEQUENCE',
  'OBJECT_INDEX',
]);

const FIXED_CREATE: Record<string, string> = {
  CreateStmt: 'table',
  CreateForeignTableStmt: 'foreign-table',
  ImportForeignSchemaStmt: 'foreign-table',
  ViewStmt: 'view',
  CreateSchemaStmt: 'schema',
  CreateTrigStmt: 'trigger',
  CreateEventTrigStmt: 'event-trigger',
  RuleStmt: 'rule',
  CreateExtensionStmt: 'extension',
  IndexStmt: 'index',
  CreateRoleStmt: 'role',
  CreatedbStmt: 'database',
  CreateSeqStmt: 'sequence',
  CompositeTypeStmt: 'type',
  CreateEnumStmt: 'type',
  CreateRangeStmt: 'type',
  CreateDomainStmt: 'domain',
  CreatePolicyStmt: 'policy',
  CreateTableSpaceStmt: 'tablespace',
  CreateFdwStmt: 'foreign-data-wrapper',
  CreateForeignServerStmt: 'foreign-server',
  CreateUserMappingStmt: 'user-mapping',
  CreatePublicationStmt: 'publication',
  CreateSubscriptionStmt: 'subscription',
  CreateCastStmt: 'cast',
  CreateConversionStmt: 'conversion',
  CreateOpClassStmt: 'operator-class',
  CreateOpFamilyStmt: 'operator-family',
  CreateAmStmt: 'access-method',
  CreatePLangStmt: 'language',
  CreateStatsStmt: 'statistics',
  CreateTransformStmt: 'transform',
};

const FIXED_ALTER: Record<string, string> = {
  AlterDomainStmt: 'domain',
  AlterRoleStmt: 'role',
  AlterRoleSetStmt: 'role',
  AlterDatabaseStmt: 'database',
  AlterDatabaseSetStmt: 'database',
  AlterDatabaseRefreshCollStmt: 'database',
  AlterSeqStmt: 'sequence',
  AlterExtensionStmt: 'extension',
  AlterExtensionContentsStmt: 'extension',
  AlterEnumStmt: 'type',
  AlterTypeStmt: 'type',
  AlterPolicyStmt: 'policy',
  AlterPublicationStmt: 'publication',
  AlterSubscriptionStmt: 'subscription',
  AlterTableSpaceOptionsStmt: 'tablespace',
  AlterDefaultPrivilegesStmt: 'default-privileges',
  AlterEventTrigStmt: 'event-trigger',
  AlterFdwStmt: 'foreign-data-wrapper',
  AlterForeignServerStmt: 'foreign-server',
  AlterUserMappingStmt: 'user-mapping',
  AlterOperatorStmt: 'operator',
  AlterStatsStmt: 'statistics',
  AlterCollationStmt: 'collation',
  AlterOpFamilyStmt: 'operator-family',
  AlterTSDictionaryStmt: 'text-search-dictionary',
  AlterTSConfigurationStmt: 'text-search-configuration',
  ReassignOwnedStmt: 'owned',
};

const FIXED_DROP: Record<string, string> = {
  DropRoleStmt: 'role',
  DropdbStmt: 'database',
  DropTableSpaceStmt: 'tablespace',
  DropOwnedStmt: 'owned',
  DropUserMappingStmt: 'user-mapping',
  DropSubscriptionStmt: 'subscription',
};

const SIMPLE_KINDS: Record<string, StatementKind> = {
  InsertStmt: 'insert',
  UpdateStmt: 'update',
  DeleteStmt: 'delete',
  MergeStmt: 'merge',
  TruncateStmt: 'truncate',
  CopyStmt: 'copy',
  CallStmt: 'call',
  DoStmt: 'do',
  PrepareStmt: 'prepare',
  ExecuteStmt: 'execute',
  DeallocateStmt: 'deallocate',
  ExplainStmt: 'explain',
  VariableShowStmt: 'show',
  ConstraintsSetStmt: 'set',
  TransactionStmt: 'transaction',
  ListenStmt: 'listen',
  NotifyStmt: 'notify',
  UnlistenStmt: 'unlisten',
  LockStmt: 'lock',
  DeclareCursorStmt: 'declare',
  FetchStmt: 'fetch',
  ClosePortalStmt: 'close',
  DiscardStmt: 'discard',
  LoadStmt: 'load',
  AlterSystemStmt: 'alter-system',
  RefreshMatViewStmt: 'refresh',
  ReindexStmt: 'reindex',
  ClusterStmt: 'cluster',
  CheckPointStmt: 'checkpoint',
};

/** Kinds that write (or may write) by themselves, whatever their tree holds. */
const MODIFYING_KINDS = new Set<StatementKind>([
  'insert',
  'update',
  'delete',
  'merge',
  'create',
  'alter',
  'drop',
  'truncate',
  'call',
  'do',
  'execute',
  'grant',
  'revoke',
  'load',
  'alter-system',
  'comment',
  'refresh',
  'other',
  'unknown',
]);

interface KindInfo {
  kind: StatementKind;
  objectType?: string;
  dynamicSql?: boolean;
  setting?: string;
}

function kindOf(type: string, body: Obj): KindInfo {
  const simple = SIMPLE_KINDS[type];
  if (simple !== undefined) {
    // DO: whether its code builds SQL at run time is read from the code (readCode).
    if (simple === 'execute' || simple === 'call') return { kind: simple, dynamicSql: true };
    if (simple === 'show') return { kind: simple, setting: str(body.name)?.toLowerCase() ?? '' };
    if (simple === 'alter-system') {
      const set = isObj(body.setstmt) ? body.setstmt : {};
      return { kind: simple, setting: str(set.name)?.toLowerCase() ?? 'all' };
    }
    return { kind: simple };
  }
  switch (type) {
    case 'SelectStmt':
      return isObj(body.intoClause) ? { kind: 'create', objectType: 'table' } : { kind: 'select' };
    case 'VariableSetStmt': {
      const k = str(body.kind);
      const setting = str(body.name)?.toLowerCase() ?? 'all';
      return { kind: k === 'VAR_RESET' || k === 'VAR_RESET_ALL' ? 'reset' : 'set', setting };
    }
    case 'GrantStmt':
    case 'GrantRoleStmt':
      return { kind: body.is_grant === true ? 'grant' : 'revoke' };
    case 'VacuumStmt':
      return { kind: body.is_vacuumcmd === true ? 'vacuum' : 'analyze' };
    case 'CreateFunctionStmt':
      return { kind: 'create', objectType: body.is_procedure === true ? 'procedure' : 'function' };
    case 'CreateTableAsStmt':
      return { kind: 'create', objectType: objectTypeName(body.objtype) ?? 'table' };
    case 'DefineStmt':
      return { kind: 'create', objectType: objectTypeName(body.kind) ?? 'other' };
    case 'AlterTableStmt':
    case 'AlterTableMoveAllStmt':
      return { kind: 'alter', objectType: objectTypeName(body.objtype) ?? 'table' };
    case 'AlterFunctionStmt':
      return { kind: 'alter', objectType: objectTypeName(body.objtype) ?? 'function' };
    case 'AlterObjectSchemaStmt':
    case 'AlterOwnerStmt':
    case 'AlterObjectDependsStmt':
      return { kind: 'alter', objectType: objectTypeName(body.objectType) ?? 'other' };
    case 'RenameStmt': {
      // RENAME COLUMN and RENAME CONSTRAINT alter the table (or view, ...) they belong to.
      const part = body.renameType === 'OBJECT_COLUMN' || body.renameType === 'OBJECT_TABCONSTRAINT';
      // (For ALTER TABLE … RENAME CONSTRAINT the parser leaves relationType at its zero value,
      // OBJECT_ACCESS_METHOD, which a relation never is: it is a table.)
      const relation = body.relationType === undefined || body.relationType === 'OBJECT_ACCESS_METHOD' ? 'table' : objectTypeName(body.relationType);
      const objectType = part ? relation : objectTypeName(body.renameType);
      return { kind: 'alter', objectType: objectType ?? 'other' };
    }
    case 'DropStmt':
      return { kind: 'drop', objectType: objectTypeName(body.removeType) ?? 'other' };
    case 'CommentStmt':
      return { kind: 'comment', objectType: objectTypeName(body.objtype) ?? 'other' };
  }
  const created = FIXED_CREATE[type];
  if (created !== undefined) return { kind: 'create', objectType: created };
  const altered = FIXED_ALTER[type];
  if (altered !== undefined) return { kind: 'alter', objectType: altered };
  const dropped = FIXED_DROP[type];
  if (dropped !== undefined) return { kind: 'drop', objectType: dropped };
  // Fail closed: a statement we do not know is 'other', and 'other' counts as modifying.
  if (type.startsWith('Create')) return { kind: 'create', objectType: 'other' };
  if (type.startsWith('Alter')) return { kind: 'alter', objectType: 'other' };
  if (type.startsWith('Drop')) return { kind: 'drop', objectType: 'other' };
  return { kind: 'other' };
}

// ---------------------------------------------------------------------------------------------
// Code bodies: DO blocks and functions in LANGUAGE sql or plpgsql are read, so that what they
// run is decided like any statement. Code in another language cannot be read: dynamic SQL.

/** Bodies nested deeper than this (a DO that creates a function that …) are not followed. */
const MAX_CODE_DEPTH = 4;

interface Code {
  /** The statements the code runs; undefined when it cannot be read. */
  readonly body: StatementClass[] | undefined;
  /** The code builds SQL at run time, or is in a language that cannot be read. */
  readonly dynamic: boolean;
}

function readCode(type: string, stmt: Obj, text: () => string, depth: number): Code {
  const list = type === 'DoStmt' ? stmt.args : stmt.options;
  const options: unknown[] = Array.isArray(list) ? list : [];
  let language = type === 'DoStmt' ? 'plpgsql' : stmt.sql_body !== undefined ? 'sql' : undefined;
  let source: string | undefined;
  for (const option of options) {
    const d = unwrap(option);
    if (!d || d[0] !== 'DefElem') continue;
    const arg = unwrap(d[1].arg);
    if (d[1].defname === 'language' && arg?.[0] === 'String') language = str(arg[1].sval)?.toLowerCase();
    if (d[1].defname === 'as') {
      if (arg?.[0] === 'String') source = str(arg[1].sval);
      else if (arg?.[0] === 'List' && Array.isArray(arg[1].items) && arg[1].items.length === 1) source = str(unwrap(arg[1].items[0])?.[1].sval);
    }
  }
  // A SQL-standard body (BEGIN ATOMIC … END, RETURN …) is part of the tree already.
  if (stmt.sql_body !== undefined) return { body: sqlBodyStatements(stmt.sql_body).map((node) => classifyNode(node, () => '', depth + 1)), dynamic: false };
  if (depth >= MAX_CODE_DEPTH) return { body: [UNKNOWN], dynamic: false };
  if (language === 'sql' && source !== undefined) {
    const inner = classifyAt(source, depth + 1);
    return { body: [...inner], dynamic: false };
  }
  if (language === 'plpgsql' && source !== undefined) {
    let tree: unknown;
    try {
      tree = parsePlPgSQLSync(type === 'DoStmt' ? asFunction(source) : text());
    } catch {
      // What PL/pgSQL's own parser refuses would not run either; it is not guessed at.
      return { body: [UNKNOWN], dynamic: false };
    }
    const body: StatementClass[] = [];
    const dynamic = readPlPgSql(tree, body, depth + 1);
    return { body, dynamic };
  }
  return { body: undefined, dynamic: true };
}

/** The statements of BEGIN ATOMIC … END (a List of one List of them), or the RETURN statement. */
function sqlBodyStatements(sqlBody: unknown): unknown[] {
  const outer = unwrap(sqlBody);
  if (outer?.[0] !== 'List') return [sqlBody];
  const lists = Array.isArray(outer[1].items) ? outer[1].items : [];
  return lists.flatMap((list) => {
    const inner = unwrap(list);
    return inner?.[0] === 'List' && Array.isArray(inner[1].items) ? inner[1].items : [list];
  });
}

/** A DO block's body as the one function PL/pgSQL's parser reads (DO blocks return nothing). */
function asFunction(source: string): string {
  let tag = 'drawbridge';
  while (source.includes(`$${tag}$`)) tag += '_';
  return `CREATE FUNCTION drawbridge_do() RETURNS void LANGUAGE plpgsql AS $${tag}$${source}$${tag}$`;
}

/** The statements of a text nested in code, each as classify() would give it; unparsable text is unknown. */
function classifyAt(sql: string, depth: number): StatementClass[] {
  let tree: { stmts?: { stmt?: unknown; stmt_location?: number; stmt_len?: number }[] };
  try {
    tree = parseSync(sql) as typeof tree;
  } catch {
    return [UNKNOWN];
  }
  const bytes = Buffer.from(sql, 'utf8');
  return (tree.stmts ?? []).map((s) => {
    const at = s.stmt_location ?? 0;
    const length = s.stmt_len ?? 0;
    return classifyNode(s.stmt, () => bytes.toString('utf8', at, length === 0 ? bytes.length : at + length), depth);
  });
}

/** PL/pgSQL's parse modes (RawParseMode): 0 is a whole statement, 2 an expression, 3 to 5 an assignment. */
const PARSE_STATEMENT = 0;
const PARSE_ASSIGNMENT = new Set([3, 4, 5]);

/** Collects what a PL/pgSQL tree runs into `body`; true when it builds SQL at run time. */
function readPlPgSql(node: unknown, body: StatementClass[], depth: number): boolean {
  let dynamic = false;
  if (Array.isArray(node)) {
    for (const item of node) dynamic = readPlPgSql(item, body, depth) || dynamic;
    return dynamic;
  }
  if (!isObj(node)) return false;
  for (const [key, value] of Object.entries(node)) {
    if (key === 'PLpgSQL_stmt_dynexecute' || key === 'PLpgSQL_stmt_dynfors' || key === 'dynquery') dynamic = true;
    if (key === 'PLpgSQL_expr' && isObj(value) && typeof value.query === 'string') {
      const mode = typeof value.parseMode === 'number' ? value.parseMode : PARSE_STATEMENT;
      let query = value.query;
      if (PARSE_ASSIGNMENT.has(mode)) {
        // "target := expression" (or "="): the target is a variable, the expression is read.
        const at = query.indexOf(':=') >= 0 ? query.indexOf(':=') + 2 : query.indexOf('=') + 1;
        query = query.slice(at);
      }
      body.push(...classifyAt(mode === PARSE_STATEMENT ? query : `SELECT ${query}`, depth));
      continue;
    }
    dynamic = readPlPgSql(value, body, depth) || dynamic;
  }
  return dynamic;
}

// ---------------------------------------------------------------------------------------------
// The walk

interface Collector {
  reads: Set<string>;
  writes: Set<string>;
  functions: Set<string>;
  dml: Set<DmlKind>;
  whereOk: boolean | undefined;
  dynamicSql: boolean;
  modifying: boolean;
}

interface Scope {
  /** CTE names visible here: an unqualified RangeVar with one of these names is not a table. */
  readonly ctes: ReadonlySet<string>;
  /** False under EXPLAIN without ANALYZE: nothing there runs, so writes count as reads. */
  readonly executes: boolean;
}

/** For each statement type, the fields that name the relation it writes (typed RangeVar or a list of them). */
const WRITE_TARGETS: Record<string, readonly string[]> = {
  InsertStmt: ['relation'],
  UpdateStmt: ['relation'],
  DeleteStmt: ['relation'],
  MergeStmt: ['relation'],
  TruncateStmt: ['relations'],
  CreateStmt: ['relation'],
  ViewStmt: ['view'],
  AlterTableStmt: ['relation'],
  RenameStmt: ['relation'],
  AlterObjectSchemaStmt: ['relation'],
  IndexStmt: ['relation'],
  CreateTrigStmt: ['relation'],
  RuleStmt: ['relation'],
  CreatePolicyStmt: ['table'],
  AlterPolicyStmt: ['table'],
  RefreshMatViewStmt: ['relation'],
  CreateSeqStmt: ['sequence'],
  AlterSeqStmt: ['sequence'],
  CreateTableAsStmt: ['into'],
  SelectStmt: ['intoClause'],
};

const DML_TYPES: Record<string, DmlKind> = {
  InsertStmt: 'insert',
  UpdateStmt: 'update',
  DeleteStmt: 'delete',
  MergeStmt: 'merge',
};

function newCollector(): Collector {
  return {
    reads: new Set(),
    writes: new Set(),
    functions: new Set(),
    dml: new Set(),
    whereOk: undefined,
    dynamicSql: false,
    modifying: false,
  };
}

function classifyNode(stmt: unknown, text: () => string, depth: number): StatementClass {
  const u = unwrap(stmt);
  if (!u) return UNKNOWN;
  const [type, body] = u;
  const info = kindOf(type, body);
  const code = type === 'DoStmt' || type === 'CreateFunctionStmt' ? readCode(type, body, text, depth) : undefined;
  if (code !== undefined) info.dynamicSql = code.dynamic;
  const c = newCollector();
  walkNode(type, body, c, { ctes: new Set(), executes: true });

  let kind = info.kind;
  let dataModifying = c.modifying || MODIFYING_KINDS.has(kind) || c.dynamicSql || info.dynamicSql === true;
  const out: {
    -readonly [K in keyof StatementClass]: StatementClass[K];
  } = {
    kind,
    tablesRead: [],
    tablesWritten: [],
    functions: [],
    dangerousFunctions: [],
    dmlKinds: [],
    dataModifying,
  };

  let inner: unknown;
  switch (type) {
    case 'ExplainStmt': {
      inner = body.query;
      out.explainAnalyze = explainAnalyzes(body.options);
      break;
    }
    case 'PrepareStmt':
    case 'DeclareCursorStmt':
    case 'CreateTableAsStmt':
    case 'ViewStmt':
      inner = body.query;
      break;
    case 'CopyStmt': {
      inner = body.query;
      const from = body.is_from === true;
      const target = body.is_program === true ? 'program' : str(body.filename) !== undefined ? 'file' : from ? 'stdin' : 'stdout';
      out.copy = { direction: from ? 'from' : 'to', target };
      if (from || target === 'file' || target === 'program') dataModifying = true;
      break;
    }
  }
  if (code?.body !== undefined) {
    out.body = code.body;
    if (code.body.some((b) => b.dataModifying)) dataModifying = true;
  }
  if (inner !== undefined) {
    out.inner = classifyNode(inner, () => '', depth);
    if (type === 'ExplainStmt' && !out.explainAnalyze) dataModifying = false;
  }

  // A SELECT that deletes is a delete, and so is an INSERT whose CTE deletes: the statement
  // takes the kind of the most destructive DML it carries, so that the rules for that kind apply.
  if ((kind === 'select' || kind === 'insert') && c.dml.size > 0) {
    // (An INSERT … ON CONFLICT DO UPDATE carries an update, so it is decided as one.)
    kind = (['delete', 'merge', 'update', 'insert'] as const).find((k) => c.dml.has(k))!;
  }
  const functions = [...c.functions];
  out.kind = kind;
  if (info.objectType !== undefined) out.objectType = info.objectType;
  out.tablesRead = [...c.reads];
  out.tablesWritten = [...c.writes];
  out.functions = functions;
  out.dangerousFunctions = functions.filter(isDangerousFunction);
  out.dmlKinds = (['insert', 'update', 'delete', 'merge'] as const).filter((k) => c.dml.has(k));
  if (c.whereOk !== undefined) out.hasWhere = c.whereOk;
  if (c.dynamicSql || info.dynamicSql || code?.body?.some((b) => b.dynamicSql)) out.dynamicSql = true;
  if (info.setting !== undefined) out.setting = info.setting;
  out.dataModifying = dataModifying;
  return out;
}

/**
 * EXPLAIN executes when an ANALYZE option is present, whatever value it is given: fail closed,
 * and a literal (`ANALYZE 'off'`, `ANALYZE 0`) never changes a classification, which keeps
 * `statementShape` sound. `EXPLAIN (ANALYZE false)` therefore counts as executing.
 */
function explainAnalyzes(options: unknown): boolean {
  if (!Array.isArray(options)) return false;
  return options.some((o) => {
    const u = unwrap(o);
    return u !== undefined && u[0] === 'DefElem' && str(u[1].defname) === 'analyze';
  });
}

function walkValue(v: unknown, c: Collector, scope: Scope): void {
  if (Array.isArray(v)) {
    for (const item of v) walkValue(item, c, scope);
    return;
  }
  if (!isObj(v)) return;
  const u = unwrap(v);
  if (u) {
    walkNode(u[0], u[1], c, scope);
    return;
  }
  // An unwrapped typed field: a RangeVar is recognised by its relname.
  if (typeof v.relname === 'string') {
    readRelation(v, c, scope);
    return;
  }
  walkFields(v, c, scope, undefined);
}

function walkFields(body: Obj, c: Collector, scope: Scope, skip: ReadonlySet<string> | undefined): void {
  for (const [k, v] of Object.entries(body)) {
    if (skip?.has(k)) continue;
    walkValue(v, c, scope);
  }
}

function readRelation(rv: Obj, c: Collector, scope: Scope): void {
  const name = rangeVarName(rv);
  if (rv.schemaname === undefined && rv.catalogname === undefined && scope.ctes.has(str(rv.relname) ?? '')) return;
  c.reads.add(name);
}

function writeRelation(name: string, c: Collector, scope: Scope): void {
  if (scope.executes) {
    c.writes.add(name);
    c.modifying = true;
  } else {
    c.reads.add(name);
  }
}

/** Records the relation(s) in a write-target field: a typed RangeVar, a wrapped one, or a list. */
function writeTarget(v: unknown, c: Collector, scope: Scope): void {
  if (Array.isArray(v)) {
    for (const item of v) writeTarget(item, c, scope);
    return;
  }
  // An IntoClause (CREATE TABLE AS, SELECT INTO) is a typed field that holds the RangeVar in `rel`.
  if (isObj(v) && isObj(v.rel)) {
    writeTarget(v.rel, c, scope);
    walkFields(v, c, scope, new Set(['rel']));
    return;
  }
  const u = unwrap(v);
  const rv = u && u[0] === 'RangeVar' ? u[1] : isObj(v) && typeof v.relname === 'string' ? v : undefined;
  if (rv) writeRelation(rangeVarName(rv), c, scope);
  else walkValue(v, c, scope);
}

function walkNode(type: string, body: Obj, c: Collector, scope: Scope): void {
  switch (type) {
    case 'RangeVar':
      readRelation(body, c, scope);
      return;
    case 'FuncCall':
      callFunction(body.funcname, c);
      walkFields(body, c, scope, new Set(['funcname']));
      return;
    case 'CreateFunctionStmt':
      // Its code is classified on its own (readCode), as what it runs, not as this statement.
      walkFields(body, c, scope, new Set(['sql_body']));
      return;
    case 'CallStmt':
      if (isObj(body.funccall)) walkNode('FuncCall', body.funccall, c, scope);
      walkFields(body, c, scope, new Set(['funccall']));
      return;
    case 'CreateTrigStmt':
    case 'CreateEventTrigStmt':
      // The trigger function runs on every event: count it as called.
      callFunction(body.funcname, c);
      break;
    case 'ExplainStmt': {
      const executes = scope.executes && explainAnalyzes(body.options);
      walkValue(body.query, c, { ctes: scope.ctes, executes });
      walkFields(body, c, scope, new Set(['query']));
      return;
    }
    case 'CopyStmt':
      if (body.is_from === true && isObj(body.relation)) {
        writeTarget(body.relation, c, scope);
        walkFields(body, c, scope, new Set(['relation']));
        return;
      }
      break;
    case 'DropStmt':
    case 'CommentStmt': {
      const objtype = str(type === 'DropStmt' ? body.removeType : body.objtype);
      if (objtype !== undefined && RELATION_OBJECT_TYPES.has(objtype)) {
        const objects = type === 'DropStmt' ? body.objects : [body.object];
        for (const o of Array.isArray(objects) ? objects : []) {
          const list = unwrap(o);
          const name = list && list[0] === 'List' ? nameList(list[1].items) : undefined;
          if (name !== undefined) writeRelation(name, c, scope);
        }
      }
      break;
    }
    case 'GrantStmt':
      if (body.objtype === 'OBJECT_TABLE' || body.objtype === 'OBJECT_SEQUENCE') {
        writeTarget(body.objects, c, scope);
        walkFields(body, c, scope, new Set(['objects']));
        return;
      }
      break;
  }

  const dml = DML_TYPES[type];
  if (dml !== undefined && scope.executes) {
    c.dml.add(dml);
    c.modifying = true;
    if (dml !== 'insert') {
      const ok = filters(dml === 'merge' ? body.joinCondition : body.whereClause);
      c.whereOk = (c.whereOk ?? true) && ok;
    } else if (isObj(body.onConflictClause) && body.onConflictClause.action === 'ONCONFLICT_UPDATE') {
      // INSERT … ON CONFLICT DO UPDATE is an update of the rows it conflicts with: as many as
      // its source has. A VALUES list names its rows; a query must filter (or DO UPDATE … WHERE).
      c.dml.add('update');
      const source = unwrap(body.selectStmt);
      const values = source?.[0] === 'SelectStmt' && Array.isArray(source[1].valuesLists);
      const ok = values || filters(body.onConflictClause.whereClause) || (source?.[0] === 'SelectStmt' && filters(source[1].whereClause));
      c.whereOk = (c.whereOk ?? true) && ok;
    }
  }
  if (type.endsWith('Stmt') && scope.executes) {
    const info = kindOf(type, body);
    if (MODIFYING_KINDS.has(info.kind) && info.kind !== 'other') c.modifying = true;
    if (info.dynamicSql) c.dynamicSql = true;
  }

  const targets = WRITE_TARGETS[type];
  const skip = new Set<string>(targets ?? []);
  if (targets) for (const t of targets) if (body[t] !== undefined) writeTarget(body[t], c, scope);

  // WITH: a non-recursive CTE sees the CTEs before it; a recursive one sees all; the
  // statement's own body sees all.
  let inner = scope;
  const withClause = body.withClause;
  if (isObj(withClause)) {
    skip.add('withClause');
    const ctes = Array.isArray(withClause.ctes) ? withClause.ctes : [];
    const names = ctes.map((x) => {
      const cte = unwrap(x);
      return cte && cte[0] === 'CommonTableExpr' ? (str(cte[1].ctename) ?? '') : '';
    });
    const recursive = withClause.recursive === true;
    ctes.forEach((x, i) => {
      const visible = new Set([...scope.ctes, ...(recursive ? names : names.slice(0, i))]);
      walkValue(x, c, { ctes: visible, executes: scope.executes });
    });
    inner = { ctes: new Set([...scope.ctes, ...names]), executes: scope.executes };
  }
  walkFields(body, c, inner, skip);
}

function callFunction(funcname: unknown, c: Collector): void {
  const name = nameList(funcname);
  if (name === undefined) return;
  c.functions.add(name);
  const base = name.slice(name.lastIndexOf('.') + 1);
  if (DYNAMIC_SQL_FUNCTIONS.has(base) || base.startsWith('dblink')) c.dynamicSql = true;
  if (WRITING_FUNCTIONS.has(base) || base.startsWith('lo_')) c.modifying = true;
}

// ---------------------------------------------------------------------------------------------
// Does a WHERE really filter? Decided on structure only, never on literal values (see the
// module comment): a predicate that may be true for every row does not filter.

function filters(where: unknown): boolean {
  if (where === undefined) return false;
  return !mayMatchAll(where);
}

function mayMatchAll(expr: unknown): boolean {
  if (!dependsOnRow(expr)) return true;
  const u = unwrap(expr);
  if (!u) return false;
  const [type, b] = u;
  const args = Array.isArray(b.args) ? b.args : [];
  if (type === 'BoolExpr') {
    if (b.boolop === 'AND_EXPR') return args.every(mayMatchAll);
    if (b.boolop === 'OR_EXPR') return args.some(mayMatchAll) || hasNullTautology(args);
    return false; // NOT of a row-dependent predicate
  }
  if (type === 'A_Expr') {
    const op = nameList(b.name);
    const reflexive = (b.kind === 'AEXPR_OP' && (op === '=' || op === '>=' || op === '<=')) || b.kind === 'AEXPR_NOT_DISTINCT';
    return reflexive && sameExpr(b.lexpr, b.rexpr);
  }
  if (type === 'BooleanTest') {
    const t = str(b.booltesttype);
    return (t === 'IS_TRUE' || t === 'IS_NOT_FALSE') && mayMatchAll(b.arg);
  }
  return false;
}

/** `x IS NULL OR x IS NOT NULL`. */
function hasNullTautology(args: unknown[]): boolean {
  const tests = args.map(unwrap).filter((u): u is [string, Obj] => u !== undefined && u[0] === 'NullTest');
  return tests.some(([, a]) => tests.some(([, b]) => a.nulltesttype !== b.nulltesttype && sameExpr(a.arg, b.arg)));
}

/** Whether an expression can differ from row to row: it names a column, or is WHERE CURRENT OF. */
function dependsOnRow(v: unknown): boolean {
  if (Array.isArray(v)) return v.some(dependsOnRow);
  if (!isObj(v)) return false;
  if ('ColumnRef' in v || 'CurrentOfExpr' in v) return true;
  return Object.values(v).some(dependsOnRow);
}

/**
 * Structural equality that ignores positions and every literal value (constants, numbers), so
 * that `id + 1 = id + 2` counts as `x = x` (fail closed) and literals never decide.
 */
function sameExpr(a: unknown, b: unknown): boolean {
  return a !== undefined && JSON.stringify(a, blankLiterals) === JSON.stringify(b, blankLiterals);
}

/** Nodes that carry a literal's value (names are String nodes and stay). */
const LITERAL_NODES = new Set(['A_Const', 'Integer', 'Float', 'Boolean', 'BitString']);

function blankLiterals(key: string, value: unknown): unknown {
  if (key === 'location') return undefined;
  if (typeof value === 'number') return 0;
  if (LITERAL_NODES.has(key)) return 'literal';
  return value;
}
