/**
 * Gateway accounts: local users (scrypt passwords, for the embedded mode), OIDC users (kept
 * so that they show in lists and can be disabled), and service accounts for agents, each with
 * gateway roles (admin, approver, auditor, user) and groups.
 *
 * Guarantees:
 * - Only this module, `gateway-sessions.ts` and the OIDC path mint an `AuthenticatedPrincipal`,
 *   and only after a check: a password, a service-account key, a verified token or a session.
 * - A password login that fails says nothing about why (unknown name, wrong password, disabled,
 *   no password): every path runs one scrypt verification, so timing does not tell either.
 *   The audit record says why, for the administrator.
 * - Service-account keys are `dbr_sak_` + 32 random bytes (base64url), stored as SHA-256 only;
 *   an account has at most one working key, and rotation ends the old one in the same
 *   transaction. A service account holds no role beyond `user`: its key can do nothing but ask
 *   for short-lived grants (within `maxGrantMs` and `connections` when set).
 * - A service account's limits may be changed at any time (`setLimits`); the change applies to
 *   the next request at once, and every live grant the new limits would not give (one lasting
 *   longer than the new maximum, or on a connection no longer allowed) is revoked in the same
 *   call, so that lowering a limit never leaves access beyond it.
 * - Disabling an account stops every way in (password, key, session, OIDC) and revokes its
 *   live grants and its gateway sessions. Enabling it again does not bring those back; its
 *   key (if any) works again.
 * - No secret (password, key, hash) ever goes into an audit event.
 *
 * Known limits: `lastUsedAt` is written at most once a minute per account for key and OIDC
 * authentications (which happen per request), so it is accurate to the minute. Rate limiting
 * password attempts is the caller's job. A grant being minted at the instant an account is
 * disabled may escape the revocation sweep; it still cannot be used to log in to the gateway.
 * Likewise a grant minted under the old limits at the instant they are lowered may escape.
 */

import { createHash, randomBytes } from 'node:crypto';
import { verifiedPrincipal, type Clock, type Principal } from '../core/index.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import { formatDuration } from '../core/duration.ts';
import { StoreConflictError, type AccountRecord, type GrantRecord, type Store } from '../store/index.ts';
import { MAX_CREDENTIAL_TTL_MS, type Credentials } from './credentials.ts';
import {
  checkPasswordPolicy,
  DEFAULT_SCRYPT,
  hashPassword,
  needsRehash,
  PasswordHashError,
  verifyPassword,
  type ScryptParameters,
} from './passwords.ts';

export type GatewayRole = 'admin' | 'approver' | 'auditor' | 'user';
export const GATEWAY_ROLES: readonly GatewayRole[] = Object.freeze(['admin', 'approver', 'auditor', 'user'] as const);

/** The same rule as a principal name: it becomes the native login name (PostgreSQL user). */
export const ACCOUNT_NAME = /^[a-z0-9][a-z0-9._@-]{0,62}$/i;
const GROUP_NAME = /^[^\u0000-\u001f\u007f]{1,256}$/u;
const MAX_GROUPS = 256;

export const SERVICE_ACCOUNT_KEY_PREFIX = 'dbr_sak_';
/** base64url of 32 bytes. */
const KEY_BODY = /^[A-Za-z0-9_-]{43}$/;

/** How often a key or OIDC authentication refreshes `lastUsedAt` (they happen per request). */
const LAST_USED_GRANULARITY_MS = 60_000;

export interface Account {
  readonly name: string;
  readonly kind: 'user' | 'service-account';
  readonly roles: readonly GatewayRole[];
  readonly groups: readonly string[];
  readonly createdAt: number;
  readonly disabledAt: number | undefined;
  /** Last successful authentication (password, key, session refresh, OIDC). */
  readonly lastUsedAt: number | undefined;
  /** Users only. */
  readonly hasPassword: boolean;
  /** Service accounts: the longest grant it may get, and the connections it may ask for (undefined = any). */
  readonly maxGrantMs: number | undefined;
  readonly connections: readonly string[] | undefined;
}

