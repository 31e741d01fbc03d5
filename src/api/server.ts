/**
 * The HTTP API: Fastify on `listen.api`. Each route declares who may call it, its body and its
 * response with zod, and the OpenAPI document at /api/openapi.json is generated from those same
 * declarations, so the two cannot drift apart. Errors are RFC 9457 problem details with a
 * stable `code`.
 *
 * Fails closed: a route is reachable without credentials only if it says `public`; any other
 * route first authenticates the bearer token, then checks the caller's gateway roles. A query
 * parameter that the route does not declare, or one given twice, is refused (400
 * `invalid-query`) rather than ignored: a misspelt filter must not widen a listing.
 *
 * The document declares, for every route, each status it may answer and the body of each: its
 * successes, the refusals of every route (400, 401 and 403 where they apply, 413 and 415 for a
 * body, 500) and the route's own (`errors`), each refusal with the codes it may carry.
 * test/api.contract.test.ts calls every operation of a running gateway and checks the answers
 * against it.
 */

import { Readable } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AuthenticatedPrincipal, GatewayRole } from '../identity/accounts.ts';

export type RouteAccess = 'public' | 'authenticated' | readonly GatewayRole[];

export interface RequestContext<B> {
  /** Undefined only on public routes. */
  readonly who: AuthenticatedPrincipal | undefined;
  readonly body: B;
  readonly params: Readonly<Record<string, string>>;
  readonly query: Readonly<Record<string, string | undefined>>;
  readonly authorization: string | undefined;
}

export interface ApiRoute<B = unknown> {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Fastify style: `/api/access/grants/:id`. */
  readonly path: string;
  readonly summary: string;
  readonly access: RouteAccess;
  readonly body?: z.ZodType<B>;
  /** The status of a success; default 200. */
  readonly status?: number;
  /** The media type of a success; default application/json. Another one is answered as a StreamReply. */
  readonly produces?: string;
  /** For application/json, the body; for another type, what each item (a line of JSON lines) is. */
  readonly response: z.ZodType;
  /** Other successes, answered with a StatusReply (202 for a request that waits): status → body. */
  readonly otherResponses?: Readonly<Record<number, z.ZodType>>;
  /** The query parameters it reads, each with what it means; any other is refused (400 `invalid-query`). */
  readonly query?: Readonly<Record<string, string>>;
  /** The refusals it answers beyond those every route may (see `refusals`): status → codes. */
  readonly errors?: Readonly<Record<number, readonly string[]>>;
  readonly handler: (context: RequestContext<B>) => unknown;
}

/** A refusal meant for the caller: rendered as problem+json. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, detail: string) {
    super(detail);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/**
 * A success sent as it is made: the route's `produces` type, item by item, each followed by a
 * newline (JSON lines: one per line; Server-Sent Events: each event ends with its blank line).
 */
export class StreamReply {
  readonly lines: AsyncIterable<string>;
  /** Called once when the response ends or the client goes away, so that an endless stream stops at once. */
  readonly closed: (() => void) | undefined;
  /** Extra response headers (`cache-control: no-cache` for an event stream). */
  readonly headers: Readonly<Record<string, string>>;
  constructor(lines: AsyncIterable<string>, options: { closed?: () => void; headers?: Readonly<Record<string, string>> } = {}) {
    this.lines = lines;
    this.closed = options.closed;
    this.headers = options.headers ?? {};
  }
}

/** A success with another status than the route's usual one (202 for a request that waits). */
export class StatusReply {
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    this.status = status;
    this.body = body;
  }
}

// Each route's body type is its own; the list holds them all.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyRoute = ApiRoute<any>;

export type Authenticate = (authorization: string | undefined) => Promise<AuthenticatedPrincipal | undefined>;

const health = z.object({ status: z.literal('ok'), version: z.string() });

const problem = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  code: z.string(),
  detail: z.string(),
});

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  500: 'Internal Server Error',
};

/** Fastify reads a body on these (it answers 400, 413 or 415 for one it cannot take). */
const WITH_BODY = new Set(['POST', 'PUT', 'DELETE']);

