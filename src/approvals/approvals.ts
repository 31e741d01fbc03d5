/**
 * Approvals: a statement that policy holds (`@approval("group")`) waits in its session while a
 * member of the group approves or denies it, from any channel (the API, the CLI, another gateway
 * on the same store). A request for access to a connection that needs approval
 * (`access.approval: required`) is decided the same way. Everything goes through the store, so
 * that a decision is taken once (`decideApproval` only moves a pending approval) and every
 * gateway sees it.
 *
 * What it guarantees:
 * - The held statement runs only once approved, exactly as held (the protocol forwards the bytes
 *   it kept), once: running it again is a new request.
 * - Nobody decides their own request; only members of the approver group decide (and hold the
 *   `approver` or `admin` role); a denial needs a reason. Every request and decision is an audit
 *   event (`approval.requested`, `.approved`, `.denied`, `.expired`, `.cancelled`).
 * - A request nobody decides expires after the timeout (default 10 minutes; access requests
 *   `accessTimeoutMs`, default 1 hour); one whose session ended first is cancelled. The gateway
 *   that holds a statement learns of decisions made elsewhere within `pollMs` (default 500 ms);
 *   pending requests past their time (an access request, or a statement of a gateway that was
 *   killed) are expired by whichever gateway looks first, every `sweepMs` (default 10 s).
 * - A held statement's request carries the blast-radius preview (`preview`, approvals/preview.ts)
 *   when one can be had; one that fails or takes too long never stops the request.
 * - Listeners (the live stream, the webhooks) are told of every request and decision made by
 *   this gateway, and of every expiry it records.
 *
 * Known limits: a held statement lives in its client connection, so a gateway that stops ends
 * it (its request is then cancelled, at the next start if the gateway was killed).
 */

import type { Logger } from 'pino';
import type { AuditLog } from '../audit/audit-log.ts';
import type { Clock } from '../core/index.ts';
import type { AuthenticatedPrincipal } from '../identity/accounts.ts';
import type { ApprovalQuery, ApprovalRecord, ApprovalStatus, NewApproval, Store } from '../store/index.ts';
import { approvalView, type ApprovalView, type Preview } from './view.ts';

export type Decision =
  | { readonly status: 'approved'; readonly by: string }
  | { readonly status: 'denied' | 'expired' | 'cancelled'; readonly by: string; readonly reason: string };

/** What the session gets back for a held statement: its number, and the decision to come. */
export interface Held {
  readonly approval: ApprovalRecord;
  /** Where a person decides it (the web UI). */
  readonly url: string;
  readonly decision: Promise<Decision>;
  /** The session ended while it was held: the request is cancelled. */
  cancel(why: string): void;
}

export interface HoldRequest {
  readonly requester: string;
  readonly connection: string;
  readonly sessionId: string;
  readonly statement: string;
  readonly params?: readonly (string | null)[] | undefined;
  readonly policy: string;
  readonly reason: string;
  readonly approvers: string;
  /**
   * The statement and parameters as people and records see them: masked like the session's
   * results when the session is masked (approvers see masked data only). Default: as they are.
   * The preview asks the target about the real ones.
   */
  readonly shown?: { readonly statement: string; readonly params?: readonly (string | null)[] | undefined } | undefined;
  /** What the target says the statement would change; default: what `preview` of the options says. */
  readonly preview?: Preview | undefined;
}

/** Why a decision was refused; the API answers each with its own code. */
export type ApprovalErrorCode = 'unknown-approval' | 'not-pending' | 'self-approval' | 'not-approver' | 'reason-required';

export class ApprovalError extends Error {
  readonly code: ApprovalErrorCode;
  constructor(code: ApprovalErrorCode, message: string) {
    super(message);
    this.name = 'ApprovalError';
    this.code = code;
  }
}

/** Told of every request and decision (webhooks, the live stream). A listener's failure is logged, never the caller's. */
export type ApprovalListener = (event: 'requested' | 'decided', approval: ApprovalRecord) => void;

/** A request for access that waits for an approver (identity/access.ts made the access request). */
export interface AccessApprovalRequest {
  readonly requester: string;
  readonly connection: string;
  readonly requestId: string;
  readonly durationMs: number;
  readonly reason: string;
  readonly approvers: string;
  /** A plan-scoped request: the plan as a person reads it (shown where a held statement's text is). */
  readonly plan?: string | undefined;
}

