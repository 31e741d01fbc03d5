/**
 * Gateway credentials: the short-lived secrets native clients send as their password. A
 * credential is 32 random bytes behind the `dbr_` prefix (so secret scanners recognize a leaked
 * one); the store keeps only its SHA-256 (for cleartext logins) and a SCRAM verifier (for
 * SCRAM logins), never the credential itself.
 */

import { createHash, randomBytes } from 'node:crypto';
import { verifiedGrant, verifiedPrincipal, type AccessGrant, type Clock, type Plan, type PrincipalKind } from '../core/index.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import type { GrantRecord, Store } from '../store/index.ts';
import { deterministicSalt, SCRAM_ITERATIONS, scramVerifier, type ScramVerifier } from './scram.ts';

export const CREDENTIAL_PREFIX = 'dbr_';

/** The longest a credential may live. Short is the point; a year is the outer bound. */
export const MAX_CREDENTIAL_TTL_MS = 366 * 86_400_000;

export interface MintRequest {
  readonly principal: string;
  /**
   * Who the principal is, for policy: a person or an agent, and its groups. When absent, the
   * principal's account says (a name without an account is a user in no group).
   */
  readonly principalKind?: PrincipalKind | undefined;
  readonly groups?: readonly string[] | undefined;
  readonly connection: string;
  readonly ttlMs: number;
  readonly grantedBy: string;
  readonly reason?: string | undefined;
  /** A plan-scoped grant: what its sessions may run. */
  readonly plan?: Plan | undefined;
}

export interface MintedCredential {
  readonly credential: string;
  readonly grantId: string;
  readonly expiresAt: number;
}

/** What a protocol frontend may ask of identity while a client logs in. */
export interface CredentialCheck {
  /** Cleartext login: the grant the credential belongs to, if it is live and for this principal and connection. */
  checkPassword(principal: string, connection: string, password: string): Promise<AccessGrant | undefined>;
  /** SCRAM login: the salt to announce, and a verifier per live credential. */
  scramCandidates(principal: string, connection: string): Promise<ScramCandidates>;
}

export interface ScramCandidates {
  readonly salt: Buffer;
  readonly iterations: number;
  readonly verifiers: readonly ScramVerifier[];
  /** The grant behind `verifiers[index]`. */
  grant(index: number): AccessGrant;
}

/** A credential that must not be minted (for a disabled account). */
export class MintRefused extends Error {
  override name = 'MintRefused';
}

const tokenHash = (credential: string): string => createHash('sha256').update(credential).digest('hex');

export interface RevokeRequest {
  /** Who revokes: a principal name or `local-admin`. */
  readonly by: string;
  readonly reason?: string | undefined;
}

export class Credentials implements CredentialCheck {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #audit: AuditLog;

  constructor(store: Store, clock: Clock, audit: AuditLog) {
    this.#store = store;
    this.#clock = clock;
    this.#audit = audit;
  }

