/**
 * The access review report: for every principal and every connection, what policy allows, which
 * grants were issued in a window, and what was actually used, with the rights that went unused
 * flagged, each with a plain suggestion; and the last reviewer's decision on the pair.
 *
 * What it guarantees:
 * - "What policy allows" is asked of the policies in force, the way the data path decides: each
 *   kind of statement (read, insert, update, delete, DDL, admin, code) is a representative
 *   statement (`PROBES`) decided statement by statement as `decideSql` does, for that principal,
 *   its kind and groups, on that connection; with guardrails off every kind is allowed.
 * - "What was used" is the recorded statements of the sessions started in the window, classified
 *   again now with the SQL classifier (the recording keeps text, not classifications), each
 *   distinct text once. Refused statements are counted apart and do not count as use.
 * - Pure: no I/O, no clock. The caller gathers the facts (review/access-review.ts).
 *
 * Known limits:
 * - The probes name a table of their own (`review_probe`): a policy about particular tables
 *   (`context.tables_read.contains("secrets")`) is not reflected in "what policy allows", and
 *   one about the time of day is decided for the time of the report.
 * - Seven Cedar decisions per row (about 0.2 ms each): a thousand rows take a few seconds.
 * - Recorded texts of masked sessions are masked: literals are starred, which changes no kind and
 *   no table, but a text the masking made unparsable counts as `unknown`.
 */

import { formatDuration } from '../core/duration.ts';
import type { AccessPolicy } from '../core/index.ts';
import type { PolicyEngine } from '../policy/cedar/engine.ts';
import { classify, type StatementClass } from '../policy/sql/pg-classifier.ts';
import type {
  AccountRecord,
  GrantActivity,
  LiveGrantActivity,
  ReviewDecisionRecord,
  SessionActivity,
  StatementActivity,
  TimeWindow,
} from '../store/index.ts';

/** The kinds of statement a review asks policy about. */
export type ProbeKind = 'read' | 'insert' | 'update' | 'delete' | 'ddl' | 'admin' | 'code';

/** A representative statement of each kind, decided for each principal and connection. */
export const PROBES: readonly { readonly kind: ProbeKind; readonly sql: string }[] = [
  { kind: 'read', sql: 'SELECT * FROM review_probe' },
  { kind: 'insert', sql: 'INSERT INTO review_probe (id) VALUES (1)' },
  { kind: 'update', sql: 'UPDATE review_probe SET id = 2 WHERE id = 1' },
  { kind: 'delete', sql: 'DELETE FROM review_probe WHERE id = 1' },
  { kind: 'ddl', sql: 'CREATE TABLE review_probe (id int)' },
  { kind: 'admin', sql: 'VACUUM review_probe' },
  { kind: 'code', sql: 'DO $$ BEGIN PERFORM 1; END $$' },
];

/** What a statement that ran was, by the Cedar action groups of schema.cedarschema. */
export type UsageCategory = 'read' | 'write' | 'ddl' | 'admin' | 'code' | 'session' | 'unknown';
export const USAGE_CATEGORIES: readonly UsageCategory[] = ['read', 'write', 'ddl', 'admin', 'code', 'session', 'unknown'];

/** Statement kinds (the classifier's) by action group; `report.test.ts` holds it to the schema. */
export const CATEGORY_OF_KIND: Readonly<Record<string, UsageCategory>> = {
  select: 'read',
  show: 'read',
  explain: 'read',
  insert: 'write',
  update: 'write',
  delete: 'write',
  merge: 'write',
  truncate: 'write',
  refresh: 'write',
  create: 'ddl',
  alter: 'ddl',
  drop: 'ddl',
  comment: 'ddl',
  'alter-system': 'admin',
  load: 'admin',
  grant: 'admin',
  revoke: 'admin',
  vacuum: 'admin',
  analyze: 'admin',
  cluster: 'admin',
  reindex: 'admin',
  checkpoint: 'admin',
  reassign: 'admin',
  'security-label': 'admin',
  do: 'code',
  call: 'code',
  set: 'session',
  reset: 'session',
  discard: 'session',
  transaction: 'session',
  prepare: 'session',
  execute: 'session',
  deallocate: 'session',
  declare: 'session',
  fetch: 'session',
  close: 'session',
  move: 'session',
  lock: 'session',
  listen: 'session',
  notify: 'session',
  unlisten: 'session',
};

export type ProbeOutcome = 'allow' | 'approval' | 'deny';

export type FlagCode = 'unused-access' | 'unused-grants' | 'unused-live-grant' | 'unused-writes' | 'unused-ddl' | 'regranted-after-revoke';

