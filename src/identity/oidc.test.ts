/**
 * OidcVerifier against a real OpenID Provider (oidc-provider, in process, on loopback).
 *
 * Which tokens come from where:
 *  - Agent (service-account) tokens, and the key-rotation test: real RFC 9068 JWT access tokens
 *    from the provider's token endpoint (client_credentials grant).
 *  - User tokens: minted by the test with the provider's own published signing key (the test
 *    configured the provider's `jwks`), so that each claim can be set exactly; they verify as a
 *    provider-issued token would. Attack tokens (alg none, HS256 with the public key, tampered,
 *    unpublished key) are built by hand.
 */

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, errors as joseErrors, importJWK, jwtVerify, SignJWT, decodeProtectedHeader } from 'jose';
import type { Clock } from '../core/index.ts';
import { JWKS_MAX_AGE_MS, OidcError, OidcVerifier, type OidcErrorCode, type OidcSettings } from './oidc.ts';
import {
  AGENT_CLIENT_ID,
  generateSigningKey,
  OTHER_AGENT_CLIENT_ID,
  OTHER_AGENT_CLIENT_SECRET,
  startOidcProvider,
  TEST_AUDIENCE,
  WEB_CLIENT_ID,
  type TestOidcProvider,
} from '../../test/support/oidc-provider.ts';

let idp: TestOidcProvider;
const NOW = Math.floor(Date.now() / 1000);
const clock: Clock = { now: () => NOW * 1000 };

before(async () => {
  idp = await startOidcProvider();
});
after(async () => {
  await idp.close();
});

function settings(overrides: Partial<OidcSettings> = {}): OidcSettings {
  return { issuer: idp.issuer, audience: TEST_AUDIENCE, allowedClientIds: [AGENT_CLIENT_ID], ...overrides };
}

async function verifier(overrides: Partial<OidcSettings> = {}, at: Clock = clock): Promise<OidcVerifier> {
  return OidcVerifier.discover(settings(overrides), { clock: at });
}

