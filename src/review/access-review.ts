/**
 * Access reviews: the report of who can reach what and what they used (review/report.ts), read
 * from the store over a window, and a reviewer's decision on one principal's access to one
 * connection: certified (kept) or revoked (its live grants end now, and running gateways end
 * their sessions within seconds, as any revocation does: session/grant-watch.ts).
 *
 * Guarantees: every decision is stored (the report shows the last one on each pair) and is an
 * audit event, `review.certified` or `review.revoked` (actor the reviewer, subject the principal),
 * with each grant it ended as its own `grant.revoked`. A decision needs a note. Nobody certifies
 * their own access (a reviewer keeping their own rights is no review); revoking one's own is
 * allowed, it takes access away.
 *
 * Known limit: revoking ends what the principal holds, not what it may ask for again: access is
 * just in time, so a principal that may ask (the connection's access policy, a service account's
 * connections) can get a new grant; the report then flags it (`regranted-after-revoke`).
 * Stopping that is a change to the account, its groups or the policy.
 */

import type { AuditLog } from '../audit/audit-log.ts';
import { formatDuration } from '../core/duration.ts';
import type { AccessPolicy, Clock } from '../core/index.ts';
import type { Credentials } from '../identity/credentials.ts';
import type { PolicyEngine } from '../policy/cedar/engine.ts';
import { initClassifier } from '../policy/sql/pg-classifier.ts';
import type { ReviewDecisionKind, ReviewDecisionRecord, Store } from '../store/index.ts';
import { buildReport, principalsWithoutAccount, type GrantOnlyPrincipal, type ReviewFilter, type ReviewReport } from './report.ts';

/** The window of a report when none is given. */
export const DEFAULT_REVIEW_WINDOW_MS = 30 * 86_400_000;
/** The distinct statement texts a report reads at most; beyond, its usage is a lower bound (`truncated`). */
export const MAX_REVIEW_STATEMENTS = 50_000;
const MAX_NOTE = 2000;

export type ReviewErrorCode = 'note-required' | 'unknown-principal' | 'unknown-connection' | 'self-review' | 'invalid-window';

export class ReviewError extends Error {
  readonly code: ReviewErrorCode;
  constructor(code: ReviewErrorCode, message: string) {
    super(message);
    this.name = 'ReviewError';
    this.code = code;
  }
}

export interface ReviewQuery extends ReviewFilter {
  /** Default: `until` minus 30 days. */
  readonly since?: number | undefined;
  /** Default: now. */
  readonly until?: number | undefined;
}

export interface DecisionInput {
  readonly principal: string;
  readonly connection: string;
  readonly note: string;
}

export interface AccessReviewDeps {
  readonly store: Store;
  readonly credentials: Credentials;
  readonly audit: AuditLog;
  readonly clock: Clock;
  readonly connections: readonly { readonly name: string; readonly access: AccessPolicy }[];
  /** The policies in force now; undefined when guardrails are off. */
  readonly policy: () => PolicyEngine | undefined;
}

export class AccessReview {
  readonly #deps: AccessReviewDeps;

  constructor(deps: AccessReviewDeps) {
    this.#deps = deps;
  }

  async report(query: ReviewQuery = {}): Promise<ReviewReport> {
    const { store, clock } = this.#deps;
    const now = clock.now();
    const until = query.until ?? now;
    const since = query.since ?? until - DEFAULT_REVIEW_WINDOW_MS;
    if (!(since < until)) {
      throw new ReviewError('invalid-window', `the window must start before it ends (since ${iso(since)}, until ${iso(until)})`);
    }
    const window = { since, until };
    await initClassifier();
    const [accounts, grants, liveGrants, sessions, statements, decisions] = await Promise.all([
      store.listAccounts(),
      store.grantActivity(window),
      store.liveGrantActivity(now),
      store.sessionActivity(window),
      store.statementActivity(window, MAX_REVIEW_STATEMENTS + 1),
      store.latestReviewDecisions(),
    ]);
    const grantOnly: GrantOnlyPrincipal[] = [];
    for (const name of principalsWithoutAccount({ accounts, grants, liveGrants, sessions, decisions })) {
      if (query.principal !== undefined && name !== query.principal) continue;
      const [latest] = await store.listGrants({ principal: name, limit: 1 });
      grantOnly.push({ name, kind: latest?.principalKind ?? 'user', groups: latest?.groups ?? [] });
    }
    const report = buildReport(
      {
        window,
        now,
        connections: this.#deps.connections,
        accounts,
        grantOnly,
        grants,
        liveGrants,
        sessions,
        statements: statements.slice(0, MAX_REVIEW_STATEMENTS),
        truncated: statements.length > MAX_REVIEW_STATEMENTS,
        decisions,
        engine: this.#deps.policy(),
      },
      query,
    );
    // A misspelt connection must not read as "nobody has access to it".
    const connection = query.connection;
    if (connection !== undefined && report.rows.length === 0 && !this.#deps.connections.some((c) => c.name === connection)) {
      throw new ReviewError('unknown-connection', `no connection "${connection}" on this gateway`);
    }
    return report;
  }

