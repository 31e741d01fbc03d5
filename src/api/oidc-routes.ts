/**
 * The API side of interactive OIDC login. The CLI (and later the web UI) asks which provider,
 * client and audience to log in with, runs the login with the provider itself (device flow or
 * authorization code with PKCE), then trades the access token it got, once, for a refreshable
 * gateway session: the same pair of tokens a password login yields.
 *
 * Guarantees:
 * - Only a caller that authenticated with an OIDC access token of this gateway's audience gets
 *   a session; a gateway session cannot mint another one (it refreshes instead), and a password
 *   or key caller is told to use `/api/auth/login`.
 * - Only people: an agent's client-credentials token stays what it is (short-lived, fetched
 *   again from the provider), so that a service account never holds a 12-hour refresh token.
 *
 * Known limit: the session outlives the provider's access token (up to the session family's
 * absolute lifetime); disabling the account ends it at once, leaving the IdP's groups does
 * not until the next login.
 */

import { z } from 'zod';
import { AccountError, type AuthenticatedPrincipal } from '../identity/accounts.ts';
import type { GatewaySessions } from '../identity/gateway-sessions.ts';
import { issuedSession, sessionView } from './identity-routes.ts';
import { ApiError, type AnyRoute } from './server.ts';

export interface OidcRouteDeps {
  /** `config.oidc`: undefined when the gateway has no provider. */
  readonly oidc: { readonly issuer: string; readonly audience: string; readonly clientId: string | undefined } | undefined;
  readonly sessions: GatewaySessions;
}

const loginSettings = z.object({ issuer: z.string(), clientId: z.string(), audience: z.string() });

export function oidcRoutes(deps: OidcRouteDeps): AnyRoute[] {
  return [
    {
      method: 'GET',
      path: '/api/auth/oidc',
      summary: 'The OIDC provider, client and audience to log in with (device flow, or authorization code with PKCE).',
      access: 'public',
      response: loginSettings,
      errors: { 404: ['oidc-not-configured'] },
      handler: () => {
        const oidc = deps.oidc;
        if (!oidc) throw new ApiError(404, 'oidc-not-configured', 'this gateway has no OIDC provider configured');
        if (oidc.clientId === undefined) {
          throw new ApiError(404, 'oidc-not-configured', 'this gateway has no oidc.client_id for interactive logins');
        }
        return { issuer: oidc.issuer, clientId: oidc.clientId, audience: oidc.audience };
      },
    },
    {
      method: 'POST',
      path: '/api/auth/oidc/session',
      summary: 'Trade the OIDC access token of a person (the bearer token) for a short-lived gateway session token and its refresh token.',
      access: 'authenticated',
      response: issuedSession,
      errors: { 403: ['oidc-token-required'] },
      handler: async ({ who }: { who: AuthenticatedPrincipal | undefined }) => {
        if (who!.via !== 'oidc') {
          throw new ApiError(
            403,
            'oidc-token-required',
            "a gateway session is started with an OIDC access token of this gateway's audience",
          );
        }
        if (who!.principal.kind !== 'user') {
          throw new ApiError(403, 'oidc-token-required', "a service account's token is used as it is; only people start gateway sessions");
        }
        try {
          return sessionView(await deps.sessions.issue(who!), who!);
        } catch (error) {
          // The account was disabled or removed between authentication and now.
          if (error instanceof AccountError) throw new ApiError(401, 'unauthenticated', 'a valid bearer token is required');
          throw error;
        }
      },
    },
  ];
}