async function refused(promise: Promise<unknown>, code: OidcErrorCode, token?: string): Promise<OidcError> {
  const error = await promise.then(
    () => assert.fail(`expected a refusal with code ${code}`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof OidcError, `expected OidcError, got ${String(error)}`);
  assert.equal(error.code, code, `${error.code}: ${error.message}`);
  if (token !== undefined) {
    // Safe to show a client: no part of the token is echoed back.
    for (const part of token.split('.')) if (part.length > 8) assert.ok(!error.message.includes(part));
    assert.ok(!error.message.includes('alice'));
  }
  return error;
}

const user = { sub: 'user-123', preferred_username: 'alice', email: 'alice@example.com' };

describe('user tokens from a real authorization-code login', () => {
  test('the ID token (aud = the web client) and the JWT access token (aud = the gateway) are accepted', async () => {
    const login = await idp.userLogin('user-alice');
    const viaIdToken = await OidcVerifier.discover(settings({ audience: WEB_CLIENT_ID }));
    const fromId = await viaIdToken.verify(login.idToken);
    assert.deepEqual({ ...fromId.principal }, { name: 'alice', kind: 'user' });
    assert.equal(fromId.subject, 'user-alice');
    assert.deepEqual(fromId.groups, ['dba', 'oncall']);

    // client_id = the web client, which is not an agent: still alice, a user.
    const fromAccess = await (await OidcVerifier.discover(settings())).verify(login.accessToken);
    assert.deepEqual({ ...fromAccess.principal }, { name: 'alice', kind: 'user' });
    assert.equal(fromAccess.claims.client_id, WEB_CLIENT_ID);
    assert.deepEqual(fromAccess.groups, ['dba', 'oncall']);

    // Each is refused where the other belongs.
    await refused(viaIdToken.verify(login.accessToken), 'wrong-audience', login.accessToken);
    await refused((await OidcVerifier.discover(settings())).verify(login.idToken), 'wrong-audience', login.idToken);
  });
});

describe('user tokens (signed with the provider key)', () => {
  test('a valid token is accepted: name from preferred_username, groups mapped', async () => {
    const v = await verifier();
    const token = await idp.signUserToken({ ...user, groups: ['dba', 42, 'oncall', null] }, { now: NOW });
    const identity = await v.verify(token);
    assert.equal(identity.principal.name, 'alice');
    assert.equal(identity.principal.kind, 'user');
    assert.equal(identity.subject, 'user-123');
    assert.deepEqual(identity.groups, ['dba', 'oncall']);
    assert.equal(identity.expiresAt, (NOW + 300) * 1000);
    assert.equal(identity.claims.email, 'alice@example.com');
    assert.ok(Object.isFrozen(identity.principal));
  });

  test('ES256 user tokens verify too; azp equal to the audience is accepted', async () => {
    const v = await verifier();
    const token = await idp.signUserToken({ ...user, azp: TEST_AUDIENCE }, { now: NOW, alg: 'ES256' });
    assert.equal((await v.verify(token)).principal.name, 'alice');
  });

  test('groups from a nested claim path, or a single string; anything else is no groups', async () => {
    const nested = await verifier({ groupsClaim: 'realm_access.roles' });
    const token = await idp.signUserToken({ ...user, realm_access: { roles: ['admin', 'viewer'] }, groups: ['x'] }, { now: NOW });
    assert.deepEqual((await nested.verify(token)).groups, ['admin', 'viewer']);

    const v = await verifier();
    assert.deepEqual((await v.verify(await idp.signUserToken({ ...user, groups: 'solo' }, { now: NOW }))).groups, ['solo']);
    assert.deepEqual((await v.verify(await idp.signUserToken({ ...user, groups: { a: 1 } }, { now: NOW }))).groups, []);
    assert.deepEqual((await v.verify(await idp.signUserToken(user, { now: NOW }))).groups, []);
    assert.deepEqual((await nested.verify(await idp.signUserToken({ ...user, realm_access: 'x' }, { now: NOW }))).groups, []);
  });

  test('user name falls back to email, then sub; a configured claim is required', async () => {
    const v = await verifier();
    const byEmail = await idp.signUserToken({ sub: 'u1', email: 'bob@example.com' }, { now: NOW });
    assert.equal((await v.verify(byEmail)).principal.name, 'bob@example.com');
    const bySub = await idp.signUserToken({ sub: 'u2' }, { now: NOW });
    assert.equal((await v.verify(bySub)).principal.name, 'u2');

    const custom = await verifier({ usernameClaim: 'upn' });
    assert.equal((await custom.verify(await idp.signUserToken({ ...user, upn: 'alice@corp' }, { now: NOW }))).principal.name, 'alice@corp');
    await refused(custom.verify(await idp.signUserToken(user, { now: NOW })), 'claims');
  });

  test('wrong issuer', async () => {
    const token = await idp.signUserToken({ ...user, iss: 'http://127.0.0.1:1' }, { now: NOW });
    await refused((await verifier()).verify(token), 'wrong-issuer', token);
  });

  test('wrong audience, and an azp naming a client that is not allowed', async () => {
    const v = await verifier();
    const other = await idp.signUserToken({ ...user, aud: ['urn:someone-else'] }, { now: NOW });
    await refused(v.verify(other), 'wrong-audience', other);
    const noAud = await idp.signUserToken({ ...user, aud: undefined }, { now: NOW });
    await refused(v.verify(noAud), 'wrong-audience', noAud);
    const azp = await idp.signUserToken({ ...user, aud: [TEST_AUDIENCE, 'other-app'], azp: 'other-app' }, { now: NOW });
    await refused(v.verify(azp), 'wrong-audience', azp);
    // In the array is fine.
    const many = await idp.signUserToken({ ...user, aud: ['other-api', TEST_AUDIENCE] }, { now: NOW });
    assert.equal((await v.verify(many)).principal.name, 'alice');
  });

  test('expired beyond the skew is refused; within the skew accepted', async () => {
    const v = await verifier({ clockSkewSeconds: 60 });
    const expired = await idp.signUserToken({ ...user, iat: NOW - 600, exp: NOW - 61 }, { now: NOW });
    await refused(v.verify(expired), 'expired', expired);
    const justExpired = await idp.signUserToken({ ...user, iat: NOW - 600, exp: NOW - 30 }, { now: NOW });
    assert.equal((await v.verify(justExpired)).principal.name, 'alice');
  });

  test('the injected clock is the one that counts', async () => {
    const token = await idp.signUserToken(user, { now: NOW });
    const later: Clock = { now: () => (NOW + 3600) * 1000 };
    await refused((await verifier({}, later)).verify(token), 'expired');
  });

  test('not yet valid (nbf) beyond the skew is refused', async () => {
    const v = await verifier({ clockSkewSeconds: 30 });
    const early = await idp.signUserToken({ ...user, nbf: NOW + 120 }, { now: NOW });
    await refused(v.verify(early), 'not-yet-valid', early);
    const nearly = await idp.signUserToken({ ...user, nbf: NOW + 20 }, { now: NOW });
    assert.equal((await v.verify(nearly)).principal.name, 'alice');
  });

  test('iat in the future beyond the skew is refused', async () => {
    const v = await verifier({ clockSkewSeconds: 30 });
    const future = await idp.signUserToken({ ...user, iat: NOW + 120, exp: NOW + 600 }, { now: NOW });
    await refused(v.verify(future), 'not-yet-valid', future);
    const skewed = await idp.signUserToken({ ...user, iat: NOW + 20 }, { now: NOW });
    assert.equal((await v.verify(skewed)).principal.name, 'alice');
  });

  test('exp is required; sub is required', async () => {
    const v = await verifier();
    const noExp = await idp.signUserToken({ ...user, exp: undefined }, { now: NOW });
    await refused(v.verify(noExp), 'claims', noExp);
    const noSub = await idp.signUserToken({ ...user, sub: undefined }, { now: NOW });
    await refused(v.verify(noSub), 'claims', noSub);
  });

  test('other kinds of JWT from the same IdP are refused (typ)', async () => {
    const v = await verifier();
    const logout = await idp.signUserToken(user, { now: NOW, header: { typ: 'logout+jwt' } });
    await refused(v.verify(logout), 'invalid-token', logout);
    const accessType = await idp.signUserToken(user, { now: NOW, header: { typ: 'application/at+JWT' } });
    assert.equal((await v.verify(accessType)).principal.name, 'alice');
  });

  test('malformed and oversized tokens', async () => {
    const v = await verifier();
    await refused(v.verify('not-a-jwt'), 'invalid-token');
    await refused(v.verify(''), 'invalid-token');
    await refused(v.verify('a'.repeat(20_000)), 'invalid-token');
  });
});

describe('attacks', () => {
  const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  const claims = (): Record<string, unknown> => ({ ...user, iss: idp.issuer, aud: TEST_AUDIENCE, iat: NOW, exp: NOW + 300 });

  test('alg none is refused', async () => {
    const v = await verifier();
    const rsa = idp.keys().find((key) => key.alg === 'RS256')!;
    for (const alg of ['none', 'None', 'NONE']) {
      const token = `${b64({ alg, typ: 'JWT', kid: rsa.kid })}.${b64(claims())}.`;
      await refused(v.verify(token), 'algorithm', token);
    }
  });

  test("HS256 signed with the bytes of the provider's public key is refused", async () => {
    const v = await verifier();
    const rsa = idp.keys().find((key) => key.alg === 'RS256')!;
    const pem = createPublicKey({ key: rsa.publicJwk as import('node:crypto').JsonWebKey, format: 'jwk' }).export({
      type: 'spki',
      format: 'pem',
    }) as string;
    const secrets = [new TextEncoder().encode(pem), new TextEncoder().encode(JSON.stringify(rsa.publicJwk))];
    for (const secret of secrets) {
      const forged = await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid: rsa.kid }).sign(secret);
      await refused(v.verify(forged), 'algorithm', forged);
      // And jose itself never turns a published asymmetric key into an HMAC secret, even with
      // HS256 allowed: its key sets refuse HMAC algorithms, and a public key is not a secret.
      const jwks = createRemoteJWKSet(new URL(`${idp.issuer}/jwks`));
      await assert.rejects(jwtVerify(forged, jwks, { algorithms: ['HS256'] }), joseErrors.JOSENotSupported);
      const publicKey = await importJWK(rsa.publicJwk, 'RS256');
      await assert.rejects(jwtVerify(forged, publicKey, { algorithms: ['HS256'] }), TypeError);
    }
  });

  test('HS*, none and unknown algorithms are refused in settings, before any request', async () => {
    for (const algorithms of [['HS256'], ['RS256', 'HS512'], ['none'], ['RS256', 'RSA-OAEP'], []]) {
      await refused(OidcVerifier.discover({ ...settings(), algorithms, issuer: 'https://idp.invalid/' }), 'algorithm');
    }
  });

  test('an algorithm outside the allow-list is refused even with a valid signature', async () => {
    const v = await verifier({ algorithms: ['RS256'] });
    const token = await idp.signUserToken(user, { now: NOW, alg: 'ES256' });
    await refused(v.verify(token), 'algorithm', token);
  });

  test('a tampered payload or signature is refused', async () => {
    const v = await verifier();
    const token = await idp.signUserToken({ ...user, groups: ['viewer'] }, { now: NOW });
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const promoted = `${header}.${b64({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), groups: ['admin'] })}.${signature}`;
    await refused(v.verify(promoted), 'signature', promoted);
    const flipped = Buffer.from(signature, 'base64url');
    flipped[0] = flipped[0]! ^ 0xff;
    const badSignature = `${header}.${payload}.${flipped.toString('base64url')}`;
    await refused(v.verify(badSignature), 'signature', badSignature);
  });

  test('a key the provider does not publish: unknown kid, or a published kid', async () => {
    const v = await verifier();
    const rogue = await generateSigningKey('RS256');
    const key = await importJWK(rogue.privateJwk, 'RS256');
    const unknownKid = await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', kid: rogue.kid }).sign(key);
    await refused(v.verify(unknownKid), 'unknown-key', unknownKid);
    const published = idp.keys().find((k) => k.alg === 'RS256')!;
    const stolenKid = await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', kid: published.kid }).sign(key);
    await refused(v.verify(stolenKid), 'signature', stolenKid);
  });
});

