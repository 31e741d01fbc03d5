// The policy engine: decides one classified SQL statement against Cedar policy files.
//
// Guarantees:
// - Policies are parsed and validated against schema.cedarschema when loaded; a bad file is
//   refused with `file:line:column: problem`, so a broken policy never goes live.
// - Cedar semantics: nothing is allowed unless a permit matches, and any matching forbid
//   overrides every permit. A forbid annotated `@approval("group")` holds the statement for
//   approval instead of refusing it, when every forbid that matched is such a one.
// - decide() is synchronous and never throws. What it cannot evaluate (a policy that errors at
//   run time, a request Cedar refuses) is denied: fail closed.
// - Statements nested in others and run by them (EXPLAIN ANALYZE x, PREPARE p AS x, the code of
//   a DO block or a function) are decided too, and the strictest outcome wins.
//
// Who writes which part of the client's error: the engine returns `policy` (the @id name) and
// `reason` (the policy's @reason, or a fallback), never naming the connection; the caller renders
// `blocked by policy "<policy>": <reason> on <connection>`, e.g.
// `blocked by policy "no-destructive-ddl": DROP TABLE is not allowed on orders-db`.
//
// Known limits: cedar-wasm keeps every loaded policy set in wasm memory for the life of the
// process (it has no call to drop one), so each distinct reload costs its size once; reloads are
// rare. A decision costs 50-100 µs (values cross the wasm boundary one property at a time), so callers cache
// verdicts keyed by the engine's `version`.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';

/**
 * One statement's classification, as the SQL classifier produces it, typed loosely on purpose:
 * the engine must fail closed on any value (an unknown kind, a misspelt object type), not only
 * on those the classifier's types allow.
 */
export interface StatementInput {
  readonly kind: string;
  readonly objectType?: string;
  readonly tablesRead: readonly string[];
  readonly tablesWritten: readonly string[];
  readonly functions: readonly string[];
  readonly dangerousFunctions: readonly string[];
  readonly hasWhere?: boolean;
  readonly copy?: { readonly direction: 'to' | 'from'; readonly target: 'stdout' | 'stdin' | 'file' | 'program' };
  readonly explainAnalyze?: boolean;
  readonly inner?: StatementInput;
  /** What a DO block's or a function's code runs: each is decided too. */
  readonly body?: readonly StatementInput[];
  readonly dynamicSql?: boolean;
  readonly dataModifying: boolean;
}

export interface PolicyRequest {
  readonly principal: { readonly name: string; readonly kind: 'user' | 'service-account'; readonly groups: readonly string[] };
  readonly connection: { readonly name: string; readonly type: 'postgres' };
  /** One statement's class; the caller loops over multi-statement text. */
  readonly statement: StatementInput;
  readonly statementCount: number;
  /** Set when the session's grant carries a plan: whether the plan covers this statement. */
  readonly plan?: { readonly inPlan: boolean } | undefined;
  /** Epoch milliseconds; fills context.hour and context.weekday (UTC). */
  readonly now: number;
}

export type PolicyOutcome =
  | { readonly outcome: 'allow'; readonly policies: readonly string[] }
  | {
      readonly outcome: 'deny';
      readonly policy: string;
      readonly reason: string;
      /** Why evaluation failed, when it did: for the log, not for the client. */
      readonly detail?: string;
    }
  | { readonly outcome: 'approval'; readonly policy: string; readonly reason: string; readonly approvers: string };

/** Invalid policy text or a schema violation; the message starts with `file:line:column:` (or as much of it as is known). */
export class PolicyError extends Error {
  override readonly name = 'PolicyError';
  readonly file: string;
  readonly line: number | undefined;
  constructor(message: string, file: string, line?: number) {
    super(message);
    this.file = file;
    this.line = line;
  }
}

