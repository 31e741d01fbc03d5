/**
 * OIDC bearer-token verification: who a JWT from the configured identity provider says the
 * caller is, after checking everything that makes that claim trustworthy.
 *
 * - Discovery: `GET {issuer}/.well-known/openid-configuration`; its `issuer` must equal the
 *   configured issuer exactly (OIDC Discovery §4.3), and its `jwks_uri` is where keys come from.
 * - Keys: jose's remote JWK set. A token whose `kid` is unknown triggers a refetch, at most once
 *   per `jwksCacheSeconds` (the cooldown), so rotated keys are picked up without a restart and an
 *   attacker cannot make us hammer the IdP. The set is refetched anyway after JWKS_MAX_AGE_MS, so
 *   a retired key stops being trusted.
 * - Algorithms: an asymmetric-only allow-list. `none` and every HMAC algorithm are refused when
 *   the verifier is built: with an HMAC algorithm allowed, a token "signed" with the bytes of the
 *   IdP's public key would verify (the key-confusion attack). jose also refuses to use an
 *   asymmetric key for an HMAC algorithm, and the allow-list is checked before any key is chosen.
 * - Claims: `iss` exact, `aud` contains the audience, `exp` required, `nbf` honoured, `iat` not
 *   in the future, all with a bounded clock skew, against time from the injected Clock.
 * - Who: a service account (an agent using the client-credentials grant) or a user; see
 *   `isClientCredentialsToken` for the rule.
 *
 * Every error message is safe to show a client: it names what failed, never token contents.
 */

