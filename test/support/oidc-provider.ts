/**
 * A real OpenID Provider (panva's `oidc-provider`) in this process, on 127.0.0.1 and a free port,
 * for identity tests. Its issuer is `http://127.0.0.1:<port>`: oidc-provider accepts plain http
 * issuers (it only warns about insecure cookies, which the client-credentials grant never sets).
 *
 * What it offers:
 *  - discovery and `jwks_uri` as any IdP serves them;
 *  - the client-credentials grant for agents, with RFC 9068 JWT access tokens (resource
 *    indicators, ES256) whose `aud` is `audience`: `clientCredentialsToken()`;
 *  - the provider's own signing keys, which the test configured, so that a test can mint a user
 *    token with them (`signUserToken`): it verifies exactly as one the provider issued would;
 *  - key rotation: `rotateKeys()` swaps in a provider with a new signing key first (the old ones
 *    still published unless retired), on the same port and issuer;
 *  - a public, native CLI client (`CLI_CLIENT_ID`) with the device authorization grant and the
 *    authorization code flow with PKCE to any loopback port, and a scripted person for both:
 *    `completeDeviceLogin()` enters the user code at the verification page, `browserLogin()`
 *    follows an authorization URL to its redirect; either logs in and consents (or denies).
 *    The device flow's polling interval and code lifetime are short and settable, so that tests
 *    do not wait the real 5 s and 10 min.
 *  - a public browser client for the web UI (`UI_CLIENT_ID`), whose redirect URI a test registers
 *    once the gateway listens (`allowUiRedirect()`), and a stand-in login page that asks a real
 *    browser for the person's name when neither `?subject=` nor `login_hint` says it.
 */

import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK, type JWTPayload } from 'jose';
// @ts-expect-error oidc-provider ships no type declarations; the calls below are few and checked by the tests.
import Provider, { errors as providerErrors } from 'oidc-provider';

export const TEST_AUDIENCE = 'urn:drawbridge:gateway';
export const AGENT_CLIENT_ID = 'agent-planner';
export const AGENT_CLIENT_SECRET = 'agent-planner-secret-for-tests-only';
/** A second agent that the IdP knows but a verifier may choose not to allow. */
export const OTHER_AGENT_CLIENT_ID = 'agent-other';
export const OTHER_AGENT_CLIENT_SECRET = 'agent-other-secret-for-tests-only';

/** A confidential web client that logs users in with the authorization code flow. */
export const WEB_CLIENT_ID = 'drawbridge-web';
export const WEB_CLIENT_SECRET = 'drawbridge-web-secret-for-tests-only';
export const WEB_REDIRECT_URI = 'http://127.0.0.1/callback';

/**
 * The public client `drawbridge login` uses: no secret; device flow, and authorization code with
 * PKCE to a loopback redirect on any port (RFC 8252 §7.3, `application_type: native`).
 */
export const CLI_CLIENT_ID = 'drawbridge-cli';
export const CLI_REDIRECT_URI = 'http://127.0.0.1/callback';

/**
 * The public client the web UI signs in with (authorization code with PKCE, no secret, from the
 * browser): its redirect URI is the gateway's `/auth/callback`, known only once the gateway
 * listens, so a test registers it with `allowUiRedirect()`. The provider allows CORS at its token
 * endpoint from that URI's origin, as it does for public clients.
 */
export const UI_CLIENT_ID = 'drawbridge-ui';
const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

/** The provider's user accounts: subject → claims. */
export const USERS: Readonly<Record<string, Record<string, unknown>>> = {
  'user-alice': { preferred_username: 'alice', email: 'alice@example.com', groups: ['dba', 'oncall'] },
};

export interface UserLogin {
  /** The ID token (aud = WEB_CLIENT_ID). */
  readonly idToken: string;
  /** A JWT access token for TEST_AUDIENCE (client_id = WEB_CLIENT_ID). */
  readonly accessToken: string;
}