/** Proof that a caller authenticated: only this module and gateway-sessions.ts (and the OIDC path) create it. */
export interface AuthenticatedPrincipal {
  readonly principal: Principal;
  readonly roles: readonly GatewayRole[];
  readonly groups: readonly string[];
  readonly via: 'password' | 'service-account-key' | 'oidc' | 'session';
  /** For `via: 'session'`: how the session's login was made. */
  readonly loggedInVia?: string | undefined;
  /** Service accounts only. */
  readonly maxGrantMs?: number | undefined;
  readonly connections?: readonly string[] | undefined;
}

/** A change of a service account's limits: an absent field is left as it is, `null` removes the limit. */
export interface LimitChanges {
  readonly maxGrantMs?: number | null;
  /** The only connections it may ask for; an empty list means none. */
  readonly connections?: readonly string[] | null;
}

export interface ChangedLimits {
  readonly account: Account;
  /** The live grants that the new limits would not give, revoked. */
  readonly revoked: readonly string[];
}

export type AccountErrorCode = 'exists' | 'unknown' | 'disabled' | 'weak-password' | 'invalid-name' | 'wrong-kind' | 'invalid-input';

/** Every message is safe to show the administrator who caused it; none carries a secret. */
export class AccountError extends Error {
  readonly code: AccountErrorCode;
  constructor(code: AccountErrorCode, message: string) {
    super(message);
    this.name = 'AccountError';
    this.code = code;
  }
}

export interface AccountsOptions {
  /** scrypt parameters for new hashes (tests use small ones); default DEFAULT_SCRYPT. */
  readonly scrypt?: ScryptParameters;
}

export const keyHash = (key: string): string => createHash('sha256').update(key).digest('hex');

/** Roles as stored, reduced to the ones we know, in canonical order: an unknown string grants nothing. */
export function knownRoles(roles: readonly string[]): GatewayRole[] {
  return GATEWAY_ROLES.filter((role) => roles.includes(role));
}

export function toAccount(r: AccountRecord): Account {
  return Object.freeze({
    name: r.name,
    kind: r.kind,
    roles: Object.freeze(knownRoles(r.roles)),
    groups: Object.freeze([...r.groups]),
    createdAt: r.createdAt,
    disabledAt: r.disabledAt,
    lastUsedAt: r.lastUsedAt,
    hasPassword: r.passwordHash !== undefined,
    maxGrantMs: r.maxGrantMs,
    connections: r.connections === undefined ? undefined : Object.freeze([...r.connections]),
  });
}

/** The proof for an account that has just been checked; for this module and gateway-sessions.ts only. */
export function authenticatedAs(
  account: Pick<AccountRecord, 'name' | 'kind' | 'roles' | 'groups' | 'maxGrantMs' | 'connections'>,
  via: AuthenticatedPrincipal['via'],
  groups: readonly string[] = account.groups,
): AuthenticatedPrincipal {
  const base = {
    principal: verifiedPrincipal(account.name, account.kind),
    roles: Object.freeze(knownRoles(account.roles)),
    groups: Object.freeze([...groups]),
    via,
  };
  if (account.kind !== 'service-account') return Object.freeze(base);
  return Object.freeze({
    ...base,
    maxGrantMs: account.maxGrantMs,
    connections: account.connections === undefined ? undefined : Object.freeze([...account.connections]),
  });
}

function checkName(name: unknown): string {
  if (typeof name !== 'string' || !ACCOUNT_NAME.test(name)) {
    throw new AccountError(
      'invalid-name',
      'an account name is 1 to 63 letters, digits, ".", "_", "@" or "-", starting with a letter or digit',
    );
  }
  return name;
}

function checkRoles(roles: readonly string[]): GatewayRole[] {
  const unknown = roles.filter((r) => !(GATEWAY_ROLES as readonly string[]).includes(r));
  if (unknown.length > 0) {
    throw new AccountError('invalid-input', `unknown role ${JSON.stringify(unknown[0])}; roles are ${GATEWAY_ROLES.join(', ')}`);
  }
  return knownRoles(roles);
}

function checkServiceAccountRoles(roles: readonly GatewayRole[]): void {
  // The promise: a service-account key can do nothing but ask for short-lived grants.
  const extra = roles.filter((r) => r !== 'user');
  if (extra.length > 0) {
    throw new AccountError('wrong-kind', `a service account can hold only the user role, not ${extra.join(', ')}`);
  }
}