  /** Keeps the principal's access to the connection, on record. */
  async certify(input: DecisionInput, by: string): Promise<ReviewDecisionRecord> {
    const checked = await this.#check(input);
    if (by === checked.principal) {
      throw new ReviewError('self-review', `${by} cannot certify their own access: another reviewer decides it`);
    }
    return this.#decide('certified', checked, by, []);
  }

  /** Ends the principal's live grants on the connection (their sessions end within seconds), on record. */
  async revoke(input: DecisionInput, by: string): Promise<ReviewDecisionRecord> {
    const checked = await this.#check(input);
    const { store, credentials, clock } = this.#deps;
    const revoked: string[] = [];
    for (const grant of await store.listLiveGrants(checked.principal, checked.connection, clock.now())) {
      if (await credentials.revoke(grant.id, { by, reason: `access review: ${checked.note}` })) revoked.push(grant.id);
    }
    return this.#decide('revoked', checked, by, revoked);
  }

  async #check(input: DecisionInput): Promise<DecisionInput> {
    const note = input.note.trim();
    if (note === '') throw new ReviewError('note-required', 'a decision needs a note: why the access is kept or taken away');
    if (note.length > MAX_NOTE) throw new ReviewError('note-required', `a note is at most ${MAX_NOTE} characters`);
    const { store } = this.#deps;
    const hasGrant = async (q: { principal: string; connection?: string }) => (await store.listGrants({ ...q, limit: 1 })).length > 0;
    const configured = this.#deps.connections.some((c) => c.name === input.connection);
    if (!(await store.getAccount(input.principal)) && !(await hasGrant({ principal: input.principal }))) {
      throw new ReviewError('unknown-principal', `no account and no grant named "${input.principal}"`);
    }
    // A connection since removed from the config can still hold grants to take away.
    if (!configured && !(await hasGrant(input))) {
      throw new ReviewError('unknown-connection', `no connection "${input.connection}" on this gateway`);
    }
    return { principal: input.principal, connection: input.connection, note };
  }

  async #decide(decision: ReviewDecisionKind, input: DecisionInput, by: string, grantsRevoked: string[]): Promise<ReviewDecisionRecord> {
    const { store, audit, clock } = this.#deps;
    const record = await store.insertReviewDecision({
      principal: input.principal,
      connection: input.connection,
      decision,
      note: input.note,
      decidedBy: by,
      decidedAt: clock.now(),
      grantsRevoked,
    });
    await audit.append({
      actor: by,
      action: decision === 'certified' ? 'review.certified' : 'review.revoked',
      subject: input.principal,
      outcome: 'success',
      details: { connection: input.connection, note: input.note, decision: record.id, grantsRevoked },
    });
    return record;
  }
}

/** A decision as the API and the CLI show it. */
export interface DecisionView {
  readonly id: string;
  readonly principal: string;
  readonly connection: string;
  readonly decision: ReviewDecisionKind;
  readonly note: string;
  readonly by: string;
  readonly at: string;
  readonly grantsRevoked: string[];
}

export function decisionView(d: ReviewDecisionRecord): DecisionView {
  return {
    id: d.id,
    principal: d.principal,
    connection: d.connection,
    decision: d.decision,
    note: d.note,
    by: d.decidedBy,
    at: new Date(d.decidedAt).toISOString(),
    grantsRevoked: [...d.grantsRevoked],
  };
}

const iso = (ms: number): string => (Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms));

/** The window as people say it: `30d`. */
export function windowLength(report: Pick<ReviewReport, 'since' | 'until'>): string {
  return formatDuration(Date.parse(report.until) - Date.parse(report.since));
}