/** Statement kinds with an action of their own (`sql:<kind>`); the rest map as below. */
const OWN_ACTION = new Set([
  'select', 'show', 'explain',
  'insert', 'update', 'delete', 'merge', 'truncate', 'refresh',
  'comment',
  'alter-system', 'load', 'grant', 'revoke', 'vacuum', 'analyze', 'cluster', 'reindex', 'checkpoint', 'reassign', 'security-label',
  'do', 'call',
  'set', 'reset', 'discard', 'transaction', 'prepare', 'execute', 'deallocate', 'declare', 'fetch', 'close', 'move', 'lock',
  'listen', 'notify', 'unlisten',
  'unknown', 'fastpath',
]); // prettier-ignore
const DDL = new Set(['create', 'alter', 'drop']);

/** The Cedar action id for a statement kind. A kind the schema does not know is `sql:unknown`. */
export function actionFor(statement: StatementInput): string {
  const kind = normalized(statement.kind);
  if (DDL.has(kind)) return 'sql:ddl';
  // A COPY whose direction is missing is taken as FROM, the one that writes.
  if (kind === 'copy') return statement.copy?.direction === 'to' ? 'sql:copy-to' : 'sql:copy-from';
  return OWN_ACTION.has(kind) ? `sql:${kind}` : 'sql:unknown';
}

const NS = 'Drawbridge';
const SCHEMA_TEXT = asset('schema.cedarschema');
const DEFAULT_PACK_FILE = 'default-pack.cedar';
/** For requests about a session rather than a statement (the principal and connection are what count). */
const NO_STATEMENT: StatementInput = Object.freeze({
  kind: 'select',
  tablesRead: [],
  tablesWritten: [],
  functions: [],
  dangerousFunctions: [],
  dataModifying: false,
});
/** Nested statements deeper than this are refused rather than followed. */
const MAX_DEPTH = 8;

interface PolicyInfo {
  /** The @id annotation, else `policy<N>` by load order. */
  readonly name: string;
  readonly effect: 'permit' | 'forbid';
  readonly reason: string | undefined;
  readonly approval: string | undefined;
  /** Position in load order, for "the first determining forbid". */
  readonly order: number;
}

export class PolicyEngine {
  /** A hash of the schema and the policy files (names and texts), for verdict caches. */
  readonly version: string;
  readonly #policySetId: string;
  readonly #staticPolicies: Record<string, string>;
  readonly #policies: ReadonlyMap<string, PolicyInfo>;
  /** The context attributes some policy reads; undefined when one uses `context` as a whole. */
  readonly #contextAttributes: readonly string[] | undefined;

  private constructor(
    version: string,
    staticPolicies: Record<string, string>,
    policies: ReadonlyMap<string, PolicyInfo>,
    contextAttributes: readonly string[] | undefined,
  ) {
    this.version = version;
    this.#policySetId = `drawbridge-${version}`;
    this.#staticPolicies = staticPolicies;
    this.#policies = policies;
    this.#contextAttributes = contextAttributes;
    this.#preparse();
  }

