/**
 * Just-in-time access: a principal asks for a connection, for a while, for a reason, and gets a
 * grant (a short-lived credential) at once, or, where the connection's policy asks for
 * approval, a pending request that an approver decides on. Nothing here outlives its grant:
 * the duration is capped by the connection's policy and, for a service account, by its own
 * limit.
 */

import type { AuditLog } from '../audit/audit-log.ts';
import { formatDuration } from '../core/duration.ts';
import type { Clock, Connection } from '../core/index.ts';
import type { Store } from '../store/index.ts';
import type { AuthenticatedPrincipal } from './accounts.ts';
import type { Credentials } from './credentials.ts';

export const DEFAULT_REQUEST_DURATION_MS = 15 * 60_000;

export interface AccessRequestInput {
  readonly connection: string;
  /** Default: 15 minutes, or the policy's maximum if that is shorter. */
  readonly durationMs?: number | undefined;
  readonly reason: string;
}

export type AccessOutcome =
  | {
      readonly status: 'granted';
      readonly grant: string;
      readonly credential: string;
      readonly expiresAt: number;
      readonly connection: string;
    }
  | { readonly status: 'pending'; readonly request: string; readonly connection: string; readonly durationMs: number };

export type AccessErrorCode = 'unknown-connection' | 'not-allowed' | 'too-long' | 'reason-required';

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

  constructor(deps: {
    credentials: Credentials;
    store: Store;
    connection: (name: string) => Connection | undefined;
    clock: Clock;
    audit: AuditLog;
  }) {
    this.#credentials = deps.credentials;
    this.#store = deps.store;
    this.#connection = deps.connection;
    this.#clock = deps.clock;
    this.#audit = deps.audit;
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
    if (connection.access.approval === 'required') {
      const request = await this.#store.insertAccessRequest({
        principal: name,
        connection: connection.name,
        durationMs,
        reason,
        requestedAt: this.#clock.now(),
      });
      await this.#audit.append({
        actor: name,
        action: 'access.requested',
        subject: request.id,
        outcome: 'success',
        details: { connection: connection.name, durationMs, reason, status: 'pending' },
      });
      return { status: 'pending', request: request.id, connection: connection.name, durationMs };
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