/** What the target says a held statement would change (approvals/preview.ts); undefined: no preview for it. */
export type PreviewFn = (request: {
  readonly connection: string;
  readonly statement: string;
  readonly params?: readonly (string | null)[] | undefined;
}) => Promise<Preview | undefined>;

export interface ApprovalsOptions {
  readonly store: Store;
  readonly audit: AuditLog;
  readonly clock: Clock;
  readonly log?: Logger | undefined;
  readonly timeoutMs: number;
  /** How long an access request waits for a decision; default 1 hour. */
  readonly accessTimeoutMs?: number;
  readonly pollMs?: number;
  /** How often pending requests past their time are looked for; default 10 s. */
  readonly sweepMs?: number;
  /** The web UI's address, for links: `${baseUrl()}/approvals/42` (known once the API listens). */
  readonly baseUrl: () => string;
  /** The blast-radius preview of a held statement; without it, requests carry none. */
  readonly preview?: PreviewFn | undefined;
}

export const DEFAULT_ACCESS_APPROVAL_TIMEOUT_MS = 3_600_000;

interface Waiter {
  readonly resolve: (decision: Decision) => void;
  readonly expiry: NodeJS.Timeout;
}

export class Approvals {
  readonly #store: Store;
  readonly #audit: AuditLog;
  readonly #clock: Clock;
  readonly #log: Logger | undefined;
  readonly #timeoutMs: number;
  readonly #pollMs: number;
  readonly #baseUrl: () => string;
  readonly #accessTimeoutMs: number;
  readonly #preview: PreviewFn | undefined;
  readonly #sweep: NodeJS.Timeout;
  /** Statements held in this gateway, by approval number. */
  readonly #waiting = new Map<number, Waiter>();
  readonly #listeners = new Map<ApprovalListener, (() => void) | undefined>();
  #poll: NodeJS.Timeout | undefined;

  constructor(options: ApprovalsOptions) {
    this.#store = options.store;
    this.#audit = options.audit;
    this.#clock = options.clock;
    this.#log = options.log;
    this.#timeoutMs = options.timeoutMs;
    this.#pollMs = options.pollMs ?? 500;
    this.#baseUrl = options.baseUrl;
    this.#accessTimeoutMs = options.accessTimeoutMs ?? DEFAULT_ACCESS_APPROVAL_TIMEOUT_MS;
    this.#preview = options.preview;
    this.#sweep = setInterval(() => void this.expireOverdue(), options.sweepMs ?? 10_000);
    this.#sweep.unref();
  }

  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  url(id: number): string {
    return `${this.#baseUrl().replace(/\/$/, '')}/approvals/${id}`;
  }

  /** The approval as every channel shows it. */
  view(approval: ApprovalRecord): ApprovalView {
    return approvalView(approval, this.url(approval.id));
  }

  /** How many listeners are subscribed (a stream whose client left is not one of them). */
  get listeners(): number {
    return this.#listeners.size;
  }

  /** Subscribes `listener` until the returned function is called; `ended` is called if the gateway stops first. */
  listen(listener: ApprovalListener, ended?: () => void): () => void {
    this.#listeners.set(listener, ended);
    return () => void this.#listeners.delete(listener);
  }

