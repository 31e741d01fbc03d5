/**
 * The HTTP API: Fastify on `listen.api`. Each route declares its response with zod, and the
 * OpenAPI document at /api/openapi.json is generated from those same schemas, so the two
 * cannot drift apart. Later capabilities add their routes through `ApiRoute`.
 */

import Fastify, { type FastifyInstance } from 'fastify';
import { z } from 'zod';

export interface ApiRoute {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  readonly path: string;
  readonly summary: string;
  readonly response: z.ZodType;
  readonly handler: () => unknown;
}

const health = z.object({ status: z.literal('ok'), version: z.string() });

export function buildApi(options: { version: string; routes?: readonly ApiRoute[] }): FastifyInstance {
  const app = Fastify({ logger: false });
  const routes: ApiRoute[] = [
    {
      method: 'GET',
      path: '/healthz',
      summary: 'Liveness: the gateway process answers.',
      response: health,
      handler: () => ({ status: 'ok', version: options.version }),
    },
    ...(options.routes ?? []),
  ];
  const document = openApiDocument(options.version, routes);
  for (const route of routes) app.route({ method: route.method, url: route.path, handler: async () => route.handler() });
  app.get('/api/openapi.json', async () => document);
  return app;
}

function openApiDocument(version: string, routes: readonly ApiRoute[]) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    paths[route.path] ??= {};
    paths[route.path]![route.method.toLowerCase()] = {
      summary: route.summary,
      responses: {
        200: { description: 'OK', content: { 'application/json': { schema: z.toJSONSchema(route.response, { target: 'openapi-3.0' }) } } },
      },
    };
  }
  return { openapi: '3.0.3', info: { title: 'Drawbridge API', version }, paths };
}