import { createRemoteJWKSet, customFetch, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { systemClock, verifiedPrincipal, type Clock, type Principal } from '../core/index.ts';

export interface OidcSettings {
  /** e.g. `https://idp.example.com/`: exact match with discovery's `issuer` and the token's `iss`. */
  readonly issuer: string;
  /** The expected `aud` (the string, or one entry of the array). */
  readonly audience: string;
  /** Client-credentials clients (agents) whose tokens are accepted. */
  readonly allowedClientIds?: readonly string[];
  /** Default `groups`; a dotted path reaches into objects (`realm_access.roles`). */
  readonly groupsClaim?: string;
  /** Default: `preferred_username`, then `email`, then `sub`. */
  readonly usernameClaim?: string;
  /** Default `['RS256', 'ES256', 'PS256', 'EdDSA']`; `none` and `HS*` are refused. */
  readonly algorithms?: readonly string[];
  /** Default 60, at most 300. */
  readonly clockSkewSeconds?: number;
  /** Cooldown between JWKS refetches triggered by an unknown `kid`; default 30. */
  readonly jwksCacheSeconds?: number;
}

export interface VerifiedIdentity {
  readonly principal: Principal;
  readonly subject: string;
  readonly groups: readonly string[];
  /** Milliseconds since the epoch (from `exp`). */
  readonly expiresAt: number;
  readonly claims: Readonly<Record<string, unknown>>;
}

export type OidcErrorCode =
  | 'discovery'
  | 'invalid-token'
  | 'expired'
  | 'not-yet-valid'
  | 'wrong-issuer'
  | 'wrong-audience'
  | 'algorithm'
  | 'unknown-key'
  | 'signature'
  | 'claims';

/** A refusal. `message` is safe to show the client: it never repeats token contents. */
export class OidcError extends Error {
  readonly code: OidcErrorCode;

  constructor(code: OidcErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OidcError';
    this.code = code;
  }
}

export const DEFAULT_ALGORITHMS: readonly string[] = ['RS256', 'ES256', 'PS256', 'EdDSA'];
/** Asymmetric JWS algorithms that may be allowed. Anything else (none, HS*) is refused. */
const ASYMMETRIC_ALGORITHMS = new Set([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
]);
export const DEFAULT_CLOCK_SKEW_SECONDS = 60;
export const MAX_CLOCK_SKEW_SECONDS = 300;
export const DEFAULT_JWKS_COOLDOWN_SECONDS = 30;
/**
 * The cached key set is refetched at this age even when every kid is known, so a key the IdP
 * retired (say, after a compromise) stops being trusted within this time.
 */
export const JWKS_MAX_AGE_MS = 10 * 60_000;
/** Header `typ` values (lowercased, without `application/`) of the tokens we accept. */
const ACCEPTED_TYPES = new Set(['jwt', 'at+jwt']);
/** Longer than any real access or ID token; refused before any parsing. */
export const MAX_TOKEN_LENGTH = 16 * 1024;
const DISCOVERY_TIMEOUT_MS = 5_000;
const MAX_DISCOVERY_BYTES = 256 * 1024;

interface Resolved {
  readonly issuer: string;
  readonly audience: string;
  readonly allowedClientIds: ReadonlySet<string>;
  readonly groupsPath: readonly string[];
  readonly usernameClaim: string | undefined;
  readonly algorithms: readonly string[];
  readonly clockSkewSeconds: number;
  readonly jwksCooldownMs: number;
}

/** Checks settings before anything touches the network. Throws OidcError('algorithm') or TypeError. */
function resolveSettings(settings: OidcSettings): Resolved {
  if (typeof settings.issuer !== 'string' || settings.issuer === '') throw new TypeError('oidc: issuer is required');
  requireSafeUrl(settings.issuer, 'issuer');
  if (typeof settings.audience !== 'string' || settings.audience === '') {
    throw new TypeError('oidc: audience is required');
  }
  const algorithms = settings.algorithms ?? DEFAULT_ALGORITHMS;
  if (algorithms.length === 0) throw new OidcError('algorithm', 'oidc: at least one algorithm must be allowed');
  for (const alg of algorithms) {
    // Fail closed: only known asymmetric algorithms. `none` would accept unsigned tokens, and an
    // HMAC algorithm next to a public JWKS opens the key-confusion attack.
    if (!ASYMMETRIC_ALGORITHMS.has(alg)) {
      throw new OidcError('algorithm', `oidc: algorithm ${JSON.stringify(alg)} is not allowed (asymmetric only)`);
    }
  }
  const skew = settings.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  if (!Number.isFinite(skew) || skew < 0 || skew > MAX_CLOCK_SKEW_SECONDS) {
    throw new TypeError(`oidc: clockSkewSeconds must be between 0 and ${MAX_CLOCK_SKEW_SECONDS}`);
  }
  const cooldown = settings.jwksCacheSeconds ?? DEFAULT_JWKS_COOLDOWN_SECONDS;
  if (!Number.isFinite(cooldown) || cooldown < 0) throw new TypeError('oidc: jwksCacheSeconds must be >= 0');
  const groupsPath = (settings.groupsClaim ?? 'groups').split('.');
  if (groupsPath.some((part) => part === '')) throw new TypeError('oidc: groupsClaim must be a dotted path');
  return {
    issuer: settings.issuer,
    audience: settings.audience,
    allowedClientIds: new Set(settings.allowedClientIds ?? []),
    groupsPath,
    usernameClaim: settings.usernameClaim,
    algorithms: [...algorithms],
    clockSkewSeconds: skew,
    jwksCooldownMs: Math.round(cooldown * 1000),
  };
}

/**
 * https everywhere, except plain http on a loopback host (tests and a local IdP). Fail closed:
 * keys fetched over plain http from another host could be swapped by anyone on the path.
 */
function requireSafeUrl(value: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new OidcError('discovery', `oidc: ${what} is not a URL`);
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && isLoopback(url.hostname)) return url;
  throw new OidcError('discovery', `oidc: ${what} must use https (plain http only on a loopback address)`);
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

export class OidcVerifier {
  readonly #settings: Resolved;
  readonly #keys: JWTVerifyGetKey;
  readonly #clock: Clock;

  private constructor(settings: Resolved, keys: JWTVerifyGetKey, clock: Clock) {
    this.#settings = settings;
    this.#keys = keys;
    this.#clock = clock;
  }

  /**
   * Reads the issuer's discovery document, checks that it names the configured issuer, and
   * returns a verifier whose keys come from its `jwks_uri`.
   */
  static async discover(settings: OidcSettings, options: { clock?: Clock; fetch?: typeof fetch } = {}): Promise<OidcVerifier> {
    const resolved = resolveSettings(settings);
    const fetchImpl = options.fetch ?? fetch;
    const url = `${resolved.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    let document: unknown;
    try {
      const response = await fetchImpl(url, {
        headers: { accept: 'application/json' },
        redirect: 'error',
        signal: AbortSignal.timeout(DISCOVERY_TIMEOUT_MS),
      });
      if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
      const text = await response.text();
      if (text.length > MAX_DISCOVERY_BYTES) throw new Error('document too large');
      document = JSON.parse(text);
    } catch (cause) {
      throw new OidcError('discovery', `oidc: could not read the discovery document at ${url}`, { cause });
    }
    if (typeof document !== 'object' || document === null) {
      throw new OidcError('discovery', 'oidc: the discovery document is not a JSON object');
    }
    const { issuer, jwks_uri: jwksUri } = document as { issuer?: unknown; jwks_uri?: unknown };
    // Fail closed: a document that names another issuer is another IdP's (or an impostor's).
    if (issuer !== resolved.issuer) {
      throw new OidcError(
        'discovery',
        `oidc: the discovery document names issuer ${JSON.stringify(issuer)}, expected ${JSON.stringify(resolved.issuer)}`,
      );
    }
    if (typeof jwksUri !== 'string') throw new OidcError('discovery', 'oidc: the discovery document has no jwks_uri');
    const keys = createRemoteJWKSet(requireSafeUrl(jwksUri, 'jwks_uri'), {
      cooldownDuration: resolved.jwksCooldownMs,
      cacheMaxAge: JWKS_MAX_AGE_MS,
      timeoutDuration: DISCOVERY_TIMEOUT_MS,
      ...(options.fetch ? { [customFetch]: options.fetch } : {}),
    });
    return new OidcVerifier(resolved, keys, options.clock ?? systemClock);
  }

  /** The identity a bearer token proves, or an OidcError saying why it proves nothing. */
  async verify(token: string): Promise<VerifiedIdentity> {
    const s = this.#settings;
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
      throw new OidcError('invalid-token', 'token is missing or too long');
    }
    const now = this.#clock.now();
    let payload: JWTPayload;
    let typ: string | undefined;
    try {
      ({
        payload,
        protectedHeader: { typ },
      } = await jwtVerify(token, this.#keys, {
        algorithms: [...s.algorithms],
        issuer: s.issuer,
        audience: s.audience,
        clockTolerance: s.clockSkewSeconds,
        currentDate: new Date(now),
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (error) {
      throw mapJoseError(error);
    }

    // Fail closed on other kinds of JWT the IdP signs (logout tokens, request objects, ...): only
    // ID tokens (`JWT` or no typ) and access tokens (`at+jwt`, RFC 9068) say who the caller is.
    if (typ !== undefined && !ACCEPTED_TYPES.has(typ.toLowerCase().replace(/^application\//, ''))) {
      throw new OidcError('invalid-token', 'token is not an ID or access token (typ)');
    }
    // jose checks `iat` only together with maxTokenAge; a token issued in the future (beyond the
    // skew) means a broken or hostile issuer clock: refuse it.
    if (typeof payload.iat === 'number' && payload.iat * 1000 > now + s.clockSkewSeconds * 1000) {
      throw new OidcError('not-yet-valid', 'token was issued in the future (iat)');
    }
    const subject = payload.sub;
    if (typeof subject !== 'string' || subject === '') throw new OidcError('claims', 'token has no subject (sub)');
    const exp = payload.exp;
    if (typeof exp !== 'number') throw new OidcError('claims', 'token has no expiry (exp)');

    // The authorized party (OIDC `azp`), when present, must be us or a listed agent; fail closed
    // otherwise: a token minted for another client that merely lists us in `aud` is not ours.
    // RFC 9068's `client_id` is not held to this (a user may log in through any client that the
    // IdP issues our audience to); it only decides whether the token is an agent's, below.
    const azp = payload.azp;
    if (azp !== undefined && (typeof azp !== 'string' || (azp !== s.audience && !s.allowedClientIds.has(azp)))) {
      throw new OidcError('wrong-audience', 'token was issued to a client that is not allowed here');
    }
    const clientId = stringClaim(payload, 'azp') ?? stringClaim(payload, 'client_id');

    const groups = readGroups(payload, s.groupsPath);
    const claims = Object.freeze({ ...payload }) as Readonly<Record<string, unknown>>;
    const expiresAt = exp * 1000;

    if (clientId !== undefined && isClientCredentialsToken(payload, subject, clientId)) {
      // Fail closed: an agent is accepted only when listed, even if its token names our audience.
      if (!s.allowedClientIds.has(clientId)) {
        throw new OidcError('wrong-audience', 'token was issued to a client that is not allowed here');
      }
      return Object.freeze({
        principal: verifiedPrincipal(clientId, 'service-account'),
        subject,
        groups,
        expiresAt,
        claims,
      });
    }

    const name = this.#username(payload, subject);
    return Object.freeze({ principal: verifiedPrincipal(name, 'user'), subject, groups, expiresAt, claims });
  }

  #username(payload: JWTPayload, subject: string): string {
    const configured = this.#settings.usernameClaim;
    if (configured !== undefined) {
      const value = stringClaim(payload, configured);
      // Fail closed: with a configured claim, falling back to another would let a token pick its name.
      if (value === undefined || value === '') {
        throw new OidcError('claims', `token has no ${JSON.stringify(configured)} claim for the user name`);
      }
      return value;
    }
    for (const claim of ['preferred_username', 'email']) {
      const value = stringClaim(payload, claim);
      if (value !== undefined && value !== '') return value;
    }
    return subject;
  }
}

/**
 * The service-account rule: a token is an agent's (client-credentials) token when it names a
 * client (`azp` or `client_id`) and has no user subject, that is when
 *  - `sub` equals that client id (RFC 9068 §2.2 for client-credentials; oidc-provider, Okta), or
 *  - `sub` is `<client id>@clients` (Auth0), or
 *  - it says so with a grant-type claim: `gty: 'client-credentials'` (Auth0) or
 *    `grant_type: 'client_credentials'`.
 * Anything else with a subject is a user's token (Keycloak service-account users, which carry a
 * separate `sub`, are users named `service-account-<client>` unless listed as above).
 */
export function isClientCredentialsToken(payload: JWTPayload, subject: string, clientId: string): boolean {
  return (
    subject === clientId ||
    subject === `${clientId}@clients` ||
    payload.gty === 'client-credentials' ||
    payload.grant_type === 'client_credentials'
  );
}

function stringClaim(payload: JWTPayload, name: string): string | undefined {
  const value = payload[name];
  return typeof value === 'string' ? value : undefined;
}

/** An array of strings (non-strings ignored), a single string, or nothing. */
function readGroups(payload: JWTPayload, path: readonly string[]): readonly string[] {
  let value: unknown = payload;
  for (const part of path) {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, part)) return [];
    value = (value as Record<string, unknown>)[part];
  }
  if (typeof value === 'string') return Object.freeze([value]);
  if (Array.isArray(value)) return Object.freeze(value.filter((entry): entry is string => typeof entry === 'string'));
  return [];
}

/** jose's errors carry token details in places; ours carry only what failed. */
function mapJoseError(error: unknown): OidcError {
  const e = joseErrors;
  if (error instanceof e.JWTExpired) return new OidcError('expired', 'token has expired', { cause: error });
  if (error instanceof e.JWTClaimValidationFailed) {
    switch (error.claim) {
      case 'iss':
        return new OidcError('wrong-issuer', 'token is from another issuer', { cause: error });
      case 'aud':
        return new OidcError('wrong-audience', 'token is for another audience', { cause: error });
      case 'nbf':
        return new OidcError('not-yet-valid', 'token is not valid yet (nbf)', { cause: error });
      default:
        return new OidcError('claims', `token claim ${JSON.stringify(error.claim)} is missing or invalid`, {
          cause: error,
        });
    }
  }
  if (error instanceof e.JOSEAlgNotAllowed || error instanceof e.JOSENotSupported) {
    return new OidcError('algorithm', 'token algorithm is not allowed', { cause: error });
  }
  if (error instanceof e.JWKSNoMatchingKey || error instanceof e.JWKSMultipleMatchingKeys) {
    return new OidcError('unknown-key', 'token was signed with a key the issuer does not publish', { cause: error });
  }
  if (error instanceof e.JWSSignatureVerificationFailed) {
    return new OidcError('signature', 'token signature is invalid', { cause: error });
  }
  if (
    error instanceof e.JWKSTimeout ||
    error instanceof e.JWKSInvalid ||
    (error instanceof e.JOSEError && error.code === 'ERR_JOSE_GENERIC') // e.g. the JWKS answered non-200
  ) {
    return new OidcError('discovery', "could not fetch the issuer's signing keys", { cause: error });
  }
  if (error instanceof e.JWSInvalid || error instanceof e.JWTInvalid) {
    return new OidcError('invalid-token', 'token is malformed', { cause: error });
  }
  if (error instanceof e.JOSEError) return new OidcError('invalid-token', 'token is invalid', { cause: error });
  // Network failures fetching the JWKS surface as plain errors (TypeError from fetch).
  return new OidcError('discovery', "could not fetch the issuer's signing keys", { cause: error });
}