/** The refusals a route may answer whatever it does: status → codes. */
function refusals(route: AnyRoute): Map<number, string[]> {
  const all = new Map<number, string[]>();
  const add = (status: number, ...codes: string[]) => {
    const list = all.get(status) ?? [];
    for (const code of codes) if (!list.includes(code)) list.push(code);
    all.set(status, list);
  };
  add(400, 'invalid-query');
  if (route.body) add(400, 'invalid-body');
  if (WITH_BODY.has(route.method)) {
    add(400, 'bad-request');
    add(413, 'bad-request');
    add(415, 'bad-request');
  }
  if (route.access !== 'public') add(401, 'unauthenticated');
  if (Array.isArray(route.access)) add(403, 'forbidden');
  for (const [status, codes] of Object.entries(route.errors ?? {})) add(Number(status), ...codes);
  add(500, 'internal');
  return new Map([...all].sort(([a], [b]) => a - b));
}

export interface ApiOptions {
  readonly version: string;
  readonly routes?: readonly AnyRoute[];
  /** Resolves a bearer token to a caller; without it, only public routes answer. */
  readonly authenticate?: Authenticate;
  readonly onError?: (error: unknown) => void;
}

export function buildApi(options: ApiOptions): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 });
  const routes: AnyRoute[] = [
    {
      method: 'GET',
      path: '/healthz',
      summary: 'Liveness: the gateway process answers.',
      access: 'public',
      response: health,
      handler: () => ({ status: 'ok', version: options.version }),
    },
    {
      method: 'GET',
      path: '/api/openapi.json',
      summary: 'This document: every route, its parameters, bodies, and each status it may answer with its body.',
      access: 'public',
      response: openApiShape,
      handler: () => document,
    },
    ...(options.routes ?? []),
  ];
  const document = openApiDocument(options.version, routes);
  for (const route of routes) {
    app.route({
      method: route.method,
      url: route.path,
      handler: (request, reply) => serve(route, request, reply, options),
    });
  }
  app.setNotFoundHandler((request, reply) =>
    send(reply, new ApiError(404, 'not-found', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );
  app.setErrorHandler((error: { statusCode?: number; message: string }, _request, reply) => {
    // Fastify's own refusals (a body that is not JSON, one that is too large) are the caller's.
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500) options.onError?.(error);
    return send(
      reply,
      status === 500 ? new ApiError(500, 'internal', 'internal gateway error') : new ApiError(status, 'bad-request', error.message),
    );
  });
  return app;
}

async function serve(route: ApiRoute<unknown>, request: FastifyRequest, reply: FastifyReply, options: ApiOptions): Promise<unknown> {
  try {
    const authorization = request.headers.authorization;
    let who: AuthenticatedPrincipal | undefined;
    if (route.access !== 'public') {
      who = authorization && options.authenticate ? await options.authenticate(authorization) : undefined;
      if (!who) {
        reply.header('www-authenticate', 'Bearer');
        throw new ApiError(401, 'unauthenticated', 'a valid bearer token is required');
      }
      if (Array.isArray(route.access) && !route.access.some((role) => who!.roles.includes(role))) {
        throw new ApiError(403, 'forbidden', `this needs one of the roles ${route.access.join(', ')}`);
      }
    }
    const query = (request.query ?? {}) as Record<string, string | string[] | undefined>;
    for (const [name, value] of Object.entries(query)) {
      if (!route.query || !Object.hasOwn(route.query, name)) {
        const known = Object.keys(route.query ?? {});
        throw new ApiError(
          400,
          'invalid-query',
          `unknown query parameter "${name}"${known.length > 0 ? ` (this route takes ${known.join(', ')})` : ' (this route takes none)'}`,
        );
      }
      if (Array.isArray(value)) throw new ApiError(400, 'invalid-query', `query parameter "${name}" is given more than once`);
    }
    let body: unknown = undefined;
    if (route.body) {
      const parsed = route.body.safeParse(request.body ?? {});
      if (!parsed.success) {
        const first = parsed.error.issues[0];
        throw new ApiError(400, 'invalid-body', first ? `${first.path.join('.') || 'body'}: ${first.message}` : 'invalid body');
      }
      body = parsed.data;
    }
    const result = await route.handler({
      who,
      body,
      params: (request.params ?? {}) as Record<string, string>,
      query: query as Record<string, string | undefined>,
      authorization,
    });
    if (result instanceof StatusReply) return reply.code(result.status).send(result.body);
    if (result instanceof StreamReply) {
      const lines = result.lines;
      const closed = result.closed;
      if (closed) reply.raw.once('close', closed);
      return reply
        .code(route.status ?? 200)
        .headers(result.headers)
        .type(route.produces ?? 'application/octet-stream')
        .send(
          Readable.from(
            (async function* () {
              for await (const line of lines) yield `${line}\n`;
            })(),
          ),
        );
    }
    if (route.status === 204) return reply.code(204).send();
    reply.code(route.status ?? 200);
    return result;
  } catch (error) {
    if (error instanceof ApiError) return send(reply, error);
    options.onError?.(error);
    return send(reply, new ApiError(500, 'internal', 'internal gateway error'));
  }
}