describe('agents: client-credentials tokens from the real token endpoint', () => {
  test('accepted as a service account named for the client', async () => {
    const v = await OidcVerifier.discover(settings());
    const token = await idp.clientCredentialsToken();
    assert.equal(decodeProtectedHeader(token).typ, 'at+jwt');
    const identity = await v.verify(token);
    assert.equal(identity.principal.kind, 'service-account');
    assert.equal(identity.principal.name, AGENT_CLIENT_ID);
    assert.equal(identity.subject, AGENT_CLIENT_ID);
    assert.equal(identity.claims.client_id, AGENT_CLIENT_ID);
    assert.deepEqual(identity.groups, []);
  });

  test('an agent that is not in allowedClientIds is refused', async () => {
    const v = await OidcVerifier.discover(settings());
    const token = await idp.clientCredentialsToken(OTHER_AGENT_CLIENT_ID, OTHER_AGENT_CLIENT_SECRET);
    await refused(v.verify(token), 'wrong-audience', token);
    const allowing = await OidcVerifier.discover(settings({ allowedClientIds: [AGENT_CLIENT_ID, OTHER_AGENT_CLIENT_ID] }));
    assert.equal((await allowing.verify(token)).principal.name, OTHER_AGENT_CLIENT_ID);
  });

  test('the service-account rule: sub equal to the client, or a grant-type claim; otherwise a user', async () => {
    const v = await verifier();
    const auth0 = await idp.signUserToken(
      { sub: `${AGENT_CLIENT_ID}@clients`, azp: AGENT_CLIENT_ID, gty: 'client-credentials' },
      { now: NOW },
    );
    assert.deepEqual({ ...(await v.verify(auth0)).principal }, { name: AGENT_CLIENT_ID, kind: 'service-account' });
    // A user who logged in through an allowed client is still that user.
    const viaClient = await idp.signUserToken({ ...user, client_id: AGENT_CLIENT_ID }, { now: NOW });
    assert.deepEqual({ ...(await v.verify(viaClient)).principal }, { name: 'alice', kind: 'user' });
    const viaOtherClient = await idp.signUserToken({ ...user, client_id: 'some-cli' }, { now: NOW });
    assert.deepEqual({ ...(await v.verify(viaOtherClient)).principal }, { name: 'alice', kind: 'user' });
    // An agent's token whose client is not listed is refused, however it is recognized.
    const unlisted = await idp.signUserToken({ sub: 'svc', client_id: 'svc' }, { now: NOW });
    await refused(v.verify(unlisted), 'wrong-audience', unlisted);
  });
});

