/**
 * `drawbridge login` with the company's OpenID Connect provider, as a public client (no
 * secret): the gateway says which provider, client and audience (`GET /api/auth/oidc`), the
 * CLI signs the person in with the provider, then trades the access token, once, for a gateway
 * session (`POST /api/auth/oidc/session`) that it saves like a password login's.
 *
 * - Default: the device authorization grant (RFC 8628), for terminals without a browser: the
 *   CLI prints where to go and which code to enter, then polls the token endpoint as the
 *   provider says (`interval`, `slow_down` adds 5 s, gives up at `expires_in`).
 * - `--browser`: the authorization code flow with PKCE (S256), `state` and `nonce`, redirected
 *   to a one-shot listener on 127.0.0.1 and a random port (RFC 8252 §7.3); the URL is opened
 *   with `$BROWSER`, `xdg-open` or `open` when there is one (`BROWSER=none` never opens) and
 *   always printed. The wait ends after 5 minutes.
 *
 * Both ask for `openid profile email offline_access` and name the gateway as the resource
 * (RFC 8707), so that the access token's audience is the gateway's. Protocol checks (issuer,
 * state, PKCE, the ID token and its nonce) are openid-client's. Plain http is allowed only for
 * a provider on a loopback address, as the gateway's own verifier does.
 */

import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as client from 'openid-client';
import { ApiClient, ApiProblem } from './api-client.ts';

export const LOGIN_SCOPE = 'openid profile email offline_access';
export const BROWSER_WAIT_MS = 5 * 60_000;

export interface IssuedSession {
  readonly token: string;
  readonly refreshToken: string;
  readonly expiresAt: string;
  readonly refreshExpiresAt: string;
  readonly principal: string;
}

interface LoginSettings {
  readonly issuer: string;
  readonly clientId: string;
  readonly audience: string;
}

/** A login that did not happen, for a reason the person can act on: exit 1 with the message. */
export class OidcLoginError extends Error {
  override name = 'OidcLoginError';
}

export interface OidcLoginOptions {
  readonly browser: boolean;
  /** Where the instructions go; default stderr (stdout stays for the result). */
  readonly out?: NodeJS.WritableStream;
}

export async function oidcLogin(gateway: string, options: OidcLoginOptions): Promise<IssuedSession> {
  const out = options.out ?? process.stderr;
  const settings = await loginSettings(gateway);
  const config = await discover(settings);
  const accessToken = options.browser ? await browserLogin(config, settings, out) : await deviceLogin(config, settings, out);
  const withToken = await ApiClient.open(gateway, { ...process.env, DRAWBRIDGE_TOKEN: accessToken });
  return (await withToken.call<IssuedSession>('POST', '/api/auth/oidc/session')).body;
}

async function loginSettings(gateway: string): Promise<LoginSettings> {
  try {
    return (await ApiClient.anonymous(gateway).call<LoginSettings>('GET', '/api/auth/oidc')).body;
  } catch (error) {
    if (error instanceof ApiProblem && error.code === 'oidc-not-configured') {
      throw new OidcLoginError(`${error.message}: log in with a local account (--user NAME)`);
    }
    throw error;
  }
}

async function discover(settings: LoginSettings): Promise<client.Configuration> {
  let issuer: URL;
  try {
    issuer = new URL(settings.issuer);
  } catch {
    throw new OidcLoginError(`the gateway's OIDC issuer is not a URL: ${settings.issuer}`);
  }
  const insecure = issuer.protocol === 'http:' && isLoopback(issuer.hostname);
  try {
    return await client.discovery(
      issuer,
      settings.clientId,
      { token_endpoint_auth_method: 'none' },
      client.None(),
      insecure ? { execute: [client.allowInsecureRequests] } : {},
    );
  } catch (error) {
    throw new OidcLoginError(`cannot reach the OIDC provider ${settings.issuer}: ${reason(error)}`);
  }
}

