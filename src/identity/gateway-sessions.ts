/**
 * Gateway sessions: what a login yields, so that the CLI (and the web UI) need not send a
 * password or key with every request. A session is a pair of bearer tokens:
 *
 * - the session token `dbr_ses_…` (32 random bytes, base64url), short-lived (default 15 min),
 *   sent with every request;
 * - the refresh token `dbr_ref_…`, which buys a new pair until the session family's absolute
 *   end (default 12 h after login: refreshing does not push it back, so a stolen pair dies then).
 *
 * Guarantees:
 * - Only SHA-256 hashes of the tokens are stored.
 * - Refresh rotates: the old pair stops working at once. Presenting a refresh token that was
 *   already used means two parties hold it (the user and a thief); we cannot tell which is
 *   which, so the whole family is revoked (fail closed) and both must log in again. Two
 *   refreshes racing with one token count the same way: exactly one wins the store's update.
 * - Roles are read from the account at every verification, so a role change or a disable
 *   applies to existing sessions at once; groups are those of the login.
 * - Logout with either token ends the family.
 */

import { createHash, randomBytes } from 'node:crypto';
import type { Clock } from '../core/index.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import type { GatewaySessionRecord, Store } from '../store/index.ts';
import { AccountError, authenticatedAs, type Accounts, type AuthenticatedPrincipal } from './accounts.ts';

export const SESSION_TOKEN_PREFIX = 'dbr_ses_';
export const REFRESH_TOKEN_PREFIX = 'dbr_ref_';
export const DEFAULT_SESSION_TTL_MS = 15 * 60_000;
export const DEFAULT_REFRESH_TTL_MS = 12 * 3_600_000;

/** base64url of 32 bytes. */
const TOKEN_BODY = /^[A-Za-z0-9_-]{43}$/;

export interface IssuedSession {
  readonly token: string;
  readonly refreshToken: string;
  readonly expiresAt: number;
  readonly refreshExpiresAt: number;
}

export interface GatewaySessionsOptions {
  /** Default 15 minutes. */
  readonly ttlMs?: number;
  /** Absolute lifetime of a login's family of sessions; default 12 hours. */
  readonly refreshTtlMs?: number;
}

const sha256 = (token: string): string => createHash('sha256').update(token).digest('hex');

function wellFormed(token: unknown, prefix: string): token is string {
  return typeof token === 'string' && token.startsWith(prefix) && TOKEN_BODY.test(token.slice(prefix.length));
}

const newToken = (prefix: string): string => prefix + randomBytes(32).toString('base64url');

export class GatewaySessions {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #audit: AuditLog;
  readonly #accounts: Accounts;
  readonly #ttlMs: number;
  readonly #refreshTtlMs: number;