  /** Parses and validates against the schema; throws PolicyError naming the file and the problem. */
  static load(sources: readonly { readonly file: string; readonly text: string }[]): PolicyEngine {
    const hash = createHash('sha256').update(SCHEMA_TEXT);
    const staticPolicies: Record<string, string> = {};
    const policies = new Map<string, PolicyInfo>();
    let contextAttributes: Set<string> | undefined = new Set<string>();
    for (const { file, text } of sources) {
      hash.update(`\0${file}\0${text}`);
      const validation = cedar.validate({ schema: SCHEMA_TEXT, policies: { staticPolicies: text } });
      if (validation.type === 'failure') throw policyError(file, text, validation.errors[0]);
      const invalid = validation.validationErrors[0];
      if (invalid !== undefined) throw policyError(file, text, invalid.error);
      const parts = cedar.policySetTextToParts(text);
      if (parts.type === 'failure') throw policyError(file, text, parts.errors[0]);
      if (parts.policy_templates.length > 0) throw new PolicyError(`${file}: policy templates are not supported`, file);
      // Cedar hands the policies back in an order of its own: find each one's place in the file,
      // for its line and for "the first forbid" (the order the file gives).
      const taken = new Set<number>();
      const located = parts.policies.map((policyText) => {
        let at = text.indexOf(policyText);
        while (at >= 0 && taken.has(at)) at = text.indexOf(policyText, at + 1);
        if (at >= 0) taken.add(at);
        return { policyText, at };
      });
      located.sort((a, b) => (a.at < 0 ? Infinity : a.at) - (b.at < 0 ? Infinity : b.at));
      for (const { policyText, at } of located) {
        const line = at >= 0 ? text.slice(0, at).split('\n').length : undefined;
        const where = line === undefined ? file : `${file}:${line}`;
        const json = cedar.policyToJson(policyText);
        if (json.type === 'failure') throw policyError(file, text, json.errors[0]);
        const order = policies.size;
        const id = `policy${order}`;
        const annotations = json.json.annotations ?? {};
        const info: PolicyInfo = {
          name: annotations['id'] || id,
          effect: json.json.effect,
          reason: annotations['reason'] || undefined,
          // `@approval` without a value parses as null: keep it, so that it is refused below.
          approval: 'approval' in annotations ? (annotations['approval'] ?? '') : undefined,
          order,
        };
        if (info.approval !== undefined && info.effect !== 'forbid')
          throw new PolicyError(`${where}: @approval only applies to forbid policies (a permit never holds anything)`, file, line);
        if (info.approval !== undefined && info.approval.trim() === '')
          throw new PolicyError(`${where}: @approval needs the approver group, e.g. @approval("dba")`, file, line);
        staticPolicies[id] = policyText;
        contextAttributes = contextReads(json.json, contextAttributes);
        policies.set(id, info);
      }
    }
    return new PolicyEngine(hash.digest('hex'), staticPolicies, policies, contextAttributes && [...contextAttributes]);
  }

  /** The shipped default pack (default-pack.cedar): guardrails on top of "everything classified is permitted". */
  static defaultPack(): PolicyEngine {
    return PolicyEngine.load([{ file: DEFAULT_PACK_FILE, text: PolicyEngine.defaultPackText() }]);
  }

  /** The default pack's Cedar text, as shipped. */
  static defaultPackText(): string {
    return asset(DEFAULT_PACK_FILE);
  }