export interface ReviewFlag {
  readonly code: FlagCode;
  readonly message: string;
  readonly suggestion: string;
}

export interface ReviewDecisionView {
  readonly id: string;
  readonly decision: 'certified' | 'revoked';
  readonly note: string;
  readonly by: string;
  readonly at: string;
  readonly grantsRevoked: string[];
}

export interface ReviewRow {
  readonly principal: string;
  readonly kind: 'user' | 'service-account';
  /** `none`: a principal seen only in grants (minted by the local administrator). */
  readonly account: 'active' | 'disabled' | 'none';
  readonly connection: string;
  readonly access: {
    /** How this principal gets access: `at-once` (asks, policy grants), `approval` (asks, an approver decides), `grant-only` (only the local administrator grants it), `none`. */
    readonly via: 'at-once' | 'approval' | 'grant-only' | 'none';
    readonly why: string;
    /** The longest grant a request gets (the connection's, or the service account's if shorter). */
    readonly maxDuration: string | null;
    readonly approvers: string | null;
  };
  /** What the policies in force decide for each kind of statement (empty for a connection that is not configured). */
  readonly statements: { kind: ProbeKind; sql: string; outcome: ProbeOutcome; policy: string | null }[];
  readonly grants: {
    /** Issued in the window. */
    readonly issued: number;
    /** Of those, never used by a session. */
    readonly unused: number;
    readonly last: string | null;
    readonly grantedBy: string[];
    /** Live now, whenever issued. */
    readonly live: number;
    readonly liveUnused: string[];
    readonly liveIds: string[];
  };
  readonly usage: {
    readonly sessions: number;
    readonly liveSessions: number;
    readonly lastSession: string | null;
    /** Statements that ran (not refused), by category and by kind. */
    readonly statements: number;
    readonly byCategory: Record<UsageCategory, number>;
    readonly byKind: Record<string, number>;
    /** Statements refused by policy. */
    readonly refused: number;
    readonly tablesRead: string[];
    readonly tablesWritten: string[];
  };
  readonly flags: ReviewFlag[];
  readonly decision: ReviewDecisionView | null;
}

export interface ReviewReport {
  readonly since: string;
  readonly until: string;
  readonly generatedAt: string;
  readonly policy: { readonly enabled: boolean; readonly version: string | null };
  /** True when the window held more distinct statements than the review reads: usage is a lower bound. */
  readonly truncated: boolean;
  readonly summary: { readonly rows: number; readonly flagged: number; readonly certified: number; readonly revoked: number };
  readonly rows: ReviewRow[];
}

/** A principal that is not an account, as its latest grant describes it. */
export interface GrantOnlyPrincipal {
  readonly name: string;
  readonly kind: 'user' | 'service-account';
  readonly groups: readonly string[];
}

export interface ReviewFacts {
  readonly window: TimeWindow;
  readonly now: number;
  readonly connections: readonly { readonly name: string; readonly access: AccessPolicy }[];
  readonly accounts: readonly AccountRecord[];
  readonly grantOnly: readonly GrantOnlyPrincipal[];
  readonly grants: readonly GrantActivity[];
  readonly liveGrants: readonly LiveGrantActivity[];
  readonly sessions: readonly SessionActivity[];
  readonly statements: readonly StatementActivity[];
  readonly truncated: boolean;
  readonly decisions: readonly ReviewDecisionRecord[];
  /** The policies in force; undefined when guardrails are off. */
  readonly engine: PolicyEngine | undefined;
}

export interface ReviewFilter {
  readonly principal?: string | undefined;
  readonly connection?: string | undefined;
  /** Only the rows with a flag. */
  readonly unused?: boolean | undefined;
}

const iso = (ms: number): string => new Date(ms).toISOString();
const pairKey = (principal: string, connection: string): string => `${principal}\0${connection}`;

/** The principals the facts name that have no account: theirs to describe (from their latest grant). */
export function principalsWithoutAccount(
  facts: Pick<ReviewFacts, 'accounts' | 'grants' | 'liveGrants' | 'sessions' | 'decisions'>,
): string[] {
  const known = new Set(facts.accounts.map((a) => a.name));
  const seen = [
    ...facts.grants.map((g) => g.principal),
    ...facts.liveGrants.map((g) => g.grant.principal),
    ...facts.sessions.map((s) => s.principal),
    ...facts.decisions.map((d) => d.principal),
  ];
  return [...new Set(seen)].filter((name) => !known.has(name)).sort();
}

interface Usage {
  statements: number;
  byCategory: Record<UsageCategory, number>;
  byKind: Record<string, number>;
  refused: number;
  tablesRead: Set<string>;
  tablesWritten: Set<string>;
}

