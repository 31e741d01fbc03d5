/**
 * The web UI's static files, served by the API's own server at `/`: what `npm run build` wrote to
 * `dist/web/` (web/, built with Vite). A client-side route (`/sessions/ses_…`) is answered with
 * index.html, so that a reload or a pasted link opens the page it names.
 *
 * Guarantees:
 * - It never shadows the API: the routes are one catch-all GET (HEAD comes with it), which the
 *   router tries only after every API route; a path under `/api/` or `/healthz` that no API route
 *   serves gets the API's own 404 problem+json, never index.html. The routes are registered with
 *   `schema: { hide: true }`: they are not operations of the API, so the OpenAPI document leaves
 *   them out, and test/api.contract.test.ts skips hidden routes (and only those).
 * - Every answer carries a strict Content-Security-Policy: scripts, styles, fonts and images from
 *   this origin only, no inline script or style, no framing. `connect-src` adds the OIDC
 *   provider's origins (its issuer and its token endpoint, read from its discovery document),
 *   because the browser redeems the authorization code there itself.
 * - Cache: files under `/assets/` have a content hash in their name and never change
 *   (`immutable`, one year); everything else (index.html) is `no-cache` with an ETag, so that a
 *   new build is picked up at the next load.
 * - Only files inside the folder are served: no `..`, no dot-files, no symbolic escape through an
 *   encoded separator.
 * - Without the folder (the UI was never built), `/` and every page answer a short HTML page that
 *   says to run `npm run build`; the gateway starts all the same.
 *
 * Known limit: files are read from disk at each request and sent uncompressed; the UI is a few
 * hundred KiB and meant for a handful of people per gateway.
 */

import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

declare module 'fastify' {
  interface FastifySchema {
    /** Not an operation of the API: left out of the OpenAPI document and its contract test (as @fastify/swagger reads it). */
    hide?: boolean;
  }
}

/** `dist/web/` of this package, resolved from this file (src/api/ or dist/api/ alike), not from the cwd. */
export const WEB_ROOT = fileURLToPath(new URL('../../dist/web/', import.meta.url));

export interface WebUiOptions {
  /** The built UI: a folder holding index.html and assets/. */
  readonly root: string;
  /** `oidc.issuer` when the gateway has a provider: its origins are added to `connect-src`. */
  readonly oidcIssuer?: string | undefined;
  /** For tests; default the global fetch. */
  readonly fetch?: typeof fetch;
}

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

const IMMUTABLE = 'public, max-age=31536000, immutable';
const REVALIDATE = 'no-cache';

const NOT_BUILT = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Drawbridge</title></head>
<body>
<h1>Drawbridge</h1>
<p>The web UI is not built. Run <code>npm run build</code> in the Drawbridge folder, then reload this page.</p>
<p>The API answers at <a href="/api/openapi.json">/api/openapi.json</a>.</p>
</body>
</html>
`;

/** The Content-Security-Policy of every UI answer, with `connect` origins besides this one. */
export function contentSecurityPolicy(connect: readonly string[] = []): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    ["connect-src 'self'", ...connect].join(' '),
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Registers the UI's routes on `app` (before it is ready). */
export function serveWebUi(app: FastifyInstance, options: WebUiOptions): void {
  const origins = options.oidcIssuer ? providerOrigins(options.oidcIssuer, options.fetch ?? fetch) : async () => [];
  app.route({
    method: 'GET',
    url: '/*',
    schema: { hide: true },
    handler: async (request, reply) => {
      const path = request.url.split('?')[0]!;
      // The API's namespace stays the API's: its own 404 (problem+json), never a page.
      if (path === '/api' || path.startsWith('/api/') || path === '/healthz' || path.startsWith('/healthz/')) {
        return reply.callNotFound();
      }
      reply
        .header('content-security-policy', contentSecurityPolicy(await origins()))
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .header('x-frame-options', 'DENY')
        .header('cross-origin-opener-policy', 'same-origin');
      const file = fileFor(options.root, path);
      if (file === undefined) return notFound(reply);
      const found = await regularFile(file);
      if (found) return sendFile(request, reply, file, found, path.startsWith('/assets/') ? IMMUTABLE : REVALIDATE);
      // A page of the UI (no extension, or a browser navigating): the app decides what it shows.
      const navigation = extname(path) === '' || (request.headers.accept ?? '').includes('text/html');
      if (!navigation || path.startsWith('/assets/')) return notFound(reply);
      const index = join(options.root, 'index.html');
      const indexFound = await regularFile(index);
      if (!indexFound) return reply.code(200).header('cache-control', 'no-store').type(TYPES['.html']!).send(NOT_BUILT);
      return sendFile(request, reply, index, indexFound, REVALIDATE);
    },
  });
}

/** The file a URL path names inside `root`, or undefined for one that may not be served. */
function fileFor(root: string, path: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return undefined;
  const segments = decoded.split('/').filter((s) => s !== '');
  // No `..` and no dot-files (which also covers `.`): nothing outside the build, nothing hidden.
  if (segments.some((s) => s.startsWith('.'))) return undefined;
  if (segments.length === 0) return join(root, 'index.html');
  const file = join(root, ...segments);
  const base = root.endsWith(sep) ? root : root + sep;
  return file.startsWith(base) ? file : undefined;
}

async function regularFile(file: string): Promise<{ size: number; mtimeMs: number } | undefined> {
  try {
    const s = await stat(file);
    return s.isFile() ? { size: s.size, mtimeMs: s.mtimeMs } : undefined;
  } catch {
    return undefined;
  }
}

async function sendFile(
  request: FastifyRequest,
  reply: FastifyReply,
  file: string,
  found: { size: number; mtimeMs: number },
  cacheControl: string,
): Promise<FastifyReply> {
  const etag = `"${createHash('sha256').update(`${file}:${found.size}:${found.mtimeMs}`).digest('base64url').slice(0, 22)}"`;
  reply.header('cache-control', cacheControl).header('etag', etag);
  const type = TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
  if (request.headers['if-none-match'] === etag) return reply.code(304).send();
  return reply
    .code(200)
    .type(type)
    .send(await readFile(file));
}

function notFound(reply: FastifyReply): FastifyReply {
  return reply.code(404).header('cache-control', 'no-store').type(TYPES['.txt']!).send('not found\n');
}

/**
 * The OIDC provider's origins that the browser calls: the issuer's (discovery) and the token
 * endpoint's, read from discovery. Kept 10 minutes; when discovery fails, the issuer's origin
 * alone for 30 seconds (the sign-in page then says what went wrong).
 */
function providerOrigins(issuer: string, fetchImpl: typeof fetch): () => Promise<string[]> {
  let cached: { origins: string[]; until: number } | undefined;
  let pending: Promise<string[]> | undefined;
  const issuerOrigin = new URL(issuer).origin;
  const discover = async (): Promise<string[]> => {
    try {
      const response = await fetchImpl(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, {
        signal: AbortSignal.timeout(3000),
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const document = (await response.json()) as { token_endpoint?: unknown };
      const origins = new Set([issuerOrigin]);
      if (typeof document.token_endpoint === 'string') origins.add(new URL(document.token_endpoint).origin);
      cached = { origins: [...origins], until: Date.now() + 600_000 };
    } catch {
      cached = { origins: [issuerOrigin], until: Date.now() + 30_000 };
    }
    return cached.origins;
  };
  return async () => {
    if (cached && cached.until > Date.now()) return cached.origins;
    pending ??= discover().finally(() => (pending = undefined));
    return pending;
  };
}
