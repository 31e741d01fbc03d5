/**
 * The HTTP API: Fastify on `listen.api`. Each route declares who may call it, its body and its
 * response with zod, and the OpenAPI document at /api/openapi.json is generated from those same
 * declarations, so the two cannot drift apart. Errors are RFC 9457 problem details with a
 * stable `code`.
 *
 * Fails closed: a route is reachable without credentials only if it says `public`; any other
 * route first authenticates the bearer token, then checks the caller's gateway roles.
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

/** A success sent as it is made: the route's `produces` type, item by item (JSON lines: one per line). */
export class StreamReply {
  readonly lines: AsyncIterable<string>;
  constructor(lines: AsyncIterable<string>) {
    this.lines = lines;
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
  500: 'Internal Server Error',
};

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
  app.get('/api/openapi.json', async () => document);
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
      query: (request.query ?? {}) as Record<string, string | undefined>,
      authorization,
    });
    if (result instanceof StatusReply) return reply.code(result.status).send(result.body);
    if (result instanceof StreamReply) {
      const lines = result.lines;
      return reply
        .code(route.status ?? 200)
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

function openApiDocument(version: string, routes: readonly AnyRoute[]) {
  const schema = (type: z.ZodType) => z.toJSONSchema(type, { target: 'openapi-3.0', io: 'input' });
  const problemResponse = (description: string) => ({ description, content: { 'application/problem+json': { schema: schema(problem) } } });
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = route.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const parameters = [...route.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    paths[path] ??= {};
    paths[path]![route.method.toLowerCase()] = {
      summary: route.summary,
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(route.access === 'public' ? { security: [] } : {}),
      ...(Array.isArray(route.access) ? { 'x-drawbridge-roles': route.access } : {}),
      ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: schema(route.body) } } } } : {}),
      responses: {
        [route.status ?? 200]:
          route.status === 204
            ? { description: 'Done' }
            : { description: 'OK', content: { [route.produces ?? 'application/json']: { schema: schema(route.response) } } },
        ...(route.body ? { 400: problemResponse('The body does not match the schema') } : {}),
        ...(route.access !== 'public' ? { 401: problemResponse('No valid bearer token') } : {}),
        ...(Array.isArray(route.access) ? { 403: problemResponse('The caller lacks the role') } : {}),
      },
    };
  }
  return {
    openapi: '3.0.3',
    info: { title: 'Drawbridge API', version },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{ bearer: [] }],
    paths,
  };
}