describe('keys and discovery', () => {
  test('key rotation: a new kid is fetched after the cooldown (time from a mocked Date, no sleeping)', async (t) => {
    // jose times its JWKS cooldown with Date.now(); move that clock instead of waiting 30 s.
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const v = await OidcVerifier.discover(settings({ jwksCacheSeconds: 30 }));
    const before = await idp.clientCredentialsToken();
    assert.equal((await v.verify(before)).principal.name, AGENT_CLIENT_ID);

    await idp.rotateKeys();
    const rotated = await idp.clientCredentialsToken();
    assert.notEqual(decodeProtectedHeader(rotated).kid, decodeProtectedHeader(before).kid);
    // Within the cooldown the cached set is used: the new kid is unknown for now.
    await refused(v.verify(rotated), 'unknown-key', rotated);

    t.mock.timers.tick(31_000);
    assert.equal((await v.verify(rotated)).principal.name, AGENT_CLIENT_ID);
    // The old key is still published, so tokens it signed still verify.
    assert.equal((await v.verify(before)).principal.name, AGENT_CLIENT_ID);

    // Retiring a key takes effect when the cached set reaches its maximum age (10 minutes): a
    // known kid does not trigger a refetch.
    await idp.rotateKeys({ retire: true });
    t.mock.timers.tick(31_000);
    assert.equal((await v.verify(before)).principal.name, AGENT_CLIENT_ID);
    t.mock.timers.tick(JWKS_MAX_AGE_MS);
    await refused(v.verify(before), 'unknown-key', before);
  });

  test('discovery refuses a document that names another issuer', async () => {
    // The same provider served on a second address: its document names the first.
    const mirror: Server = createServer(idp.handler);
    await new Promise<void>((resolve) => mirror.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = mirror.address() as AddressInfo;
      const error = await refused(OidcVerifier.discover(settings({ issuer: `http://127.0.0.1:${port}` })), 'discovery');
      assert.match(error.message, /names issuer/);
    } finally {
      mirror.closeAllConnections();
      await new Promise((resolve) => mirror.close(resolve));
    }
  });

  test('discovery: a trailing slash is a different issuer; no document; http off loopback', async () => {
    await refused(OidcVerifier.discover(settings({ issuer: `${idp.issuer}/` })), 'discovery');
    await refused(OidcVerifier.discover(settings({ issuer: `${idp.issuer}/nothing-here` })), 'discovery');
    let fetched = false;
    const spy: typeof fetch = async (...args) => {
      fetched = true;
      return fetch(...args);
    };
    await refused(OidcVerifier.discover(settings({ issuer: 'http://idp.example.com' }), { fetch: spy }), 'discovery');
    assert.equal(fetched, false);
  });

  test('settings out of bounds are refused', async () => {
    await assert.rejects(OidcVerifier.discover(settings({ clockSkewSeconds: 301 })), TypeError);
    await assert.rejects(OidcVerifier.discover(settings({ clockSkewSeconds: -1 })), TypeError);
    await assert.rejects(OidcVerifier.discover(settings({ audience: '' })), TypeError);
  });

  test('an injected fetch is used for discovery and keys', async () => {
    const seen: string[] = [];
    const recording: typeof fetch = async (input, init) => {
      seen.push(new URL(input instanceof Request ? input.url : String(input)).pathname);
      return fetch(input, init);
    };
    const v = await OidcVerifier.discover(settings(), { fetch: recording, clock });
    await v.verify(await idp.signUserToken(user, { now: NOW }));
    assert.deepEqual(seen, ['/.well-known/openid-configuration', '/jwks']);
  });
});
