/**
 * Just-in-time access: a principal asks for a connection, for a while, for a reason, and gets a
 * grant (a short-lived credential) at once, or, where the connection's policy asks for
 * approval, a pending request that an approver decides on. Nothing here outlives its grant:
 * the duration is capped by the connection's policy and, for a service account, by its own
 * limit.
 *
 * A request that needs approval is an approval of kind `access` (approvals/approvals.ts),
 * decided by a member of the connection's `access.approvers` group through the same routes,
 * CLI and webhooks as a held statement. Approved, the request is `granted`: its requester then
 * picks up the credential (`credential`), once, which issues the grant as the approver
 * (`grantedBy`), lasting until the approval time plus the duration asked for. The credential is
 * made at pickup because the store never holds one, only its hash: an approver's gateway cannot
 * keep it for the requester.
 */

import type { AuditLog } from '../audit/audit-log.ts';
import { formatDuration } from '../core/duration.ts';
import type { Clock, Connection } from '../core/index.ts';
import type { Store } from '../store/index.ts';
import { describePlan } from '../policy/plan.ts';
import type { PlanStep } from '../core/index.ts';
import type { Approvals } from '../approvals/approvals.ts';
import type { AuthenticatedPrincipal } from './accounts.ts';
import type { Credentials } from './credentials.ts';

export const DEFAULT_REQUEST_DURATION_MS = 15 * 60_000;
/** What an approved plan names as its grant when it was finished before its credential was picked up: no grant has this id. */
const FINISHED_UNUSED = 'none: the plan was finished first';
/** Who decides a connection's access requests when its config names no group. */
export const DEFAULT_APPROVERS = 'approvers';

export interface AccessRequestInput {
  readonly connection: string;
  /** Default: 15 minutes, or the policy's maximum if that is shorter. */
  readonly durationMs?: number | undefined;
  readonly reason: string;
  /**
   * The plan the grant is for, checked (policy/plan.ts `parsePlanSteps`): a human approves it
   * whatever the connection's approval setting, and the grant allows what it covers only.
   */
  readonly plan?: readonly PlanStep[] | undefined;
}

export type AccessOutcome =
  | {
      readonly status: 'granted';
      readonly grant: string;
      readonly credential: string;
      readonly expiresAt: number;
      readonly connection: string;
    }
  | {
      readonly status: 'pending';
      readonly request: string;
      readonly connection: string;
      readonly durationMs: number;
      /** The approval that decides it, and where (undefined on a gateway that takes no approvals). */
      readonly approval: number | undefined;
      readonly url: string | undefined;
    };

export type Granted = Extract<AccessOutcome, { status: 'granted' }>;

export type AccessErrorCode =
  'unknown-connection' | 'not-allowed' | 'too-long' | 'reason-required' | 'unknown-request' | 'not-approved' | 'already-issued';

export class AccessError extends Error {
  readonly code: AccessErrorCode;
  constructor(code: AccessErrorCode, message: string) {
    super(message);
    this.name = 'AccessError';
    this.code = code;
  }
}

export class AccessRequests {
  readonly #credentials: Credentials;
  readonly #store: Store;
  readonly #connection: (name: string) => Connection | undefined;
  readonly #clock: Clock;
  readonly #audit: AuditLog;
  readonly #approvals: Approvals | undefined;

  constructor(deps: {
    credentials: Credentials;
    store: Store;
    connection: (name: string) => Connection | undefined;
    clock: Clock;
    audit: AuditLog;
    /** Where requests that need approval are decided; without it they stay pending. */
    approvals?: Approvals | undefined;
  }) {
    this.#credentials = deps.credentials;
    this.#store = deps.store;
    this.#connection = deps.connection;
    this.#clock = deps.clock;
    this.#audit = deps.audit;
    this.#approvals = deps.approvals;
  }