export interface SigningKey {
  readonly kid: string;
  readonly alg: 'ES256' | 'RS256';
  readonly privateJwk: JWK;
  readonly publicJwk: JWK;
}

export interface TestOidcProvider {
  /** `http://127.0.0.1:<port>` (no trailing slash, as the provider reports it). */
  readonly issuer: string;
  readonly port: number;
  /** The request handler, for a test that serves the same provider on another address. */
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** The keys the provider signs with and publishes, signing key of each algorithm first. */
  keys(): readonly SigningKey[];
  /** A JWT access token from the real token endpoint (client_credentials grant). */
  clientCredentialsToken(clientId?: string, clientSecret?: string): Promise<string>;
  /**
   * A real authorization-code login of `subject` (a key of USERS): the provider's login and
   * consent interaction is answered by this helper instead of a person, then the code is redeemed
   * at the token endpoint with PKCE.
   */
  userLogin(subject: string): Promise<UserLogin>;
  /**
   * A person at the device flow's verification page: opens `verificationUri` (the complete one,
   * carrying the user code, or the plain one with `userCode`), confirms, logs in as `subject`
   * and consents, or denies consent with `deny`.
   */
  completeDeviceLogin(
    verificationUri: string,
    subject: string,
    options?: { readonly userCode?: string; readonly deny?: boolean },
  ): Promise<void>;
  /**
   * A person's browser given an authorization URL: logs in as `subject`, consents (or denies),
   * and follows the provider's redirect to the client's redirect URI, whose answer it returns.
   */
  browserLogin(authorizationUrl: string, subject: string, options?: { readonly deny?: boolean }): Promise<{ status: number; body: string }>;
  /** The device flow's polling interval (seconds, default 1) and device code lifetime (seconds, default 120). */
  setDeviceFlow(settings: { readonly interval?: number; readonly codeTtl?: number }): void;
  /** A user token signed with the provider's current key for `alg` (default RS256). */
  signUserToken(claims: JWTPayload, options?: UserTokenOptions): Promise<string>;
  /** Publishes a new ES256 and RS256 key first; `retire` drops the previous ones. */
  rotateKeys(options?: { retire?: boolean }): Promise<void>;
  /** Registers UI_CLIENT_ID with this redirect URI (the web UI's `<origin>/auth/callback`). */
  allowUiRedirect(redirectUri: string): Promise<void>;
  close(): Promise<void>;
}

export interface UserTokenOptions {
  readonly alg?: 'ES256' | 'RS256';
  /** Seconds since the epoch used for iat/exp defaults; default now. */
  readonly now?: number;
  /** Extra or overriding protected-header fields. */
  readonly header?: Record<string, unknown>;
}

let keyCounter = 0;

export async function generateSigningKey(alg: 'ES256' | 'RS256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `${alg.toLowerCase()}-${++keyCounter}-${Math.random().toString(36).slice(2, 8)}`;
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateJwk, publicJwk };
}

interface DeviceFlowSettings {
  interval: number;
  codeTtl: number;
}