function send(reply: FastifyReply, error: ApiError): FastifyReply {
  return reply
    .code(error.status)
    .type('application/problem+json')
    .send({
      type: `https://drawbridge.dev/problems/${error.code}`,
      title: TITLES[error.status] ?? 'Error',
      status: error.status,
      code: error.code,
      detail: error.message,
    });
}

/** What /api/openapi.json answers, as far as a client relies on it. */
const openApiShape = z.object({
  openapi: z.literal('3.0.3'),
  info: z.object({ title: z.string(), version: z.string() }),
  components: z.record(z.string(), z.unknown()),
  security: z.array(z.record(z.string(), z.array(z.string()))),
  paths: z.record(z.string(), z.record(z.string(), z.record(z.string(), z.unknown()))),
});

const REFUSAL_DESCRIPTIONS: Record<number, string> = {
  400: 'A query parameter, or the body, is not what the route takes',
  401: 'No valid bearer token (or, where public, no valid credentials)',
  403: 'The caller may not do this',
  404: 'No such thing, or one the caller may not see',
  409: 'The state does not allow it',
  413: 'The body is above 64 KiB',
  415: 'The body is not application/json',
  422: 'The body is well-formed but its content is refused',
  500: 'Internal gateway error (logged with its cause)',
};

function openApiDocument(version: string, routes: readonly AnyRoute[]) {
  // Requests as the route accepts them (defaults may be left out); responses exactly as sent.
  const input = (type: z.ZodType) => z.toJSONSchema(type, { target: 'openapi-3.0', io: 'input' });
  const output = (type: z.ZodType) => z.toJSONSchema(type, { target: 'openapi-3.0', io: 'output' });
  const problemSchema = (status: number, codes: readonly string[]) => {
    const schema = output(problem) as { properties: Record<string, unknown> };
    schema.properties['status'] = { type: 'integer', enum: [status] };
    schema.properties['code'] = { type: 'string', enum: [...codes] };
    return schema;
  };
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = route.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const parameters = [
      ...[...route.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => ({
        name: m[1],
        in: 'path',
        required: true,
        schema: { type: 'string' },
      })),
      ...Object.entries(route.query ?? {}).map(([name, description]) => ({
        name,
        in: 'query',
        required: false,
        description,
        schema: { type: 'string' },
      })),
    ];
    const status = route.status ?? 200;
    const responses: Record<string, unknown> = {
      [status]:
        status === 204
          ? { description: 'Done' }
          : { description: 'OK', content: { [route.produces ?? 'application/json']: { schema: output(route.response) } } },
    };
    for (const [other, body] of Object.entries(route.otherResponses ?? {})) {
      responses[other] = { description: 'OK', content: { 'application/json': { schema: output(body) } } };
    }
    for (const [refusal, codes] of refusals(route)) {
      responses[refusal] = {
        description: `${REFUSAL_DESCRIPTIONS[refusal] ?? TITLES[refusal] ?? 'Refused'}: ${codes.map((c) => `\`${c}\``).join(', ')}`,
        content: { 'application/problem+json': { schema: problemSchema(refusal, codes) } },
      };
    }
    paths[path] ??= {};
    paths[path]![route.method.toLowerCase()] = {
      summary: route.summary,
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(route.access === 'public' ? { security: [] } : {}),
      ...(Array.isArray(route.access) ? { 'x-drawbridge-roles': route.access } : {}),
      ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: input(route.body) } } } } : {}),
      responses,
    };
  }
  return {
    openapi: '3.0.3' as const,
    info: { title: 'Drawbridge API', version },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{ bearer: [] }],
    paths,
  };
}