  /** Creates the request for a held statement and waits for its decision. */
  async hold(request: HoldRequest): Promise<Held> {
    const preview = request.preview ?? (await this.#previewOf(request));
    const now = this.#clock.now();
    const shown = request.shown?.statement ?? request.statement;
    const approval = await this.#open(
      {
        kind: 'statement',
        requester: request.requester,
        connection: request.connection,
        sessionId: request.sessionId,
        statement: shown,
        params: request.shown ? request.shown.params : request.params,
        policy: request.policy,
        reason: request.reason,
        approvers: request.approvers,
        preview,
        createdAt: now,
        expiresAt: now + this.#timeoutMs,
      },
      {
        session: request.sessionId,
        statement: shown,
        policy: request.policy,
        approvers: request.approvers,
        ...(preview === undefined ? {} : { preview }),
      },
    );
    const decision = new Promise<Decision>((resolve) => {
      const expiry = setTimeout(() => void this.#expire(approval.id), this.#timeoutMs);
      expiry.unref();
      this.#waiting.set(approval.id, { resolve, expiry });
    });
    this.#armPoll();
    return {
      approval,
      url: this.url(approval.id),
      decision,
      cancel: (why) => void this.#close(approval.id, 'cancelled', 'gateway', why),
    };
  }

  /**
   * Makes the approval that decides an access request (identity/access.ts). Its decision is the
   * request's: the store moves both at once (approved: `granted`, denied: `denied`, else `expired`).
   */
  async requestAccess(request: AccessApprovalRequest): Promise<ApprovalRecord> {
    const now = this.#clock.now();
    return this.#open(
      {
        kind: 'access',
        requester: request.requester,
        connection: request.connection,
        requestId: request.requestId,
        reason: request.reason,
        approvers: request.approvers,
        durationMs: request.durationMs,
        statement: request.plan === undefined ? undefined : `plan: ${request.plan}`,
        createdAt: now,
        expiresAt: now + this.#accessTimeoutMs,
      },
      {
        request: request.requestId,
        durationMs: request.durationMs,
        reason: request.reason,
        approvers: request.approvers,
        ...(request.plan !== undefined && { plan: request.plan }),
      },
    );
  }