  async mint(request: MintRequest): Promise<MintedCredential> {
    if (!(request.ttlMs > 0)) throw new RangeError('a credential needs a positive lifetime');
    if (request.ttlMs > MAX_CREDENTIAL_TTL_MS) throw new RangeError('a credential lives at most 366 days');
    const account = await this.#store.getAccount(request.principal);
    if (account?.disabledAt !== undefined) throw new MintRefused(`${request.principal} is disabled: no credential is minted for it`);
    const credential = CREDENTIAL_PREFIX + randomBytes(32).toString('base64url');
    const verifier = scramVerifier(credential, deterministicSalt(request.principal, request.connection));
    const now = this.#clock.now();
    const record = await this.#store.insertGrant({
      principal: request.principal,
      principalKind: request.principalKind ?? account?.kind ?? 'user',
      groups: request.groups ?? account?.groups ?? [],
      connection: request.connection,
      tokenHash: tokenHash(credential),
      scramSalt: verifier.salt.toString('base64'),
      scramIterations: verifier.iterations,
      scramStoredKey: verifier.storedKey.toString('base64'),
      scramServerKey: verifier.serverKey.toString('base64'),
      reason: request.reason,
      grantedBy: request.grantedBy,
      createdAt: now,
      expiresAt: now + request.ttlMs,
      plan: request.plan,
    });
    await this.#audit.append({
      actor: request.grantedBy,
      action: 'grant.issued',
      subject: record.id,
      outcome: 'success',
      details: {
        principal: request.principal,
        connection: request.connection,
        expiresAt: record.expiresAt,
        reason: request.reason ?? null,
        ...(request.plan && { plan: request.plan.id }),
      },
    });
    return { credential, grantId: record.id, expiresAt: record.expiresAt };
  }

  /**
   * Ends one grant: new logins with its credential fail at once, and running gateways end the
   * sessions that use it when they next look (within seconds). False when there was nothing
   * left to revoke (unknown, already revoked, or expired).
   */
  async revoke(grantId: string, request: RevokeRequest): Promise<boolean> {
    const now = this.#clock.now();
    const grant = await this.#store.getGrant(grantId);
    if (!grant || grant.revokedAt !== undefined || grant.expiresAt <= now) return false;
    const revoked = await this.#store.revokeGrant(grantId, now, request);
    if (revoked) await this.#revoked(grant, request);
    return revoked;
  }

  /** Ends every live grant of a principal; returns their ids. */
  async revokePrincipal(principal: string, request: RevokeRequest): Promise<string[]> {
    const ids = await this.#store.revokeGrantsOf(principal, this.#clock.now(), request);
    for (const id of ids) {
      const grant = await this.#store.getGrant(id);
      if (grant) await this.#revoked(grant, request);
    }
    return ids;
  }

  #revoked(grant: GrantRecord, request: RevokeRequest): Promise<void> {
    return this.#audit.append({
      actor: request.by,
      action: 'grant.revoked',
      subject: grant.id,
      outcome: 'success',
      details: { principal: grant.principal, connection: grant.connection, reason: request.reason ?? null },
    });
  }

  async checkPassword(principal: string, connection: string, password: string): Promise<AccessGrant | undefined> {
    if (!password.startsWith(CREDENTIAL_PREFIX)) return undefined;
    const record = await this.#store.findGrantByTokenHash(tokenHash(password));
    if (!record || !this.#live(record) || record.principal !== principal || record.connection !== connection) return undefined;
    if (await this.#disabled(principal)) return undefined;
    return toGrant(record);
  }

  async scramCandidates(principal: string, connection: string): Promise<ScramCandidates> {
    const now = this.#clock.now();
    // A disabled account's grants are revoked when it is disabled; this covers any minted since.
    const records = (await this.#disabled(principal))
      ? []
      : (await this.#store.listLiveGrants(principal, connection, now)).filter((record) => this.#live(record));
    return {
      // The same salt for a principal that has no credential at all: the answer reveals nothing.
      salt: deterministicSalt(principal, connection),
      iterations: SCRAM_ITERATIONS,
      verifiers: records.map((record) => ({
        salt: Buffer.from(record.scramSalt, 'base64'),
        iterations: record.scramIterations,
        storedKey: Buffer.from(record.scramStoredKey, 'base64'),
        serverKey: Buffer.from(record.scramServerKey, 'base64'),
      })),
      grant: (index) => toGrant(records[index]!),
    };
  }

  /** Principals without an account (minted for by the local administrator) are never disabled. */
  async #disabled(principal: string): Promise<boolean> {
    return (await this.#store.getAccount(principal))?.disabledAt !== undefined;
  }

  #live(record: GrantRecord): boolean {
    return record.revokedAt === undefined && record.expiresAt > this.#clock.now();
  }
}

function toGrant(record: GrantRecord): AccessGrant {
  return verifiedGrant({
    id: record.id,
    principal: verifiedPrincipal(record.principal, record.principalKind),
    groups: Object.freeze([...record.groups]),
    connection: record.connection,
    expiresAt: record.expiresAt,
    plan: record.plan,
  });
}