function checkMaxGrant(ms: number): number {
  if (!(Number.isSafeInteger(ms) && ms > 0 && ms <= MAX_CREDENTIAL_TTL_MS)) {
    throw new AccountError('invalid-input', 'maxGrantMs must be a whole number of milliseconds from 1 to 366 days');
  }
  return ms;
}

function checkConnections(list: readonly string[]): string[] {
  // Fail closed: an empty list means "no connection", not "any".
  const connections = [...new Set(list)];
  if (connections.some((c) => typeof c !== 'string' || !/^[a-z0-9][a-z0-9._-]{0,62}$/i.test(c))) {
    throw new AccountError('invalid-input', 'a connection name is 1 to 63 letters, digits, ".", "_" or "-"');
  }
  return connections;
}

/** Why a live grant is beyond a service account's limits, or undefined when it is within them. */
export function beyondLimits(
  grant: Pick<GrantRecord, 'connection' | 'createdAt' | 'expiresAt'>,
  limits: Pick<Account, 'name' | 'maxGrantMs' | 'connections'>,
): string | undefined {
  if (limits.connections !== undefined && !limits.connections.includes(grant.connection)) {
    return `${limits.name} may no longer use ${grant.connection}`;
  }
  if (limits.maxGrantMs !== undefined && grant.expiresAt - grant.createdAt > limits.maxGrantMs) {
    return `${limits.name} now gets grants of at most ${formatDuration(limits.maxGrantMs)}`;
  }
  return undefined;
}

function checkGroups(groups: readonly string[]): string[] {
  if (groups.length > MAX_GROUPS) throw new AccountError('invalid-input', `an account has at most ${MAX_GROUPS} groups`);
  for (const g of groups) {
    if (typeof g !== 'string' || !GROUP_NAME.test(g)) {
      throw new AccountError('invalid-input', 'a group name is 1 to 256 characters without control characters');
    }
  }
  return [...new Set(groups)];
}

export class Accounts {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #audit: AuditLog;
  readonly #credentials: Credentials;
  readonly #scrypt: ScryptParameters;
  #dummyHash: Promise<string> | undefined;

  constructor(store: Store, clock: Clock, audit: AuditLog, credentials: Credentials, options: AccountsOptions = {}) {
    this.#store = store;
    this.#clock = clock;
    this.#audit = audit;
    this.#credentials = credentials;
    this.#scrypt = options.scrypt ?? DEFAULT_SCRYPT;
  }