  /** Stores a new request, puts it on record (`approval.requested`, with `details`) and tells the listeners. */
  async #open(fields: NewApproval, details: Readonly<Record<string, unknown>>): Promise<ApprovalRecord> {
    const approval = await this.#store.insertApproval(fields);
    await this.#audit.append({
      actor: fields.requester,
      action: 'approval.requested',
      subject: `approval:${approval.id}`,
      outcome: 'success',
      details: { kind: fields.kind, connection: fields.connection, ...details },
    });
    this.#tell('requested', approval);
    return approval;
  }

  /** The requester takes back a request that still waits (a plan finished before it was approved): it is cancelled. */
  async withdraw(id: number, by: string, why: string): Promise<boolean> {
    return (await this.#close(id, 'cancelled', by, why)) !== undefined;
  }

  /** Expires every pending request past its time; returns how many this call expired. */
  async expireOverdue(): Promise<number> {
    try {
      const now = this.#clock.now();
      let expired = 0;
      // Newest first, a page at a time: the overdue ones are the oldest.
      let beforeId: number | undefined;
      for (;;) {
        const page = await this.#store.listApprovals({ status: 'pending', beforeId, limit: 1000 });
        for (const approval of page) {
          if (approval.expiresAt > now) continue;
          if (await this.#close(approval.id, 'expired', 'gateway', 'nobody decided in time')) expired++;
        }
        if (page.length < 1000) return expired;
        beforeId = page.at(-1)!.id;
      }
    } catch (error) {
      this.#log?.warn({ err: error }, 'could not look for overdue approvals');
      return 0;
    }
  }

  async get(id: number): Promise<ApprovalRecord | undefined> {
    return this.#store.getApproval(id);
  }

  async list(q: ApprovalQuery): Promise<ApprovalRecord[]> {
    return this.#store.listApprovals(q);
  }

  /**
   * A person's decision. Refused (ApprovalError) for one's own request, for someone outside the
   * approver group, for a denial without a reason, and for a request no longer pending.
   */
  async decide(id: number, who: AuthenticatedPrincipal, decision: 'approve' | 'deny', reason?: string): Promise<ApprovalRecord> {
    const approval = await this.#store.getApproval(id);
    if (!approval) throw new ApprovalError('unknown-approval', `there is no approval #${id}`);
    const name = who.principal.name;
    if (approval.requester === name)
      throw new ApprovalError('self-approval', `approval #${id} is your own request: someone else decides it`);
    const mayDecide = (who.roles.includes('approver') || who.roles.includes('admin')) && who.groups.includes(approval.approvers);
    if (!mayDecide) {
      throw new ApprovalError(
        'not-approver',
        `approval #${id} is decided by members of ${approval.approvers} with the approver or admin role`,
      );
    }
    if (approval.status === 'pending' && approval.expiresAt <= this.#clock.now()) {
      // Its gateway is gone (it would have expired it): past its time, it is expired, not decided.
      await this.#close(id, 'expired', 'gateway', 'nobody decided in time');
      throw new ApprovalError('not-pending', `approval #${id} is expired: nobody decided it in time`);
    }
    const why = reason?.trim() || undefined;
    if (decision === 'deny' && why === undefined)
      throw new ApprovalError('reason-required', 'a denial needs a reason, which the requester is told');
    const closed = await this.#close(id, decision === 'approve' ? 'approved' : 'denied', name, why);
    if (!closed) {
      const now = await this.#store.getApproval(id);
      throw new ApprovalError('not-pending', `approval #${id} is ${now?.status ?? 'gone'}: it was decided already`);
    }
    return closed;
  }

  /** Stops polling; held statements are cancelled (their sessions end with the gateway). */
  async close(): Promise<void> {
    clearInterval(this.#sweep);
    clearInterval(this.#poll);
    this.#poll = undefined;
    await Promise.all([...this.#waiting.keys()].map((id) => this.#close(id, 'cancelled', 'gateway', 'the gateway stopped')));
    // The live streams end (an open stream would keep the API from closing).
    const ended = [...this.#listeners.values()];
    this.#listeners.clear();
    for (const end of ended) end?.();
  }

  /** Moves a pending approval to `status` (once, across gateways), puts it on record and wakes its statement. */
  async #close(
    id: number,
    status: Exclude<ApprovalStatus, 'pending'>,
    by: string,
    reason: string | undefined,
  ): Promise<ApprovalRecord | undefined> {
    const at = this.#clock.now();
    if (!(await this.#store.decideApproval(id, status, at, by, reason))) return undefined;
    await this.#audit.append({
      actor: by,
      action: `approval.${status}`,
      subject: `approval:${id}`,
      outcome: 'success',
      details: reason === undefined ? {} : { reason },
    });
    const approval = await this.#store.getApproval(id);
    if (approval) {
      this.#wake(approval);
      this.#tell('decided', approval);
    }
    return approval;
  }

  async #expire(id: number): Promise<void> {
    try {
      await this.#close(id, 'expired', 'gateway', `nobody decided within ${Math.round(this.#timeoutMs / 1000)} s`);
    } catch (error) {
      this.#log?.error({ err: error, approval: id }, 'could not expire an approval');
    }
  }

  #wake(approval: ApprovalRecord): void {
    const waiter = this.#waiting.get(approval.id);
    if (!waiter || approval.status === 'pending') return;
    this.#waiting.delete(approval.id);
    clearTimeout(waiter.expiry);
    const by = approval.decidedBy ?? 'gateway';
    waiter.resolve(
      approval.status === 'approved'
        ? { status: 'approved', by }
        : { status: approval.status, by, reason: approval.decisionReason ?? approval.status },
    );
    if (this.#waiting.size === 0) {
      clearInterval(this.#poll);
      this.#poll = undefined;
    }
  }

  /** Decisions taken elsewhere (the CLI on the store, another gateway) reach the statements held here. */
  #armPoll(): void {
    if (this.#poll) return;
    this.#poll = setInterval(() => void this.#check(), this.#pollMs);
    this.#poll.unref();
  }

  async #check(): Promise<void> {
    try {
      const decided = await this.#store.listApprovals({ ids: [...this.#waiting.keys()], limit: this.#waiting.size });
      for (const approval of decided) if (approval.status !== 'pending') this.#wake(approval);
    } catch (error) {
      this.#log?.warn({ err: error }, 'could not look for approval decisions');
    }
  }

  /** The preview of a held statement: never an error of the request (a failure is its `error`). */
  async #previewOf(request: HoldRequest): Promise<Preview | undefined> {
    if (!this.#preview) return undefined;
    try {
      return await this.#preview({ connection: request.connection, statement: request.statement, params: request.params });
    } catch (error) {
      this.#log?.warn({ err: error }, 'the blast-radius preview failed');
      return { error: (error as Error).message };
    }
  }

  #tell(event: 'requested' | 'decided', approval: ApprovalRecord): void {
    for (const listener of [...this.#listeners.keys()]) {
      try {
        listener(event, approval);
      } catch (error) {
        this.#log?.warn({ err: error }, 'an approval listener failed');
      }
    }
  }
}