/** What a statement that holds another runs: PREPARE x, DECLARE c CURSOR FOR x, EXPLAIN ANALYZE x run x. */
function effective(statement: StatementClass): StatementClass {
  let s = statement;
  while (s.inner && (s.kind === 'prepare' || s.kind === 'declare' || (s.kind === 'explain' && s.explainAnalyze === true))) s = s.inner;
  return s;
}

/** The category of a classified statement, as Cedar groups its action. */
export function categoryOf(statement: StatementClass): UsageCategory {
  const s = effective(statement);
  if (s.kind === 'copy') return s.copy?.direction === 'to' ? 'read' : 'write';
  return CATEGORY_OF_KIND[s.kind] ?? 'unknown';
}

function emptyUsage(): Usage {
  return {
    statements: 0,
    byCategory: Object.fromEntries(USAGE_CATEGORIES.map((c) => [c, 0])) as Record<UsageCategory, number>,
    byKind: {},
    refused: 0,
    tablesRead: new Set(),
    tablesWritten: new Set(),
  };
}

/** Classifies each distinct recorded text once and adds it up per principal and connection. */
function usageByPair(statements: readonly StatementActivity[]): Map<string, Usage> {
  const usage = new Map<string, Usage>();
  const classified = new Map<string, readonly StatementClass[]>();
  for (const s of statements) {
    const key = pairKey(s.principal, s.connection);
    let u = usage.get(key);
    if (!u) usage.set(key, (u = emptyUsage()));
    if (s.outcome === 'denied') {
      u.refused += s.count;
      continue;
    }
    let classes = classified.get(s.text);
    if (!classes) classified.set(s.text, (classes = classify(s.text).statements));
    for (const c of classes) {
      const category = categoryOf(c);
      const kind = effective(c).kind;
      u.statements += s.count;
      u.byCategory[category] += s.count;
      u.byKind[kind] = (u.byKind[kind] ?? 0) + s.count;
      for (const t of c.tablesRead) u.tablesRead.add(t);
      for (const t of c.tablesWritten) u.tablesWritten.add(t);
    }
  }
  return usage;
}

/** The probes classified, once: a report asks about them for every row. */
let classifiedProbes:
  readonly { readonly kind: ProbeKind; readonly sql: string; readonly statements: readonly StatementClass[] }[] | undefined;

/**
 * What the policies decide for each probe, for this principal on this connection: each statement
 * of the probe decided as `decideSql` (policy/guard.ts) decides it, the first that is not allowed
 * giving the outcome; classified once rather than per row.
 */
export function probeStatements(
  engine: PolicyEngine | undefined,
  principal: { name: string; kind: 'user' | 'service-account'; groups: readonly string[] },
  connection: string,
  now: number,
): ReviewRow['statements'] {
  classifiedProbes ??= PROBES.map((probe) => ({ ...probe, statements: classify(probe.sql).statements }));
  return classifiedProbes.map((probe) => {
    if (!engine) return { kind: probe.kind, sql: probe.sql, outcome: 'allow' as const, policy: null };
    const asker = {
      principal: { name: principal.name, kind: principal.kind, groups: principal.groups },
      connection: { name: connection, type: 'postgres' as const },
      now,
    };
    for (const statement of probe.statements) {
      const decided = engine.decide({ ...asker, statement, statementCount: probe.statements.length });
      if (decided.outcome !== 'allow') return { kind: probe.kind, sql: probe.sql, outcome: decided.outcome, policy: decided.policy };
    }
    return { kind: probe.kind, sql: probe.sql, outcome: 'allow' as const, policy: null };
  });
}