  async createUser(
    input: { name: string; password?: string; roles?: readonly GatewayRole[]; groups?: readonly string[] },
    by: string,
  ): Promise<Account> {
    const name = checkName(input.name);
    const roles = checkRoles(input.roles ?? ['user']);
    const groups = checkGroups(input.groups ?? []);
    const passwordHash = input.password === undefined ? undefined : await this.#hashNew(input.password);
    const record = await this.#insert({ name, kind: 'user', passwordHash, roles, groups, createdAt: this.#clock.now() });
    await this.#audit.append({
      actor: by,
      action: 'account.created',
      subject: name,
      outcome: 'success',
      details: { kind: 'user', roles, groups, hasPassword: passwordHash !== undefined },
    });
    return toAccount(record);
  }

  async setPassword(name: string, password: string, by: string): Promise<void> {
    const record = await this.#require(name);
    if (record.kind !== 'user') throw new AccountError('wrong-kind', `${name} is a service account: it has a key, not a password`);
    const passwordHash = await this.#hashNew(password);
    await this.#store.updateAccount(name, { passwordHash });
    await this.#audit.append({ actor: by, action: 'account.password-set', subject: name, outcome: 'success' });
  }

  async setRoles(name: string, roles: readonly GatewayRole[], by: string): Promise<Account> {
    const record = await this.#require(name);
    const next = checkRoles(roles);
    if (record.kind === 'service-account') checkServiceAccountRoles(next);
    const updated = await this.#store.updateAccount(name, { roles: next });
    if (!updated) throw new AccountError('unknown', `no account named ${name}`);
    await this.#audit.append({
      actor: by,
      action: 'account.roles-changed',
      subject: name,
      outcome: 'success',
      details: { from: knownRoles(record.roles), to: next },
    });
    return toAccount(updated);
  }

  async authenticatePassword(name: string, password: string): Promise<AuthenticatedPrincipal | undefined> {
    const record = typeof name === 'string' && ACCOUNT_NAME.test(name) ? await this.#store.getAccount(name) : undefined;
    const stored = record?.kind === 'user' ? record.passwordHash : undefined;
    let matches = false;
    let why: string;
    try {
      // Timing: one scrypt verification whatever the outcome, against a dummy hash when there is no real one.
      matches = await verifyPassword(String(password), stored ?? (await this.#dummy()));
      why = record === undefined ? 'unknown-account' : stored === undefined ? 'no-password' : 'wrong-password';
    } catch (error) {
      // Fail closed: a record we cannot verify (malformed, weakened) logs nobody in.
      if (!(error instanceof PasswordHashError)) throw error;
      matches = false;
      why = 'unusable-password-record';
    }
    if (record === undefined || stored === undefined || !matches) return this.#loginFailed(name, 'password', why);
    if (record.disabledAt !== undefined) return this.#loginFailed(name, 'password', 'disabled');

    const now = this.#clock.now();
    // An old hash is upgraded to today's parameters while we hold the password.
    const passwordHash = needsRehash(stored, this.#scrypt) ? await hashPassword(password, this.#scrypt) : undefined;
    await this.#store.updateAccount(name, { lastUsedAt: now, ...(passwordHash && { passwordHash }) });
    await this.#audit.append({ actor: name, action: 'login.succeeded', subject: name, outcome: 'success', details: { via: 'password' } });
    return authenticatedAs(record, 'password');
  }

  async createServiceAccount(
    input: { name: string; roles?: readonly GatewayRole[]; maxGrantMs?: number; connections?: readonly string[] },
    by: string,
  ): Promise<{ account: Account; key: string }> {
    const name = checkName(input.name);
    const roles = checkRoles(input.roles ?? ['user']);
    checkServiceAccountRoles(roles);
    const maxGrantMs = input.maxGrantMs === undefined ? undefined : checkMaxGrant(input.maxGrantMs);
    const connections = input.connections === undefined ? undefined : checkConnections(input.connections);
    const now = this.#clock.now();
    const record = await this.#insert({ name, kind: 'service-account', roles, groups: [], createdAt: now, maxGrantMs, connections });
    const key = await this.#newKey(name, now);
    await this.#audit.append({
      actor: by,
      action: 'account.created',
      subject: name,
      outcome: 'success',
      details: { kind: 'service-account', roles, maxGrantMs: maxGrantMs ?? null, connections: connections ?? null },
    });
    return { account: toAccount(record), key };
  }

  async rotateKey(name: string, by: string): Promise<string> {
    const record = await this.#require(name);
    if (record.kind !== 'service-account') throw new AccountError('wrong-kind', `${name} is a user: it has a password, not a key`);
    const key = await this.#newKey(name, this.#clock.now());
    await this.#audit.append({ actor: by, action: 'service-account.key-rotated', subject: name, outcome: 'success' });
    return key;
  }

  /**
   * Changes a service account's limits. New requests get the new limits at once; then every live
   * grant beyond them (longer than the new maximum, or on a connection no longer allowed) is
   * revoked, and its live sessions end within seconds. One `service-account.limits` audit event
   * with the limits before and after and the grants revoked (each also a `grant.revoked`).
   */
  async setLimits(name: string, changes: LimitChanges, by: string): Promise<ChangedLimits> {
    const record = await this.#require(name);
    if (record.kind !== 'service-account') throw new AccountError('wrong-kind', `${name} is a user: limits are for service accounts`);
    if (changes.maxGrantMs === undefined && changes.connections === undefined) {
      throw new AccountError('invalid-input', 'give a maximum grant duration, connections, or both');
    }
    const maxGrantMs =
      changes.maxGrantMs === undefined ? record.maxGrantMs : changes.maxGrantMs === null ? undefined : checkMaxGrant(changes.maxGrantMs);
    const connections =
      changes.connections === undefined
        ? record.connections
        : changes.connections === null
          ? undefined
          : checkConnections(changes.connections);
    // Order matters, as for a disable: first the limits of new requests, then the sweep of what is out.
    const updated = await this.#store.updateAccount(name, { maxGrantMs: maxGrantMs ?? null, connections: connections ?? null });
    if (!updated) throw new AccountError('unknown', `no account named ${name}`);
    const account = toAccount(updated);
    const revoked: string[] = [];
    for (const grant of await this.#liveGrants(name)) {
      const why = beyondLimits(grant, account);
      if (why !== undefined && (await this.#credentials.revoke(grant.id, { by, reason: `limits changed: ${why}` }))) revoked.push(grant.id);
    }
    await this.#audit.append({
      actor: by,
      action: 'service-account.limits',
      subject: name,
      outcome: 'success',
      details: {
        from: { maxGrantMs: record.maxGrantMs ?? null, connections: record.connections ?? null },
        to: { maxGrantMs: account.maxGrantMs ?? null, connections: account.connections ?? null },
        grantsRevoked: revoked,
      },
    });
    return { account, revoked };
  }

  async authenticateKey(key: string): Promise<AuthenticatedPrincipal | undefined> {
    if (
      typeof key !== 'string' ||
      !key.startsWith(SERVICE_ACCOUNT_KEY_PREFIX) ||
      !KEY_BODY.test(key.slice(SERVICE_ACCOUNT_KEY_PREFIX.length))
    ) {
      return this.#loginFailed('unknown', 'service-account-key', 'malformed-key');
    }
    const found = await this.#store.findServiceAccountKeyByHash(keyHash(key));
    if (!found) return this.#loginFailed('unknown', 'service-account-key', 'unknown-key');
    if (found.revokedAt !== undefined) return this.#loginFailed(found.account, 'service-account-key', 'rotated-key');
    const record = await this.#store.getAccount(found.account);
    if (!record || record.kind !== 'service-account') return this.#loginFailed(found.account, 'service-account-key', 'unknown-account');
    if (record.disabledAt !== undefined) return this.#loginFailed(found.account, 'service-account-key', 'disabled');
    // A key is presented on every request: its use is on record at most once a minute, with
    // `lastUsedAt`; every refusal is on record each time.
    if (await this.#touch(record)) {
      await this.#audit.append({
        actor: record.name,
        action: 'login.succeeded',
        subject: record.name,
        outcome: 'success',
        details: { via: 'service-account-key', keyId: found.id },
      });
    }
    return authenticatedAs(record, 'service-account-key');
  }

  async disable(name: string, by: string, reason?: string): Promise<void> {
    const record = await this.#require(name);
    const now = this.#clock.now();
    // Order matters: first no new way in, then sweep what is already out.
    if (record.disabledAt === undefined) await this.#store.updateAccount(name, { disabledAt: now });
    const grants = await this.#credentials.revokePrincipal(name, { by, reason: reason ?? 'account disabled' });
    const sessions = await this.#store.revokeGatewaySessionsOf(name, now, 'account-disabled');
    await this.#audit.append({
      actor: by,
      action: 'account.disabled',
      subject: name,
      outcome: 'success',
      details: {
        reason: reason ?? null,
        grantsRevoked: grants,
        sessionsRevoked: sessions,
        alreadyDisabled: record.disabledAt !== undefined,
      },
    });
  }

  async enable(name: string, by: string): Promise<void> {
    const record = await this.#require(name);
    if (record.disabledAt !== undefined) await this.#store.updateAccount(name, { disabledAt: null });
    await this.#audit.append({
      actor: by,
      action: 'account.enabled',
      subject: name,
      outcome: 'success',
      details: { wasDisabled: record.disabledAt !== undefined },
    });
  }

  async get(name: string): Promise<Account | undefined> {
    const record = await this.#store.getAccount(name);
    return record && toAccount(record);
  }

  async list(): Promise<Account[]> {
    return (await this.#store.listAccounts()).map(toAccount);
  }

  /**
   * An identity that the OIDC verifier has already checked. Creates the account on first sight
   * (roles ['user']), so that it can be listed, given roles and disabled. Undefined (fail
   * closed) when the account is disabled, of the other kind, a local account with a password
   * (an IdP user must not inherit a local user's roles by sharing its name), or the name is not
   * a valid principal name. Not audited as a login (it runs per request); creation is.
   */
  async fromOidc(name: string, kind: 'user' | 'service-account', groups: readonly string[]): Promise<AuthenticatedPrincipal | undefined> {
    if (typeof name !== 'string' || !ACCOUNT_NAME.test(name)) return undefined;
    let tokenGroups: string[];
    try {
      tokenGroups = checkGroups(groups);
    } catch {
      return undefined;
    }
    let record = await this.#store.getAccount(name);
    if (!record) {
      try {
        record = await this.#store.insertAccount({ name, kind, roles: ['user'], groups: tokenGroups, createdAt: this.#clock.now() });
        await this.#audit.append({
          actor: 'oidc',
          action: 'account.created',
          subject: name,
          outcome: 'success',
          details: { kind, roles: ['user'], groups: tokenGroups, hasPassword: false },
        });
      } catch (error) {
        if (!(error instanceof StoreConflictError)) throw error;
        // Another request created it meanwhile, or a name differing only in case exists (then: refuse).
        record = await this.#store.getAccount(name);
        if (!record) return undefined;
      }
    }
    if (record.kind !== kind || record.passwordHash !== undefined || record.disabledAt !== undefined) return undefined;
    const sameGroups = record.groups.length === tokenGroups.length && record.groups.every((g, i) => g === tokenGroups[i]);
    if (!sameGroups) await this.#store.updateAccount(name, { groups: tokenGroups });
    await this.#touch(record);
    return authenticatedAs(record, 'oidc', tokenGroups);
  }

  async #insert(input: Parameters<Store['insertAccount']>[0]): Promise<AccountRecord> {
    try {
      return await this.#store.insertAccount(input);
    } catch (error) {
      if (error instanceof StoreConflictError)
        throw new AccountError('exists', `an account named ${input.name} already exists (names ignore letter case)`);
      throw error;
    }
  }

  /** Every live grant of `principal`, a page at a time. */
  async #liveGrants(principal: string): Promise<GrantRecord[]> {
    const now = this.#clock.now();
    const all: GrantRecord[] = [];
    for (;;) {
      const last = all.at(-1);
      const page = await this.#store.listGrants({
        principal,
        liveAt: now,
        limit: 1000,
        ...(last && { before: { createdAt: last.createdAt, id: last.id } }),
      });
      all.push(...page);
      if (page.length < 1000) return all;
    }
  }

  async #require(name: string): Promise<AccountRecord> {
    const record = typeof name === 'string' ? await this.#store.getAccount(name) : undefined;
    if (!record) throw new AccountError('unknown', `no account named ${String(name)}`);
    return record;
  }

  async #hashNew(password: string): Promise<string> {
    const reason = typeof password === 'string' ? checkPasswordPolicy(password) : 'password must be a string';
    if (reason !== undefined) throw new AccountError('weak-password', reason);
    return hashPassword(password, this.#scrypt);
  }

  async #newKey(account: string, now: number): Promise<string> {
    const key = SERVICE_ACCOUNT_KEY_PREFIX + randomBytes(32).toString('base64url');
    await this.#store.replaceServiceAccountKey({ account, keyHash: keyHash(key), createdAt: now });
    return key;
  }

  #dummy(): Promise<string> {
    this.#dummyHash ??= hashPassword(randomBytes(16).toString('hex'), this.#scrypt);
    return this.#dummyHash;
  }

  /** Updates `lastUsedAt` at most once per LAST_USED_GRANULARITY_MS; true when it did. */
  async #touch(record: AccountRecord): Promise<boolean> {
    const now = this.#clock.now();
    if (record.lastUsedAt !== undefined && now - record.lastUsedAt < LAST_USED_GRANULARITY_MS) return false;
    await this.#store.updateAccount(record.name, { lastUsedAt: now });
    return true;
  }

  async #loginFailed(subject: string, via: AuthenticatedPrincipal['via'], reason: string): Promise<undefined> {
    // The attempted name is recorded (an administrator needs it); never the password or key.
    const safe = typeof subject === 'string' && subject.length <= 128 ? subject : 'unknown';
    await this.#audit.append({ actor: safe, action: 'login.failed', subject: safe, outcome: 'failure', details: { via, reason } });
    return undefined;
  }
}