  async request(who: AuthenticatedPrincipal, input: AccessRequestInput): Promise<AccessOutcome> {
    const name = who.principal.name;
    const connection = this.#connection(input.connection);
    // The same answer for a connection that does not exist and one this principal may not ask for.
    if (!connection || (who.connections !== undefined && !who.connections.includes(connection.name))) {
      await this.#refused(who, input, 'not-allowed');
      throw new AccessError(
        connection ? 'not-allowed' : 'unknown-connection',
        `no connection "${input.connection}" that ${name} may ask for`,
      );
    }
    const reason = input.reason.trim();
    if (reason === '') throw new AccessError('reason-required', 'a request needs a reason (a ticket, an incident, a task)');
    const max = Math.min(connection.access.maxDurationMs, who.maxGrantMs ?? Infinity);
    const durationMs = input.durationMs ?? Math.min(DEFAULT_REQUEST_DURATION_MS, max);
    if (!(durationMs > 0) || durationMs > max) {
      await this.#refused(who, input, 'too-long');
      throw new AccessError(
        'too-long',
        `${connection.name} grants at most ${formatDuration(max)}${who.maxGrantMs !== undefined && who.maxGrantMs < connection.access.maxDurationMs ? ` to ${name}` : ''}`,
      );
    }
    if (connection.access.approval === 'required' || input.plan !== undefined) {
      const request = await this.#store.insertAccessRequest({
        principal: name,
        connection: connection.name,
        durationMs,
        reason,
        requestedAt: this.#clock.now(),
        plan: input.plan,
      });
      const plan = input.plan && describePlan(input.plan);
      await this.#audit.append({
        actor: name,
        action: plan === undefined ? 'access.requested' : 'plan.submitted',
        subject: request.id,
        outcome: 'success',
        details: { connection: connection.name, durationMs, reason, status: 'pending', ...(input.plan && { plan: input.plan }) },
      });
      const approval = await this.#approvals?.requestAccess({
        requester: name,
        connection: connection.name,
        requestId: request.id,
        durationMs,
        reason,
        approvers: connection.access.approvers ?? DEFAULT_APPROVERS,
        plan,
      });
      return {
        status: 'pending',
        request: request.id,
        connection: connection.name,
        durationMs,
        approval: approval?.id,
        url: approval && this.#approvals?.url(approval.id),
      };
    }
    const minted = await this.#credentials.mint({
      principal: name,
      principalKind: who.principal.kind,
      groups: who.groups,
      connection: connection.name,
      ttlMs: durationMs,
      grantedBy: 'policy',
      reason,
    });
    return {
      status: 'granted',
      grant: minted.grantId,
      credential: minted.credential,
      expiresAt: minted.expiresAt,
      connection: connection.name,
    };
  }

  /**
   * The credential of one's own approved request, once: issues the grant as the approver, until
   * the approval time plus the duration asked for. Refused for another's request (as if it did
   * not exist), one not approved (pending, denied, expired, or past its window), one whose
   * credential was picked up already, and one for longer than the service account's maximum or
   * on a connection it may no longer use (its limits changed since it asked).
   */
  async credential(who: AuthenticatedPrincipal, requestId: string): Promise<Granted> {
    const name = who.principal.name;
    const request = await this.#store.getAccessRequest(requestId);
    if (!request || request.principal !== name)
      throw new AccessError('unknown-request', `there is no access request ${requestId} of ${name}`);
    if (request.status !== 'granted') {
      const why =
        request.status === 'pending'
          ? 'it waits for an approver'
          : request.status === 'denied'
            ? `it was denied by ${request.decidedBy ?? 'an approver'}: ${request.decisionReason ?? 'no reason given'}`
            : 'nobody approved it in time';
      throw new AccessError('not-approved', `access request ${requestId} is ${request.status}: ${why}`);
    }
    if (request.grantId !== undefined) {
      throw new AccessError(
        'already-issued',
        `the credential of access request ${requestId} was picked up already (grant ${request.grantId}); ask again for a new one`,
      );
    }
    const connection = this.#connection(request.connection);
    if (!connection || (who.connections !== undefined && !who.connections.includes(connection.name))) {
      throw new AccessError('not-allowed', `no connection "${request.connection}" that ${name} may ask for`);
    }
    // The service account's limits may have been lowered since it asked: they hold at pickup too.
    if (who.maxGrantMs !== undefined && request.durationMs > who.maxGrantMs) {
      throw new AccessError(
        'too-long',
        `access request ${requestId} is for ${formatDuration(request.durationMs)}, and ${name} now gets at most ${formatDuration(who.maxGrantMs)}: ask again`,
      );
    }
    const expiresAt = (request.decidedAt ?? this.#clock.now()) + request.durationMs;
    const ttlMs = expiresAt - this.#clock.now();
    if (ttlMs <= 0) {
      throw new AccessError(
        'not-approved',
        `access request ${requestId} was granted until ${new Date(expiresAt).toISOString()}: that is over`,
      );
    }
    const minted = await this.#credentials.mint({
      principal: name,
      principalKind: who.principal.kind,
      groups: who.groups,
      connection: connection.name,
      ttlMs,
      grantedBy: request.decidedBy ?? 'approver',
      reason: request.reason,
      plan: request.plan && { id: request.id, steps: request.plan },
    });
    if (!(await this.#store.setAccessRequestGrant(request.id, minted.grantId))) {
      // Picked up twice at once: the other call's grant stands, this one is taken back.
      await this.#credentials.revoke(minted.grantId, { by: 'gateway', reason: `access request ${requestId} was picked up twice` });
      throw new AccessError('already-issued', `the credential of access request ${requestId} was picked up already`);
    }
    return {
      status: 'granted',
      grant: minted.grantId,
      credential: minted.credential,
      expiresAt: minted.expiresAt,
      connection: connection.name,
    };
  }

  /**
   * Marks one's own plan done: its grant is revoked (live sessions end within seconds), and the
   * plan is over. A plan still waiting for approval is withdrawn instead. Idempotent for a plan
   * already over.
   */
  async finishPlan(who: AuthenticatedPrincipal, planId: string): Promise<{ status: 'finished' | 'withdrawn' | 'over'; grant: string | undefined }> {
    const name = who.principal.name;
    const request = await this.#store.getAccessRequest(planId);
    if (!request || request.principal !== name || request.plan === undefined)
      throw new AccessError('unknown-request', `there is no plan ${planId} of ${name}`);
    if (request.status === 'pending') {
      if (request.approvalId !== undefined) await this.#approvals?.withdraw(request.approvalId, name, 'the plan was finished before it was approved');
      await this.#finished(name, request.id, { status: 'withdrawn' });
      return { status: 'withdrawn', grant: undefined };
    }
    if (request.status !== 'granted') return { status: 'over', grant: undefined };
    if (request.grantId === undefined) {
      // Approved but never picked up: from now on it cannot be.
      if (!(await this.#store.setAccessRequestGrant(request.id, FINISHED_UNUSED))) return this.finishPlan(who, planId);
    } else if (request.grantId === FINISHED_UNUSED) {
      return { status: 'over', grant: undefined };
    } else if (!(await this.#credentials.revoke(request.grantId, { by: name, reason: `plan ${planId} finished` }))) {
      return { status: 'over', grant: request.grantId };
    }
    await this.#finished(name, request.id, { status: 'finished', grant: request.grantId ?? null });
    return { status: 'finished', grant: request.grantId };
  }

  #finished(name: string, planId: string, details: Record<string, unknown>): Promise<void> {
    return this.#audit.append({ actor: name, action: 'plan.finished', subject: planId, outcome: 'success', details });
  }

  #refused(who: AuthenticatedPrincipal, input: AccessRequestInput, why: string): Promise<void> {
    return this.#audit.append({
      actor: who.principal.name,
      action: 'access.requested',
      subject: input.connection,
      outcome: 'failure',
      details: { why, durationMs: input.durationMs ?? null, reason: input.reason },
    });
  }
}