  /**
   * Whether a policy permits `principal` unmasked results on `connection` (the action
   * `data:unmasked`); the permits that did, for the record. Never throws: an evaluation that
   * fails does not exempt (fail closed).
   */
  unmasked(principal: PolicyRequest['principal'], connection: PolicyRequest['connection']): { readonly exempt: boolean; readonly policies: readonly string[] } {
    try {
      const full = cedarRequest({ principal, connection, statement: NO_STATEMENT, statementCount: 0, now: 0 }, NO_STATEMENT);
      const action = { type: `${NS}::Action`, id: 'data:unmasked' };
      const answer = cedar.statefulIsAuthorized({
        principal: full.principal,
        action,
        resource: full.resource,
        context: full.context,
        entities: [...full.entities, { uid: action, attrs: {}, parents: [] }],
        preparsedPolicySetId: this.#policySetId,
      });
      if (answer.type === 'failure' || answer.response.diagnostics.errors.length > 0) return { exempt: false, policies: [] };
      const policies = answer.response.diagnostics.reason.map((id) => this.#policies.get(id)?.name ?? id);
      return { exempt: answer.response.decision === 'allow', policies };
    } catch {
      return { exempt: false, policies: [] };
    }
  }

  /** Synchronous, never throws: whatever cannot be evaluated is denied (fail closed). */
  decide(request: PolicyRequest): PolicyOutcome {
    try {
      return this.#decide(request, request.statement, 0);
    } catch (error) {
      // Fail closed: odd input that slipped past the request builder, or a wasm failure.
      return evaluationFailed('evaluation-error', String(error));
    }
  }

  #decide(request: PolicyRequest, statement: StatementInput, depth: number): PolicyOutcome {
    if (depth > MAX_DEPTH) return evaluationFailed('evaluation-error', 'statement nesting too deep');
    const inner = statement?.inner;
    // EXPLAIN without ANALYZE only plans its statement; everything else that holds a statement
    // (EXPLAIN ANALYZE, PREPARE, DECLARE CURSOR, ...) runs it, now or later. A DO block runs its
    // code now, a function when it is called: either way for this principal, so what the code
    // runs is decided as if sent on its own.
    const innerRuns = inner != null && (normalized(statement.kind) !== 'explain' || statement.explainAnalyze === true);
    const nested = [...(innerRuns ? [inner] : []), ...(Array.isArray(statement?.body) ? statement.body : [])];
    let result = this.#decideOne(request, statement);
    for (const part of nested) {
      if (result.outcome === 'deny') break;
      result = strictest(result, this.#decide(request, part, depth + 1));
    }
    return result;
  }

  #decideOne(request: PolicyRequest, statement: StatementInput): PolicyOutcome {
    const full = cedarRequest(request, statement);
    // Every value crosses into wasm property by property, so the call carries only what the
    // policies can read: the context attributes they name, and the action's ancestors inline
    // (instead of the schema, whose action entities Cedar would rebuild on every call). The
    // request fits the schema by construction (a test checks it with Cedar's request validation).
    const call = {
      principal: full.principal,
      action: full.action,
      resource: full.resource,
      context: this.#contextAttributes === undefined ? full.context : pick(full.context, this.#contextAttributes),
      entities: [...full.entities, { uid: full.action, attrs: {}, parents: ACTION_ANCESTORS.get(full.action.id) ?? [] }],
      preparsedPolicySetId: this.#policySetId,
    };
    let answer = cedar.statefulIsAuthorized(call);
    if (answer.type === 'failure') {
      // The preparsed set lives in this thread's wasm instance: parse it again and retry once.
      // If that fails too, the failure below denies.
      this.#preparse();
      answer = cedar.statefulIsAuthorized(call);
    }
    if (answer.type === 'failure') {
      return evaluationFailed('evaluation-error', answer.errors.map((e) => e.message).join('; '));
    }
    const { decision, diagnostics } = answer.response;
    const action = call.action.id;
    // Cedar skips a policy that errors at run time; for a forbid that would let the statement
    // through, so any evaluation error denies: fail closed.
    const errored = diagnostics.errors[0];
    if (errored !== undefined) {
      const name = this.#policies.get(errored.policyId)?.name ?? errored.policyId;
      return evaluationFailed(name, errored.error.message);
    }
    const determining = diagnostics.reason
      .map((id) => this.#policies.get(id))
      .filter((p): p is PolicyInfo => p !== undefined)
      .sort((a, b) => a.order - b.order);
    if (decision === 'allow') {
      return { outcome: 'allow', policies: [...new Set(determining.map((p) => p.name))] };
    }
    const forbids = determining.filter((p) => p.effect === 'forbid');
    const first = forbids[0];
    if (first === undefined) {
      return { outcome: 'deny', policy: 'default-deny', reason: `no policy permits ${action}` };
    }
    if (forbids.every((p) => p.approval !== undefined)) {
      const reason = first.reason ?? `${action} is not allowed`;
      return { outcome: 'approval', policy: first.name, reason, approvers: first.approval ?? '' };
    }
    // Name a forbid that refuses outright, not one that would only have held the statement.
    const refusing = forbids.find((p) => p.approval === undefined) ?? first;
    return { outcome: 'deny', policy: refusing.name, reason: refusing.reason ?? `${action} is not allowed` };
  }

  #preparse(): void {
    const answer = cedar.preparsePolicySet(this.#policySetId, { staticPolicies: this.#staticPolicies });
    if (answer.type === 'failure') throw new Error(`policy set failed to load: ${answer.errors.map((e) => e.message).join('; ')}`);
  }
}

/**
 * The Cedar request for one statement: principal, action, resource, entities and a context in
 * which every attribute is present. Exported for tests that check it against the schema.
 */
export function cedarRequest(request: PolicyRequest, statement: StatementInput): CedarRequest {
  const principal = {
    type: request.principal.kind === 'service-account' ? `${NS}::Agent` : `${NS}::User`,
    id: nonEmpty(request.principal.name, 'principal name'),
  };
  // Groups need no entities of their own: `principal in Group::"g"` reads the principal's parents.
  const groups = strings(request.principal.groups).map((id) => ({ type: `${NS}::Group`, id }));
  const resource = { type: `${NS}::Connection`, id: connectionName(request) };
  const time = new Date(request.now);
  if (Number.isNaN(time.getTime())) throw new Error('request.now is not a time');
  const copy = statement.copy;
  const context = {
    kind: normalized(statement.kind),
    tables_read: strings(statement.tablesRead),
    tables_written: strings(statement.tablesWritten),
    functions: strings(statement.functions),
    dangerous_functions: strings(statement.dangerousFunctions),
    has_where: statement.hasWhere === true,
    // A statement that holds another (PREPARE, EXPLAIN ANALYZE, COPY (query)) leaves this to the
    // one it holds, which is decided too and names the write in its refusal.
    unfiltered_write: statement.hasWhere === false && statement.inner == null,
    object_type: normalized(statement.objectType ?? ''),
    copy_target: normalized(copy?.target ?? ''),
    copy_direction: normalized(copy?.direction ?? ''),
    explain_analyze: statement.explainAnalyze === true,
    dynamic_sql: statement.dynamicSql === true,
    data_modifying: statement.dataModifying === true,
    statement_count: Number.isSafeInteger(request.statementCount) ? request.statementCount : 0,
    plan: request.plan !== undefined,
    in_plan: request.plan?.inPlan === true,
    hour: time.getUTCHours(),
    weekday: time.getUTCDay(),
  };
  return {
    principal,
    action: { type: `${NS}::Action`, id: actionFor(statement) },
    resource,
    context,
    entities: [
      { uid: principal, attrs: {}, parents: groups },
      { uid: resource, attrs: { type: String(request.connection.type) }, parents: [] },
    ],
  };
}

export interface CedarRequest {
  readonly principal: cedar.TypeAndId;
  readonly action: cedar.TypeAndId;
  readonly resource: cedar.TypeAndId;
  readonly context: cedar.Context;
  readonly entities: cedar.Entities;
}

/** Each action's ancestors in the schema's action groups, flattened (sql:select → sql:read, sql:any). */
const ACTION_ANCESTORS: ReadonlyMap<string, cedar.TypeAndId[]> = (() => {
  const json = cedar.schemaToJson(SCHEMA_TEXT);
  if (json.type !== 'success') throw new Error(`policy schema is invalid: ${json.errors.map((e) => e.message).join('; ')}`);
  const actions = json.json[NS]?.actions ?? {};
  const ancestors = (name: string, seen: Set<string>): Set<string> => {
    for (const parent of actions[name]?.memberOf ?? []) {
      if (!seen.has(parent.id)) ancestors(parent.id, seen.add(parent.id));
    }
    return seen;
  };
  return new Map(Object.keys(actions).map((name) => [name, [...ancestors(name, new Set())].map((id) => ({ type: `${NS}::Action`, id }))]));
})();

/** Every action the schema names (`sql:select`, `sql:read`, ...). */
export const ACTIONS: ReadonlySet<string> = new Set(ACTION_ANCESTORS.keys());

/** True when `action` is `group` or one of its members (`sql:update` is in `sql:write` and `sql:any`). */
export function actionIn(action: string, group: string): boolean {
  return action === group || (ACTION_ANCESTORS.get(action)?.some((a) => a.id === group) ?? false);
}

/**
 * Adds the context attributes a policy reads (`context.x`, `context has x`) to `into`; returns
 * undefined when it uses `context` any other way, in which case every attribute is sent.
 */
function contextReads(node: unknown, into: Set<string> | undefined): Set<string> | undefined {
  if (into === undefined || node === null || typeof node !== 'object') return into;
  const record = node as Record<string, unknown>;
  for (const op of ['.', 'has']) {
    const access = record[op] as { left?: { Var?: string }; attr?: string | string[] } | undefined;
    if (access?.left?.Var === 'context') {
      const attr = Array.isArray(access.attr) ? access.attr[0] : access.attr;
      if (typeof attr === 'string') return into.add(attr);
    }
  }
  if (record['Var'] === 'context') return undefined;
  for (const value of Object.values(record)) into = contextReads(value, into);
  return into;
}

function pick(context: cedar.Context, attributes: readonly string[]): cedar.Context {
  const picked: cedar.Context = {};
  for (const attribute of attributes) {
    const value = context[attribute];
    if (value !== undefined) picked[attribute] = value;
  }
  return picked;
}

const SEVERITY = { allow: 0, approval: 1, deny: 2 } as const;

/** Of an outer and an inner statement's outcomes, the stricter; two allows merge their policies. */
function strictest(a: PolicyOutcome, b: PolicyOutcome): PolicyOutcome {
  if (a.outcome === 'allow' && b.outcome === 'allow') return { outcome: 'allow', policies: [...new Set([...a.policies, ...b.policies])] };
  return SEVERITY[b.outcome] > SEVERITY[a.outcome] ? b : a;
}

function evaluationFailed(policy: string, detail: string): PolicyOutcome {
  return {
    outcome: 'deny',
    policy,
    reason: 'policy evaluation failed, so the statement is refused (fail closed)',
    detail,
  };
}

function connectionName(request: PolicyRequest): string {
  return nonEmpty(request.connection.name, 'connection name');
}

/** Identities must be real strings: a missing name is refused, not looked up as "undefined". */
function nonEmpty(value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '') throw new Error(`request has no ${what}`);
  return value;
}