function providerConfiguration(keys: readonly SigningKey[], device: DeviceFlowSettings): Record<string, unknown> {
  return {
    clients: [
      {
        client_id: AGENT_CLIENT_ID,
        client_secret: AGENT_CLIENT_SECRET,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        scope: 'gateway',
      },
      {
        client_id: WEB_CLIENT_ID,
        client_secret: WEB_CLIENT_SECRET,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: [WEB_REDIRECT_URI],
        id_token_signed_response_alg: 'RS256',
      },
      {
        client_id: CLI_CLIENT_ID,
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', DEVICE_CODE_GRANT, 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [CLI_REDIRECT_URI],
        id_token_signed_response_alg: 'RS256',
      },
      {
        client_id: OTHER_AGENT_CLIENT_ID,
        client_secret: OTHER_AGENT_CLIENT_SECRET,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        scope: 'gateway',
      },
    ],
    jwks: { keys: keys.map((key) => key.privateJwk) },
    scopes: ['openid', 'profile', 'email', 'offline_access', 'gateway'],
    claims: { openid: ['sub'], profile: ['preferred_username', 'email', 'groups'], email: ['email'] },
    // Put the profile claims in the ID token too (the default keeps them for userinfo).
    conformIdTokenClaims: false,
    // User access tokens carry the user's profile and groups, as many IdPs are set up to do.
    extraTokenClaims: (_ctx: unknown, token: { accountId?: string }) =>
      token.accountId === undefined ? undefined : USERS[token.accountId],
    findAccount: (_ctx: unknown, sub: string) => {
      const claims = USERS[sub];
      return claims === undefined ? undefined : { accountId: sub, claims: () => ({ sub, ...claims }) };
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      deviceFlow: {
        enabled: true,
        // Bare pages (the defaults are fine, but warn that they should be customised).
        userCodeInputSource: (ctx: { body: string }, form: string, _out: unknown, err?: { name?: string }) => {
          ctx.body = `<!DOCTYPE html><html><body>${err ? `<p class="error">${err.name}</p>` : ''}${form}</body></html>`;
        },
        userCodeConfirmSource: (ctx: { body: string }, form: string) => {
          ctx.body = `<!DOCTYPE html><html><body>${form}</body></html>`;
        },
        successSource: (ctx: { body: string }) => {
          ctx.body = '<!DOCTYPE html><html><body><p>Signed in. You may close this page.</p></body></html>';
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => TEST_AUDIENCE,
        getResourceServerInfo: (_ctx: unknown, indicator: string) => {
          if (indicator !== TEST_AUDIENCE) throw new providerErrors.InvalidTarget();
          return {
            scope: 'gateway',
            audience: TEST_AUDIENCE,
            accessTokenTTL: 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    ttl: {
      ClientCredentials: 300,
      AccessToken: 300,
      IdToken: 300,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      RefreshToken: 3600,
      DeviceCode: () => device.codeTtl,
    },
    cookies: { keys: ['drawbridge-test-cookie-key'] },
    adapter: MemoryAdapter,
  };
}

/**
 * What a login page would do: the user named by `?subject=` (what a person would type; else
 * `login_hint`) logs in and consents to what was asked, or denies consent with `?deny=1`. With
 * neither, the page asks for the name: a form that a real browser fills in and submits.
 */
async function answerInteraction(provider: any, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { prompt, params, session } = await provider.interactionDetails(req, res);
  const typed = new URL(req.url ?? '/', 'http://x').searchParams;
  const accountId: string | undefined = session?.accountId ?? typed.get('subject') ?? params.login_hint;
  if (accountId === undefined) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(
      '<!DOCTYPE html><html><body><h1>Test provider: sign in</h1><form method="get">' +
        '<label>Subject <input name="subject"></label> <button type="submit">Continue</button></form></body></html>',
    );
    return;
  }
  if (typed.get('deny') === '1' && prompt.name === 'consent') {
    await provider.interactionFinished(
      req,
      res,
      { error: 'access_denied', error_description: 'End-User denied consent' },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  if (prompt.name === 'login') {
    await provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
    return;
  }
  const grant = new provider.Grant({ accountId, clientId: params.client_id });
  grant.addOIDCScope(String(params.scope));
  // The CLI asks for OIDC scopes only; the gateway audience gets the resource server's scope.
  if (typeof params.resource === 'string') grant.addResourceScope(params.resource, 'gateway');
  const grantId: string = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

/** The browser's part of an authorization-code login, with a cookie jar that ignores paths. */
async function authorizationCodeLogin(issuer: string, subject: string): Promise<UserLogin> {
  const cookies = new Map<string, string>();
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  let next = new URL(`${issuer}/auth`);
  for (const [name, value] of Object.entries({
    client_id: WEB_CLIENT_ID,
    response_type: 'code',
    scope: 'openid profile gateway',
    redirect_uri: WEB_REDIRECT_URI,
    resource: TEST_AUDIENCE,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state: 'test-state',
    nonce: 'test-nonce',
    login_hint: subject,
  })) {
    next.searchParams.set(name, value);
  }
  for (let hops = 0; hops < 10; hops++) {
    if (next.href.startsWith(WEB_REDIRECT_URI)) {
      const code = next.searchParams.get('code');
      if (code === null) throw new Error(`login failed: ${next.searchParams.get('error')} ${next.searchParams.get('error_description')}`);
      const response = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { authorization: basic(WEB_CLIENT_ID, WEB_CLIENT_SECRET), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code,
          redirect_uri: WEB_REDIRECT_URI,
          code_verifier: verifier,
          resource: TEST_AUDIENCE,
        }),
      });
      const body = (await response.json()) as { id_token?: string; access_token?: string; error?: string };
      if (typeof body.id_token !== 'string' || typeof body.access_token !== 'string') {
        throw new Error(`token endpoint: ${response.status} ${body.error ?? ''}`);
      }
      return { idToken: body.id_token, accessToken: body.access_token };
    }
    const response = await fetch(next, {
      redirect: 'manual',
      headers: { cookie: [...cookies].map(([name, value]) => `${name}=${value}`).join('; ') },
    });
    for (const line of response.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const at = pair.indexOf('=');
      cookies.set(pair.slice(0, at), pair.slice(at + 1));
    }
    const location = response.headers.get('location');
    if (location === null) throw new Error(`login stopped at ${next.pathname}: HTTP ${response.status} ${await response.text()}`);
    next = new URL(location, next);
  }
  throw new Error('login: too many redirects');
}

/**
 * A person's browser, scripted: a cookie jar (that ignores paths), redirects followed by hand,
 * and at the provider's login page the name the person would type.
 */
class ScriptedBrowser {
  readonly #cookies = new Map<string, string>();
  readonly #issuer: URL;
  readonly #subject: string;
  readonly #deny: boolean;

  constructor(issuer: string, subject: string, deny: boolean) {
    this.#issuer = new URL(issuer);
    this.#subject = subject;
    this.#deny = deny;
  }

  /** Follows redirects while they stay at the provider; returns where they leave it, or the page they stop at. */
  async navigate(start: URL, form?: URLSearchParams): Promise<{ url: URL; page?: { status: number; body: string } }> {
    let next = start;
    let body = form;
    for (let hops = 0; hops < 15; hops++) {
      if (next.origin !== this.#issuer.origin) return { url: next };
      if (next.pathname.startsWith('/interaction/')) {
        next.searchParams.set('subject', this.#subject);
        if (this.#deny) next.searchParams.set('deny', '1');
      }
      const response = await fetch(next, {
        method: body ? 'POST' : 'GET',
        redirect: 'manual',
        headers: {
          cookie: [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; '),
          ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
        },
        ...(body ? { body } : {}),
      });
      for (const line of response.headers.getSetCookie()) {
        const [pair = ''] = line.split(';');
        const at = pair.indexOf('=');
        this.#cookies.set(pair.slice(0, at), pair.slice(at + 1));
      }
      const location = response.headers.get('location');
      if (location === null) return { url: next, page: { status: response.status, body: await response.text() } };
      await response.body?.cancel();
      next = new URL(location, next);
      body = undefined;
    }
    throw new Error('browser: too many redirects');
  }

  /** Submits the first form of a page, as its hidden fields say. */
  async submit(at: URL, html: string): Promise<{ url: URL; page?: { status: number; body: string } }> {
    const form = /<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/.exec(html);
    if (!form) throw new Error(`browser: no form at ${at.pathname}: ${html.slice(0, 300)}`);
    const fields = new URLSearchParams();
    for (const input of form[2]!.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"\/>/g)) {
      fields.set(input[1]!, unescapeHtml(input[2]!));
    }
    return this.navigate(new URL(unescapeHtml(form[1]!), at), fields);
  }
}

function unescapeHtml(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|#39|#x27);/g, (entity) => HTML_ENTITIES[entity] ?? entity);
}
const HTML_ENTITIES: Record<string, string> = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'", '&#x27;': "'" };

async function completeDeviceLogin(
  issuer: string,
  verificationUri: string,
  subject: string,
  options: { readonly userCode?: string; readonly deny?: boolean },
): Promise<void> {
  const browser = new ScriptedBrowser(issuer, subject, options.deny ?? false);
  const start = new URL(verificationUri);
  if (options.userCode !== undefined && !start.searchParams.has('user_code')) start.searchParams.set('user_code', options.userCode);
  // The page with the code in its URL posts it back on load; then the person confirms.
  let at = await browser.navigate(start);
  for (const step of ['enter the code', 'confirm']) {
    if (!at.page) throw new Error(`device login (${step}): left the provider for ${at.url.href}`);
    at = await browser.submit(at.url, at.page.body);
  }
  const done = at.page?.body ?? '';
  if (options.deny) {
    if (done.includes('Signed in')) throw new Error('device login: signed in although consent was denied');
  } else if (!done.includes('Signed in')) {
    throw new Error(`device login did not finish: HTTP ${at.page?.status} ${done.slice(0, 300)}`);
  }
}

async function browserLogin(
  issuer: string,
  authorizationUrl: string,
  subject: string,
  options: { readonly deny?: boolean },
): Promise<{ status: number; body: string }> {
  const browser = new ScriptedBrowser(issuer, subject, options.deny ?? false);
  const left = await browser.navigate(new URL(authorizationUrl));
  if (left.page) throw new Error(`browser login stopped at ${left.url.pathname}: HTTP ${left.page.status} ${left.page.body.slice(0, 300)}`);
  const response = await fetch(left.url);
  return { status: response.status, body: await response.text() };
}

function basic(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

/** The provider's storage, in memory (its built-in one works too, but warns on every start). */
class MemoryAdapter {
  static readonly #store = new Map<string, Record<string, unknown>>();
  readonly #name: string;

  constructor(name: string) {
    this.#name = name;
  }

  #key(id: string): string {
    return `${this.#name}:${id}`;
  }

  async upsert(id: string, payload: Record<string, unknown>): Promise<void> {
    MemoryAdapter.#store.set(this.#key(id), payload);
  }

  async find(id: string): Promise<Record<string, unknown> | undefined> {
    return MemoryAdapter.#store.get(this.#key(id));
  }

  async findByUid(uid: string): Promise<Record<string, unknown> | undefined> {
    for (const [key, payload] of MemoryAdapter.#store) if (key.startsWith(`${this.#name}:`) && payload.uid === uid) return payload;
    return undefined;
  }

  async findByUserCode(userCode: string): Promise<Record<string, unknown> | undefined> {
    for (const [key, payload] of MemoryAdapter.#store) {
      if (key.startsWith(`${this.#name}:`) && payload.userCode === userCode) return payload;
    }
    return undefined;
  }

  async consume(id: string): Promise<void> {
    const payload = MemoryAdapter.#store.get(this.#key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id: string): Promise<void> {
    MemoryAdapter.#store.delete(this.#key(id));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    for (const [key, payload] of MemoryAdapter.#store) if (payload.grantId === grantId) MemoryAdapter.#store.delete(key);
  }
}

export async function startOidcProvider(): Promise<TestOidcProvider> {
  let keys: SigningKey[] = [await generateSigningKey('ES256'), await generateSigningKey('RS256')];
  let current: (req: IncomingMessage, res: ServerResponse) => void = () => {};
  const handler = (req: IncomingMessage, res: ServerResponse): void => current(req, res);
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;

  const device: DeviceFlowSettings = { interval: 1, codeTtl: 120 };
  const install = (): void => {
    const provider = new Provider(issuer, providerConfiguration(keys, device));
    // oidc-provider sends no `interval` (clients then poll every 5 s): a short one keeps tests fast.
    provider.use(async (ctx: { oidc?: { route?: string }; status: number; body: unknown }, next: () => Promise<void>) => {
      await next();
      if (ctx.oidc?.route === 'device_authorization' && ctx.status === 200 && typeof ctx.body === 'object' && ctx.body !== null) {
        (ctx.body as Record<string, unknown>).interval = device.interval;
      }
    });
    const callback = provider.callback();
    current = (req, res) => {
      if (req.url?.startsWith('/interaction/')) {
        answerInteraction(provider, req, res).catch((error: unknown) => {
          res.statusCode = 500;
          res.end(String(error));
        });
      } else {
        callback(req, res);
      }
    };
  };
  install();

  const signingKey = (alg: 'ES256' | 'RS256'): SigningKey => {
    const key = keys.find((candidate) => candidate.alg === alg);
    if (key === undefined) throw new Error(`no ${alg} key`);
    return key;
  };

  return {
    issuer,
    port,
    handler,
    keys: () => keys,
    async clientCredentialsToken(clientId = AGENT_CLIENT_ID, clientSecret = AGENT_CLIENT_SECRET) {
      const response = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: {
          authorization: basic(clientId, clientSecret),
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'gateway', resource: TEST_AUDIENCE }),
      });
      const body = (await response.json()) as { access_token?: string; error?: string; error_description?: string };
      if (response.status !== 200 || typeof body.access_token !== 'string') {
        throw new Error(`token endpoint: ${response.status} ${body.error ?? ''} ${body.error_description ?? ''}`);
      }
      return body.access_token;
    },
    userLogin: (subject) => authorizationCodeLogin(issuer, subject),
    completeDeviceLogin: (verificationUri, subject, options = {}) => completeDeviceLogin(issuer, verificationUri, subject, options),
    browserLogin: (authorizationUrl, subject, options = {}) => browserLogin(issuer, authorizationUrl, subject, options),
    setDeviceFlow(settings) {
      if (settings.interval !== undefined) device.interval = settings.interval;
      if (settings.codeTtl !== undefined) device.codeTtl = settings.codeTtl;
    },
    async signUserToken(claims, options = {}) {
      const alg = options.alg ?? 'RS256';
      const key = signingKey(alg);
      const now = options.now ?? Math.floor(Date.now() / 1000);
      return new SignJWT({ iss: issuer, aud: TEST_AUDIENCE, iat: now, exp: now + 300, ...claims })
        .setProtectedHeader({ typ: 'JWT', ...options.header, alg, kid: key.kid })
        .sign(await importPrivate(key));
    },
    async rotateKeys({ retire = false } = {}) {
      const fresh = [await generateSigningKey('ES256'), await generateSigningKey('RS256')];
      keys = retire ? fresh : [...fresh, ...keys];
      install();
    },
    async allowUiRedirect(redirectUri) {
      // A client the provider finds through its adapter, as one registered dynamically would be.
      await new MemoryAdapter('Client').upsert(UI_CLIENT_ID, {
        client_id: UI_CLIENT_ID,
        application_type: 'web',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: [redirectUri],
        id_token_signed_response_alg: 'RS256',
      });
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

async function importPrivate(key: SigningKey): Promise<Awaited<ReturnType<typeof importJWK>>> {
  return importJWK(key.privateJwk, key.alg);
}

/** The `oidc:` section of a gateway config that trusts this provider; `admin` is carried by the group `dba`. */
export function gatewayOidcYaml(provider: TestOidcProvider, options: { clientId?: string } = {}): string[] {
  return [
    'oidc:',
    `  issuer: ${provider.issuer}`,
    `  audience: "${TEST_AUDIENCE}"`,
    ...(options.clientId ? [`  client_id: ${options.clientId}`] : []),
    `  allowed_client_ids: [${AGENT_CLIENT_ID}]`,
    '  role_groups:',
    '    admin: [dba]',
  ];
}