async function deviceLogin(config: client.Configuration, settings: LoginSettings, out: NodeJS.WritableStream): Promise<string> {
  let started: client.DeviceAuthorizationResponse;
  try {
    started = await client.initiateDeviceAuthorization(config, { scope: LOGIN_SCOPE, resource: settings.audience });
  } catch (error) {
    throw new OidcLoginError(`the OIDC provider refused to start a device login: ${reason(error)}`);
  }
  out.write(`To sign in, open ${started.verification_uri_complete ?? started.verification_uri} and enter code ${started.user_code}\n`);
  try {
    // Honours `interval` (default 5 s), adds 5 s at each `slow_down`, stops at `expires_in`.
    const tokens = await client.pollDeviceAuthorizationGrant(config, started, { resource: settings.audience });
    return tokens.access_token;
  } catch (error) {
    const code = (error as { error?: unknown; code?: unknown }).error ?? (error as { code?: unknown }).code;
    if (code === 'access_denied') throw new OidcLoginError('sign-in was denied at the OIDC provider');
    if (code === 'expired_token' || code === 'OAUTH_TIMEOUT') {
      throw new OidcLoginError('the code expired before sign-in finished: run `drawbridge login` again');
    }
    throw new OidcLoginError(`sign-in failed: ${reason(error)}`);
  }
}

async function browserLogin(config: client.Configuration, settings: LoginSettings, out: NodeJS.WritableStream): Promise<string> {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const callback = await loopbackCallback(state);
  try {
    const redirectUri = `http://127.0.0.1:${callback.port}/callback`;
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: LOGIN_SCOPE,
      resource: settings.audience,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    out.write(`To sign in, open ${url.href}\n`);
    openBrowser(url.href);
    const { answered, respond } = await callback.next;
    try {
      const tokens = await client.authorizationCodeGrant(
        config,
        answered,
        { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true },
        { resource: settings.audience },
      );
      respond(200, 'Signed in to Drawbridge. You may close this page and go back to the terminal.');
      return tokens.access_token;
    } catch (error) {
      const code = (error as { error?: unknown }).error;
      const message = code === 'access_denied' ? 'sign-in was denied at the OIDC provider' : `sign-in failed: ${reason(error)}`;
      respond(400, `Drawbridge: ${message}.`);
      throw new OidcLoginError(message);
    }
  } finally {
    callback.close();
  }
}

interface Callback {
  readonly port: number;
  /** The first request to /callback with our state: its URL, and how to answer the browser. */
  readonly next: Promise<{ answered: URL; respond: (status: number, text: string) => void }>;
  close(): void;
}

/** A listener on 127.0.0.1 for one redirect; requests with another state are refused and ignored. */
async function loopbackCallback(state: string): Promise<Callback> {
  let resolve!: (value: Awaited<Callback['next']>) => void;
  let reject!: (error: Error) => void;
  const next = new Promise<Awaited<Callback['next']>>((res, rej) => ((resolve = res), (reject = rej)));
  let done = false;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const answered = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
    const page = (status: number, text: string) => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', connection: 'close' });
      res.end(`${text}\n`);
    };
    // Another page on this machine may hit the port too: only our own redirect ends the wait.
    if (done || req.method !== 'GET' || answered.pathname !== '/callback' || answered.searchParams.get('state') !== state) {
      page(done ? 410 : 400, 'This is not the sign-in Drawbridge is waiting for.');
      return;
    }
    done = true;
    resolve({ answered, respond: page });
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => res());
  });
  const { port } = server.address() as AddressInfo;
  const timer = setTimeout(
    () => reject(new OidcLoginError(`no answer from the browser within ${BROWSER_WAIT_MS / 60_000} minutes`)),
    BROWSER_WAIT_MS,
  );
  return {
    port,
    next,
    close() {
      clearTimeout(timer);
      // The browser's answer was sent with `connection: close`; cut whatever lingers after a second.
      server.close();
      setTimeout(() => server.closeAllConnections(), 1000).unref();
    },
  };
}

/** Best effort: a desktop opens the URL; anywhere else the printed URL is the way. */
function openBrowser(url: string): void {
  const configured = process.env.BROWSER;
  if (configured === 'none') return;
  const command = configured || (process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? undefined : 'xdg-open');
  if (!command) return;
  try {
    const child = spawn(command, [url], { stdio: 'ignore', detached: true });
    child.on('error', () => {});
    child.unref();
  } catch {
    // No browser: the person uses the printed URL.
  }
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

function reason(error: unknown): string {
  const e = error as { error?: unknown; error_description?: unknown; message?: unknown; cause?: { message?: unknown } };
  if (typeof e.error === 'string') return typeof e.error_description === 'string' ? `${e.error}: ${e.error_description}` : e.error;
  const message = typeof e.message === 'string' ? e.message : String(error);
  return typeof e.cause?.message === 'string' ? `${message} (${e.cause.message})` : message;
}