  constructor(store: Store, clock: Clock, audit: AuditLog, accounts: Accounts, options: GatewaySessionsOptions = {}) {
    this.#store = store;
    this.#clock = clock;
    this.#audit = audit;
    this.#accounts = accounts;
    this.#ttlMs = options.ttlMs ?? DEFAULT_SESSION_TTL_MS;
    this.#refreshTtlMs = options.refreshTtlMs ?? DEFAULT_REFRESH_TTL_MS;
    if (!(Number.isSafeInteger(this.#ttlMs) && this.#ttlMs > 0)) throw new RangeError('session ttlMs must be a positive whole number');
    if (!(Number.isSafeInteger(this.#refreshTtlMs) && this.#refreshTtlMs > 0)) {
      throw new RangeError('session refreshTtlMs must be a positive whole number');
    }
  }

  async issue(who: AuthenticatedPrincipal): Promise<IssuedSession> {
    // Fail closed: a session must not mint a longer-lived one; it refreshes instead.
    if (who.via === 'session') throw new AccountError('invalid-input', 'a gateway session cannot start another one; refresh it instead');
    const name = who.principal.name;
    const account = await this.#accounts.get(name);
    if (!account || account.kind !== who.principal.kind) throw new AccountError('unknown', `no account named ${name}`);
    if (account.disabledAt !== undefined) throw new AccountError('disabled', `account ${name} is disabled`);
    const now = this.#clock.now();
    const refreshExpiresAt = now + this.#refreshTtlMs;
    const token = newToken(SESSION_TOKEN_PREFIX);
    const refreshToken = newToken(REFRESH_TOKEN_PREFIX);
    const row = await this.#store.insertGatewaySession({
      account: name,
      tokenHash: sha256(token),
      refreshHash: sha256(refreshToken),
      createdAt: now,
      expiresAt: Math.min(now + this.#ttlMs, refreshExpiresAt),
      refreshExpiresAt,
      via: who.via,
      groups: who.groups,
    });
    await this.#audit.append({
      actor: name,
      action: 'session.issued',
      subject: row.family,
      outcome: 'success',
      details: { via: who.via, expiresAt: row.expiresAt, refreshExpiresAt },
    });
    return { token, refreshToken, expiresAt: row.expiresAt, refreshExpiresAt };
  }

  async verify(token: string): Promise<AuthenticatedPrincipal | undefined> {
    if (!wellFormed(token, SESSION_TOKEN_PREFIX)) return undefined;
    const row = await this.#store.findGatewaySessionByTokenHash(sha256(token));
    if (!row || row.revokedAt !== undefined || row.expiresAt <= this.#clock.now()) return undefined;
    const account = await this.#accounts.get(row.account);
    if (!account || account.disabledAt !== undefined) return undefined;
    return Object.freeze({ ...authenticatedAs(account, 'session', row.groups), loggedInVia: row.via });
  }

  async refresh(refreshToken: string): Promise<IssuedSession | undefined> {
    if (!wellFormed(refreshToken, REFRESH_TOKEN_PREFIX)) return this.#refreshFailed('unknown', 'malformed');
    const row = await this.#store.findGatewaySessionByRefreshHash(sha256(refreshToken));
    if (!row) return this.#refreshFailed('unknown', 'unknown');
    const now = this.#clock.now();
    if (row.revokedAt !== undefined) {
      if (row.revokeReason === 'rotated') return this.#reused(row, now);
      return this.#refreshFailed(row.account, 'revoked', row.family);
    }
    if (row.refreshExpiresAt <= now) return this.#refreshFailed(row.account, 'expired', row.family);
    const account = await this.#accounts.get(row.account);
    if (!account || account.disabledAt !== undefined) {
      await this.#store.revokeGatewaySessionFamily(row.family, now, 'account-disabled');
      return this.#refreshFailed(row.account, 'account-disabled', row.family);
    }
    const token = newToken(SESSION_TOKEN_PREFIX);
    const nextRefresh = newToken(REFRESH_TOKEN_PREFIX);
    const next = await this.#store.rotateGatewaySession(
      row.id,
      {
        account: row.account,
        tokenHash: sha256(token),
        refreshHash: sha256(nextRefresh),
        family: row.family,
        createdAt: now,
        expiresAt: Math.min(now + this.#ttlMs, row.refreshExpiresAt),
        refreshExpiresAt: row.refreshExpiresAt,
        via: row.via,
        groups: row.groups,
      },
      now,
    );
    // Someone else refreshed with this very token between our read and our write.
    if (!next) return this.#reused(row, now);
    await this.#store.updateAccount(row.account, { lastUsedAt: now });
    await this.#audit.append({
      actor: row.account,
      action: 'session.refreshed',
      subject: row.family,
      outcome: 'success',
      details: { expiresAt: next.expiresAt },
    });
    return { token, refreshToken: nextRefresh, expiresAt: next.expiresAt, refreshExpiresAt: next.refreshExpiresAt };
  }

  /** Logout, with the session token or the refresh token: ends the whole family. */
  async revoke(token: string): Promise<boolean> {
    let row: GatewaySessionRecord | undefined;
    if (wellFormed(token, SESSION_TOKEN_PREFIX)) row = await this.#store.findGatewaySessionByTokenHash(sha256(token));
    else if (wellFormed(token, REFRESH_TOKEN_PREFIX)) row = await this.#store.findGatewaySessionByRefreshHash(sha256(token));
    if (!row) return false;
    const n = await this.#store.revokeGatewaySessionFamily(row.family, this.#clock.now(), 'logout');
    if (n === 0) return false;
    await this.#audit.append({ actor: row.account, action: 'logout', subject: row.family, outcome: 'success' });
    return true;
  }

  /** Ends every live session of an account (for "log out everywhere"; `disable` does it too). */
  async revokeAllOf(name: string, by = 'gateway'): Promise<number> {
    const n = await this.#store.revokeGatewaySessionsOf(name, this.#clock.now(), 'revoked');
    if (n > 0)
      await this.#audit.append({ actor: by, action: 'session.revoked', subject: name, outcome: 'success', details: { sessions: n } });
    return n;
  }

  async #reused(row: GatewaySessionRecord, now: number): Promise<undefined> {
    const revoked = await this.#store.revokeGatewaySessionFamily(row.family, now, 'refresh-reuse');
    await this.#audit.append({
      actor: row.account,
      action: 'session.refresh-reused',
      subject: row.family,
      outcome: 'failure',
      details: { sessionsRevoked: revoked },
    });
    return undefined;
  }

  async #refreshFailed(account: string, reason: string, family?: string): Promise<undefined> {
    await this.#audit.append({
      actor: account,
      action: 'session.refreshed',
      subject: family ?? account,
      outcome: 'failure',
      details: { reason },
    });
    return undefined;
  }
}
