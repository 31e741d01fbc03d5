import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildApi } from './server.ts';
import { contentSecurityPolicy, serveWebUi } from './web-ui.ts';

let dir: string;
let built: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drawbridge-web-ui-'));
  built = join(dir, 'web');
  await mkdir(join(built, 'assets'), { recursive: true });
  await writeFile(
    join(built, 'index.html'),
    '<!doctype html><title>Drawbridge</title><script type="module" src="/assets/app-1a2b.js"></script>',
  );
  await writeFile(join(built, 'assets', 'app-1a2b.js'), 'console.log(1);');
  await writeFile(join(built, 'assets', 'app-1a2b.css'), 'body{}');
  await writeFile(join(built, 'favicon.svg'), '<svg/>');
  await writeFile(join(built, '.env'), 'SECRET=1');
  await writeFile(join(dir, 'outside.txt'), 'outside');
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function api(root: string, oidcIssuer?: string, fetchImpl?: typeof fetch) {
  const app = buildApi({ version: 'test' });
  serveWebUi(app, { root, oidcIssuer, ...(fetchImpl ? { fetch: fetchImpl } : {}) });
  return app;
}

describe('the web UI on the API port', () => {
  test('/ is index.html, revalidated every time, with a strict CSP and an ETag that answers 304', async () => {
    const app = api(built);
    const r = await app.inject({ method: 'GET', url: '/' });
    assert.equal(r.statusCode, 200);
    assert.match(r.headers['content-type'] as string, /^text\/html/);
    assert.match(r.body, /<title>Drawbridge<\/title>/);
    assert.equal(r.headers['cache-control'], 'no-cache');
    assert.equal(r.headers['content-security-policy'], contentSecurityPolicy());
    assert.match(r.headers['content-security-policy'] as string, /default-src 'self'; script-src 'self'; style-src 'self'/);
    assert.doesNotMatch(r.headers['content-security-policy'] as string, /unsafe-inline|unsafe-eval/);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.equal(r.headers['x-frame-options'], 'DENY');
    assert.equal(r.headers['referrer-policy'], 'no-referrer');
    const again = await app.inject({ method: 'GET', url: '/', headers: { 'if-none-match': r.headers.etag as string } });
    assert.equal(again.statusCode, 304);
    assert.equal(again.body, '');
    const head = await app.inject({ method: 'HEAD', url: '/' });
    assert.equal(head.statusCode, 200);
    assert.equal(head.body, '');
  });

  test('hashed assets are immutable; other files are revalidated', async () => {
    const app = api(built);
    const js = await app.inject({ method: 'GET', url: '/assets/app-1a2b.js' });
    assert.equal(js.statusCode, 200);
    assert.match(js.headers['content-type'] as string, /^text\/javascript/);
    assert.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(js.body, 'console.log(1);');
    const css = await app.inject({ method: 'GET', url: '/assets/app-1a2b.css' });
    assert.match(css.headers['content-type'] as string, /^text\/css/);
    const icon = await app.inject({ method: 'GET', url: '/favicon.svg' });
    assert.equal(icon.headers['content-type'], 'image/svg+xml');
    assert.equal(icon.headers['cache-control'], 'no-cache');
  });

  test('a page of the app (client-side route) is index.html; a missing file is 404', async () => {
    const app = api(built);
    for (const url of ['/sessions', '/sessions/ses_0123abcd', '/audit?since=7d', '/auth/callback?code=x&state=y']) {
      const r = await app.inject({ method: 'GET', url });
      assert.equal(r.statusCode, 200, url);
      assert.match(r.body, /<title>Drawbridge<\/title>/, url);
      assert.equal(r.headers['cache-control'], 'no-cache', url);
    }
    // A browser navigating to a path with a dot still gets the app.
    const navigating = await app.inject({ method: 'GET', url: '/sessions/a.b', headers: { accept: 'text/html,*/*' } });
    assert.equal(navigating.statusCode, 200);
    for (const url of ['/assets/gone-0000.js', '/assets/page', '/robots.txt']) {
      const r = await app.inject({ method: 'GET', url, headers: { accept: '*/*' } });
      assert.equal(r.statusCode, 404, url);
      assert.doesNotMatch(r.body, /Drawbridge/, url);
    }
  });

  test('never shadows the API: /api/* and /healthz keep their own answers and 404 problem+json', async () => {
    const app = api(built);
    const health = await app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(health.json().status, 'ok');
    for (const url of ['/api', '/api/', '/api/no-such-route', '/api/sessions/x/y', '/healthz/x']) {
      const r = await app.inject({ method: 'GET', url, headers: { accept: 'text/html' } });
      assert.equal(r.statusCode, 404, url);
      assert.match(r.headers['content-type'] as string, /^application\/problem\+json/, url);
      assert.equal(r.json().code, 'not-found', url);
    }
    const post = await app.inject({ method: 'POST', url: '/sessions', payload: {} });
    assert.equal(post.statusCode, 404);
    assert.equal(post.json().code, 'not-found');
    // The OpenAPI document does not list the UI's routes.
    const doc = (await app.inject({ method: 'GET', url: '/api/openapi.json' })).json() as { paths: Record<string, unknown> };
    assert.deepEqual(
      Object.keys(doc.paths).filter((p) => !p.startsWith('/api/') && p !== '/healthz'),
      [],
    );
  });

  test('nothing outside the build and no dot-files', async () => {
    const app = api(built);
    for (const url of [
      '/../outside.txt',
      '/%2e%2e/outside.txt',
      '/assets/..%2f..%2foutside.txt',
      '/.env',
      '/assets/%5c..%5coutside.txt',
      '/%00',
    ]) {
      const r = await app.inject({ method: 'GET', url, headers: { accept: '*/*' } });
      assert.notEqual(r.statusCode, 200, url);
      assert.doesNotMatch(r.body, /outside|SECRET/, url);
    }
  });

  test('without a build, / says to run npm run build', async () => {
    const app = api(join(dir, 'not-built'));
    for (const url of ['/', '/sessions']) {
      const r = await app.inject({ method: 'GET', url });
      assert.equal(r.statusCode, 200);
      assert.match(r.body, /npm run build/);
      assert.match(r.headers['content-security-policy'] as string, /default-src 'self'/);
    }
    assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
  });

  test('with an OIDC provider, connect-src allows its issuer and token endpoint (read from discovery), once', async () => {
    let calls = 0;
    const fake = (async (url: string | URL) => {
      calls++;
      assert.equal(String(url), 'https://login.example.com/tenant/.well-known/openid-configuration');
      return Response.json({ issuer: 'https://login.example.com/tenant', token_endpoint: 'https://tokens.example.net/oauth2/token' });
    }) as typeof fetch;
    const app = api(built, 'https://login.example.com/tenant', fake);
    const first = await app.inject({ method: 'GET', url: '/' });
    assert.match(
      first.headers['content-security-policy'] as string,
      /connect-src 'self' https:\/\/login\.example\.com https:\/\/tokens\.example\.net;/,
    );
    await app.inject({ method: 'GET', url: '/access' });
    assert.equal(calls, 1);
  });

  test('an unreachable provider leaves its issuer in connect-src', async () => {
    const failing = (async () => {
      throw new Error('connection refused');
    }) as typeof fetch;
    const app = api(built, 'http://127.0.0.1:9/', failing);
    const r = await app.inject({ method: 'GET', url: '/' });
    assert.equal(r.statusCode, 200);
    assert.match(r.headers['content-security-policy'] as string, /connect-src 'self' http:\/\/127\.0\.0\.1:9;/);
  });
});