/** Builds the report from the gathered facts. */
export function buildReport(facts: ReviewFacts, filter: ReviewFilter = {}): ReviewReport {
  const { window, now } = facts;
  const since = iso(window.since);
  const span = formatDuration(window.until - window.since);
  const configured = new Map(facts.connections.map((c) => [c.name, c]));
  const usage = usageByPair(facts.statements);

  const grants = new Map<string, GrantActivity[]>();
  for (const g of facts.grants)
    grants.set(pairKey(g.principal, g.connection), [...(grants.get(pairKey(g.principal, g.connection)) ?? []), g]);
  const live = new Map<string, LiveGrantActivity[]>();
  for (const l of facts.liveGrants) {
    const key = pairKey(l.grant.principal, l.grant.connection);
    live.set(key, [...(live.get(key) ?? []), l]);
  }
  const sessions = new Map(facts.sessions.map((s) => [pairKey(s.principal, s.connection), s]));
  const decisions = new Map(facts.decisions.map((d) => [pairKey(d.principal, d.connection), d]));

  // Every principal: the accounts, and those seen only in grants; every connection: the
  // configured ones, and any that activity names (a connection removed from the config).
  const principals: GrantOnlyPrincipal[] = [
    ...facts.accounts.map((a) => ({ name: a.name, kind: a.kind, groups: a.groups })),
    ...facts.grantOnly,
  ].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const accounts = new Map(facts.accounts.map((a) => [a.name, a]));
  const connectionNames = [
    ...new Set([
      ...facts.connections.map((c) => c.name),
      ...facts.grants.map((g) => g.connection),
      ...facts.liveGrants.map((g) => g.grant.connection),
      ...facts.sessions.map((s) => s.connection),
    ]),
  ].sort();

  const rows: ReviewRow[] = [];
  for (const principal of principals) {
    if (filter.principal !== undefined && principal.name !== filter.principal) continue;
    const account = accounts.get(principal.name);
    for (const connectionName of connectionNames) {
      if (filter.connection !== undefined && connectionName !== filter.connection) continue;
      const key = pairKey(principal.name, connectionName);
      const connection = configured.get(connectionName);
      const access = accessOf(account, connection, connectionName);
      const issued = grants.get(key) ?? [];
      const liveHere = live.get(key) ?? [];
      const session = sessions.get(key);
      const used = usage.get(key) ?? emptyUsage();
      const decision = decisions.get(key);
      const row: Omit<ReviewRow, 'flags'> = {
        principal: principal.name,
        kind: principal.kind,
        account: account === undefined ? 'none' : account.disabledAt !== undefined ? 'disabled' : 'active',
        connection: connectionName,
        access,
        statements: connection ? probeStatements(facts.engine, principal, connectionName, now) : [],
        grants: {
          issued: issued.reduce((n, g) => n + g.issued, 0),
          unused: issued.reduce((n, g) => n + g.unused, 0),
          last: issued.length === 0 ? null : iso(Math.max(...issued.map((g) => g.lastIssuedAt))),
          grantedBy: [...new Set(issued.map((g) => g.grantedBy))].sort(),
          live: liveHere.length,
          liveUnused: liveHere.filter((l) => l.sessions === 0).map((l) => l.grant.id),
          liveIds: liveHere.map((l) => l.grant.id),
        },
        usage: {
          sessions: session?.sessions ?? 0,
          liveSessions: session?.live ?? 0,
          lastSession: session ? iso(session.lastStartedAt) : null,
          statements: used.statements,
          byCategory: used.byCategory,
          byKind: used.byKind,
          refused: used.refused,
          tablesRead: [...used.tablesRead].sort(),
          tablesWritten: [...used.tablesWritten].sort(),
        },
        decision: decision
          ? {
              id: decision.id,
              decision: decision.decision,
              note: decision.note,
              by: decision.decidedBy,
              at: iso(decision.decidedAt),
              grantsRevoked: [...decision.grantsRevoked],
            }
          : null,
      };
      const flags = flagsOf(row, { window, span, liveGrants: liveHere, decision });
      if (filter.unused && flags.length === 0) continue;
      // A pair that nothing connects (no way in, no grant, no use, no decision) says nothing to a reviewer.
      if (access.via === 'none' && !connection && row.grants.issued === 0 && row.grants.live === 0 && row.usage.sessions === 0 && !decision)
        continue;
      rows.push({ ...row, flags });
    }
  }
  return {
    since,
    until: iso(window.until),
    generatedAt: iso(now),
    policy: { enabled: facts.engine !== undefined, version: facts.engine?.version ?? null },
    truncated: facts.truncated,
    summary: {
      rows: rows.length,
      flagged: rows.filter((r) => r.flags.length > 0).length,
      certified: rows.filter((r) => r.decision?.decision === 'certified').length,
      revoked: rows.filter((r) => r.decision?.decision === 'revoked').length,
    },
    rows,
  };
}

function accessOf(
  account: AccountRecord | undefined,
  connection: { name: string; access: AccessPolicy } | undefined,
  name: string,
): ReviewRow['access'] {
  const none = (why: string): ReviewRow['access'] => ({ via: 'none', why, maxDuration: null, approvers: null });
  if (!connection) return none(`${name} is not configured on this gateway`);
  if (!account) {
    return {
      via: 'grant-only',
      why: 'no account: only the local administrator grants it (drawbridge grant)',
      maxDuration: null,
      approvers: null,
    };
  }
  if (account.disabledAt !== undefined) return none(`${account.name} is disabled since ${iso(account.disabledAt)}`);
  if (account.connections !== undefined && !account.connections.includes(name))
    return none(`${name} is not among ${account.name}'s connections`);
  const max = Math.min(connection.access.maxDurationMs, account.maxGrantMs ?? Infinity);
  if (connection.access.approval === 'required') {
    const approvers = connection.access.approvers ?? 'approvers';
    return { via: 'approval', why: `asks; a member of ${approvers} approves`, maxDuration: formatDuration(max), approvers };
  }
  return { via: 'at-once', why: 'asks; granted at once by policy', maxDuration: formatDuration(max), approvers: null };
}

