/**
 * Sign-in with the company's OpenID Connect provider, in the browser, as a public client: the
 * authorization code flow with PKCE (S256), `state` and `nonce`, then the access token is traded
 * once for a gateway session (`POST /api/auth/oidc/session`). The gateway says which provider,
 * client and audience (`GET /api/auth/oidc`); the provider must list
 * `<this origin>/auth/callback` as a redirect URI of that client and allow this origin (CORS) at
 * its token endpoint, as providers do for single-page apps.
 *
 * Protocol checks (issuer, state, PKCE, the ID token's claims and nonce) are openid-client's, the
 * same library `drawbridge login` uses; it is loaded only when someone signs in this way. What
 * must survive the redirect (verifier, state, nonce, where to go next) waits in sessionStorage and
 * is used once. Plain http is allowed only for a provider on a loopback address.
 */

import { call } from './api.ts';
import type { IssuedSession } from './auth.ts';
import type { OidcSettings } from './types.ts';

const PENDING = 'drawbridge.oidc-pending';
const SCOPE = 'openid profile email';

interface Pending {
  readonly verifier: string;
  readonly state: string;
  readonly nonce: string;
  readonly next: string;
  readonly settings: OidcSettings;
}

export const CALLBACK_PATH = '/auth/callback';

/** The provider's name for a button: its host. */
export function providerName(settings: OidcSettings): string {
  try {
    return new URL(settings.issuer).host;
  } catch {
    return settings.issuer;
  }
}

async function discover(settings: OidcSettings) {
  const client = await import('openid-client');
  const issuer = new URL(settings.issuer);
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(issuer.hostname);
  try {
    const config = await client.discovery(
      issuer,
      settings.clientId,
      { token_endpoint_auth_method: 'none' },
      client.None(),
      issuer.protocol === 'http:' && loopback ? { execute: [client.allowInsecureRequests] } : {},
    );
    return { client, config };
  } catch (error) {
    throw new Error(`Cannot reach the sign-in provider ${settings.issuer}: ${(error as Error).message}`);
  }
}

/** Leaves for the provider's sign-in page; comes back to CALLBACK_PATH. */
export async function startOidcSignIn(settings: OidcSettings, next: string): Promise<void> {
  const { client, config } = await discover(settings);
  const pending: Pending = {
    verifier: client.randomPKCECodeVerifier(),
    state: client.randomState(),
    nonce: client.randomNonce(),
    next,
    settings,
  };
  sessionStorage.setItem(PENDING, JSON.stringify(pending));
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: `${window.location.origin}${CALLBACK_PATH}`,
    scope: SCOPE,
    resource: settings.audience,
    code_challenge: await client.calculatePKCECodeChallenge(pending.verifier),
    code_challenge_method: 'S256',
    state: pending.state,
    nonce: pending.nonce,
  });
  window.location.assign(url.href);
}

let finishing: Promise<{ session: IssuedSession; next: string }> | undefined;

/** On CALLBACK_PATH: redeems the code, trades the access token for a gateway session (once per page load). */
export function finishOidcSignIn(): Promise<{ session: IssuedSession; next: string }> {
  finishing ??= finish();
  return finishing;
}

async function finish(): Promise<{ session: IssuedSession; next: string }> {
  const text = sessionStorage.getItem(PENDING);
  // Used once, whatever happens next: a reload of this page must not redeem the code again.
  sessionStorage.removeItem(PENDING);
  if (!text) throw new Error('This sign-in was not started in this tab, or it was already finished. Start again.');
  const pending = JSON.parse(text) as Pending;
  const { client, config } = await discover(pending.settings);
  let accessToken: string;
  try {
    const tokens = await client.authorizationCodeGrant(
      config,
      new URL(window.location.href),
      { pkceCodeVerifier: pending.verifier, expectedState: pending.state, expectedNonce: pending.nonce, idTokenExpected: true },
      { resource: pending.settings.audience },
    );
    accessToken = tokens.access_token;
  } catch (error) {
    const code = (error as { error?: unknown }).error;
    if (code === 'access_denied') throw new Error('Sign-in was denied at the provider.');
    const description = (error as { error_description?: unknown }).error_description;
    throw new Error(`Sign-in failed: ${typeof description === 'string' ? description : (error as Error).message}`);
  }
  const answer = await call<IssuedSession>('POST', '/api/auth/oidc/session', { token: accessToken });
  return { session: answer.body, next: pending.next };
}
