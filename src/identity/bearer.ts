/**
 * Who is calling the API: the bearer token is a gateway session token (`dbr_ses_…`, from a
 * login), a service account's key (`dbr_sak_…`), or an access token of the company's OIDC
 * provider (people's tokens, and agents' client-credentials tokens). A grant credential is a
 * database password and is never accepted here. Anything that does not verify is no one.
 */

import type { Accounts, AuthenticatedPrincipal, GatewayRole } from './accounts.ts';
import type { GatewaySessions } from './gateway-sessions.ts';
import type { OidcSettings, OidcVerifier, VerifiedIdentity } from './oidc.ts';

export interface BearerDeps {
  readonly sessions: GatewaySessions;
  readonly accounts: Accounts;
  /** Resolves a token to an identity, or undefined when it does not verify. */
  readonly oidc: TokenVerifier | undefined;
  /** IdP groups that carry each gateway role. */
  readonly roleGroups: Readonly<Record<GatewayRole, readonly string[]>>;
}

export class BearerAuthenticator {
  readonly #deps: BearerDeps;

  constructor(deps: BearerDeps) {
    this.#deps = deps;
  }

  async authenticate(authorization: string | undefined): Promise<AuthenticatedPrincipal | undefined> {
    const match = /^Bearer ([\x21-\x7e]{1,16384})$/.exec(authorization ?? '');
    if (!match) return undefined;
    const token = match[1]!;
    if (token.startsWith('dbr_ses_')) {
      const who = await this.#deps.sessions.verify(token);
      // A session from an OIDC login keeps the roles its groups carried then.
      return who?.loggedInVia === 'oidc' ? this.#withGroupRoles(who, who.groups) : who;
    }
    if (token.startsWith('dbr_sak_')) return this.#deps.accounts.authenticateKey(token);
    if (token.startsWith('dbr_') || !this.#deps.oidc) return undefined;
    const identity = await this.#deps.oidc.verify(token);
    if (!identity) return undefined;
    const who = await this.#deps.accounts.fromOidc(identity.principal.name, identity.principal.kind, identity.groups);
    return who && this.#withGroupRoles(who, identity.groups);
  }

  /**
   * The account's own roles, and those that the IdP groups carry (config `oidc.role_groups`).
   * People only: a service account, however it authenticates, only asks for grants.
   */
  #withGroupRoles(who: AuthenticatedPrincipal, groups: readonly string[]): AuthenticatedPrincipal {
    if (who.principal.kind !== 'user') return who;
    const fromGroups = (Object.keys(this.#deps.roleGroups) as GatewayRole[]).filter((role) =>
      this.#deps.roleGroups[role].some((group) => groups.includes(group)),
    );
    return Object.freeze({ ...who, roles: [...new Set([...who.roles, ...fromGroups])] });
  }
}

export interface TokenVerifier {
  verify(token: string): Promise<VerifiedIdentity | undefined>;
}

/**
 * An OIDC verifier that discovers its provider on first use, and again after a failure: a
 * provider that is down when the gateway starts costs its users a 401, not the gateway its
 * start. The JWT library is loaded then too, so a gateway without OIDC never carries it.
 */
export function lazyOidcVerifier(settings: OidcSettings, options: Parameters<typeof OidcVerifier.discover>[1] = {}): TokenVerifier {
  let discovered: Promise<OidcVerifier> | undefined;
  return {
    async verify(token: string): Promise<VerifiedIdentity | undefined> {
      const { OidcError, OidcVerifier } = await import('./oidc.ts');
      discovered ??= OidcVerifier.discover(settings, options);
      try {
        return await (await discovered).verify(token);
      } catch (error) {
        if (!(error instanceof OidcError)) throw error;
        if (error.code === 'discovery') discovered = undefined;
        return undefined;
      }
    },
  };
}