function flagsOf(
  row: Omit<ReviewRow, 'flags'>,
  context: { window: TimeWindow; span: string; liveGrants: readonly LiveGrantActivity[]; decision: ReviewDecisionRecord | undefined },
): ReviewFlag[] {
  const flags: ReviewFlag[] = [];
  const { principal, connection, grants, usage } = row;
  const revoke = `drawbridge access review revoke ${principal} ${connection} --note …`;
  // Only a way in that the principal has on its own: a grant-only principal gets nothing unless the local administrator mints it.
  if ((row.access.via === 'at-once' || row.access.via === 'approval') && grants.issued === 0 && grants.live === 0 && usage.sessions === 0) {
    flags.push({
      code: 'unused-access',
      message: `${principal} can get access to ${connection} (${row.access.why}) but had no grant and no session in the last ${context.span}`,
      suggestion:
        row.kind === 'service-account'
          ? `if ${principal} does not need ${connection}, take ${connection} off its connections and record the decision with ${revoke}`
          : `if ${principal} does not need ${connection}, record it with ${revoke}; certify if the access is needed now and then`,
    });
  }
  // A live grant never used is flagged on its own below, with what to do about it now.
  const inWindow = (at: number) => at >= context.window.since && at < context.window.until;
  const spent = grants.unused - context.liveGrants.filter((l) => l.sessions === 0 && inWindow(l.grant.createdAt)).length;
  if (spent > 0) {
    flags.push({
      code: 'unused-grants',
      message: `${spent} of ${grants.issued} grant${grants.issued === 1 ? '' : 's'} issued to ${principal} on ${connection} in the last ${context.span} ended without ever being used to connect`,
      suggestion: `ask for access when it is needed, and for less time`,
    });
  }
  if (grants.liveUnused.length > 0) {
    flags.push({
      code: 'unused-live-grant',
      message: `${grants.liveUnused.length === 1 ? 'a live grant' : `${grants.liveUnused.length} live grants`} of ${principal} on ${connection} ${grants.liveUnused.length === 1 ? 'has' : 'have'} never been used: ${grants.liveUnused.join(', ')}`,
      suggestion: `revoke ${grants.liveUnused.length === 1 ? 'it' : 'them'}: ${revoke}`,
    });
  }
  const allowed = (kinds: readonly ProbeKind[]) =>
    row.statements.filter((s) => kinds.includes(s.kind) && s.outcome !== 'deny').map((s) => s.kind);
  if (usage.statements > 0) {
    const writes = allowed(['insert', 'update', 'delete']);
    if (writes.length > 0 && usage.byCategory.write === 0) {
      flags.push({
        code: 'unused-writes',
        message: `${principal} may write on ${connection} (${writes.join(', ')}) but ran no write in the last ${context.span}${usage.byCategory.read > 0 ? ', only reads' : ''}`,
        suggestion: `a policy that forbids sql:write to ${principal} on ${connection} (or holds it for approval) takes away nothing ${principal} used`,
      });
    }
    if (allowed(['ddl']).length > 0 && usage.byCategory.ddl === 0) {
      flags.push({
        code: 'unused-ddl',
        message: `${principal} may run DDL on ${connection} but ran none in the last ${context.span}`,
        suggestion: `a policy that forbids sql:ddl to ${principal} on ${connection} takes away nothing ${principal} used`,
      });
    }
  }
  const decision = context.decision;
  if (decision?.decision === 'revoked') {
    const since = context.liveGrants.filter((l) => l.grant.createdAt > decision.decidedAt).map((l) => l.grant.id);
    const issuedSince = grants.last !== null && Date.parse(grants.last) > decision.decidedAt;
    if (since.length > 0 || issuedSince) {
      flags.push({
        code: 'regranted-after-revoke',
        message: `${decision.decidedBy} revoked ${principal}'s access to ${connection} on ${iso(decision.decidedAt)} (${decision.note}), and ${principal} was granted access again since`,
        suggestion: `certify the access if it is needed again, or revoke it again and stop the requests at their source (the account, its groups, the policy)`,
      });
    }
  }
  return flags;
}