function normalized(value: unknown): string {
  return typeof value === 'string' ? value.trim().toLowerCase() : 'unknown';
}

function strings(values: unknown): string[] {
  return Array.isArray(values) ? values.map(String) : [];
}

function policyError(file: string, text: string, error: cedar.DetailedError | undefined): PolicyError {
  if (error === undefined) return new PolicyError(`${file}: invalid policy`, file);
  const start = error.sourceLocations?.[0]?.start;
  const where = start === undefined ? undefined : position(text, start);
  const message = error.message.replace(/^for policy `policy\d+`, /, '');
  const help = error.help ? ` (${error.help})` : '';
  const label = error.sourceLocations?.[0]?.label ? `: ${error.sourceLocations[0].label}` : '';
  return new PolicyError(`${file}${where ? `:${where.line}:${where.column}` : ''}: ${message}${label}${help}`, file, where?.line);
}

/** Cedar reports byte offsets into the UTF-8 text; turn one into a 1-based line and column. */
function position(text: string, byteOffset: number): { line: number; column: number } {
  const before = Buffer.from(text, 'utf8').subarray(0, byteOffset).toString('utf8');
  const lines = before.split('\n');
  return { line: lines.length, column: (lines.at(-1)?.length ?? 0) + 1 };
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * A file shipped beside this module. `tsc` copies only .ts into dist/, so when running compiled
 * the file is read from the sources (src/ ships in the package).
 */
function asset(name: string): string {
  for (const url of [new URL(`./${name}`, import.meta.url), new URL(`../../../src/policy/cedar/${name}`, import.meta.url)]) {
    try {
      return readFileSync(url, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  throw new Error(`${name} is missing next to ${import.meta.url}`);
}
