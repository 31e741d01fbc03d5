import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { VERSION } from '../version.ts';
import { buildApi } from './server.ts';

describe('buildApi', () => {
  let app: FastifyInstance;
  before(async () => {
    app = buildApi({ version: VERSION });
    await app.ready();
  });
  after(() => app.close());

  it('GET /healthz answers ok with the version', async () => {
    const response = await app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /^application\/json/);
    assert.deepEqual(response.json(), { status: 'ok', version: VERSION });
  });

  it('GET /api/openapi.json is an OpenAPI 3.0.3 document that describes /healthz', async () => {
    const response = await app.inject({ method: 'GET', url: '/api/openapi.json' });
    assert.equal(response.statusCode, 200);
    const document = response.json();
    assert.equal(document.openapi, '3.0.3');
    assert.deepEqual(document.info, { title: 'Drawbridge API', version: VERSION });
    const health = document.paths['/healthz'].get;
    assert.equal(typeof health.summary, 'string');
    const schema = health.responses['200'].content['application/json'].schema;
    assert.equal(schema.type, 'object');
    assert.deepEqual([...schema.required].sort(), ['status', 'version']);
    assert.equal(schema.properties.version.type, 'string');
    assert.ok(schema.properties.status.enum?.includes('ok') ?? schema.properties.status.const === 'ok');
  });

  it('an unknown route is 404', async () => {
    for (const url of ['/', '/nope', '/api/nope', '/healthz/x']) {
      const response = await app.inject({ method: 'GET', url });
      assert.equal(response.statusCode, 404, url);
    }
  });

  it('a known path with another method is not served', async () => {
    const response = await app.inject({ method: 'POST', url: '/healthz' });
    assert.equal(response.statusCode, 404);
  });
});

describe('buildApi with extra routes', () => {
  it('serves them and documents them next to /healthz', async () => {
    const app = buildApi({
      version: '9.9.9',
      routes: [
        {
          method: 'GET',
          path: '/api/things',
          summary: 'The things.',
          access: 'public',
          response: z.array(z.string()),
          handler: () => ['a', 'b'],
        },
      ],
    });
    try {
      assert.deepEqual((await app.inject({ method: 'GET', url: '/api/things' })).json(), ['a', 'b']);
      const document = (await app.inject({ method: 'GET', url: '/api/openapi.json' })).json();
      assert.deepEqual(Object.keys(document.paths).sort(), ['/api/openapi.json', '/api/things', '/healthz']);
      assert.equal(document.paths['/api/things'].get.summary, 'The things.');
      assert.equal(document.paths['/api/things'].get.responses['200'].content['application/json'].schema.type, 'array');
      assert.equal(document.info.version, '9.9.9');
    } finally {
      await app.close();
    }
  });
});

describe('buildApi query parameters and declared refusals', () => {
  const app = buildApi({
    version: '1.0.0',
    authenticate: async (authorization) =>
      authorization === 'Bearer good'
        ? ({ principal: { name: 'ada', kind: 'user' }, roles: ['user'], groups: [], via: 'session' } as never)
        : undefined,
    routes: [
      {
        method: 'GET',
        path: '/api/things',
        summary: 'The things.',
        access: 'authenticated',
        query: { color: 'Only things of this color.' },
        response: z.object({ color: z.string().nullable() }),
        errors: { 404: ['unknown-thing'] },
        handler: ({ query }) => ({ color: query['color'] ?? null }),
      },
      {
        method: 'POST',
        path: '/api/things',
        summary: 'Make a thing.',
        access: ['admin'],
        body: z.object({ name: z.string() }),
        status: 201,
        response: z.object({ name: z.string() }),
        otherResponses: { 202: z.object({ queued: z.literal(true) }) },
        handler: ({ body }) => body,
      },
    ],
  });
  after(() => app.close());
  const get = (url: string) => app.inject({ method: 'GET', url, headers: { authorization: 'Bearer good' } });

  it('a declared parameter reaches the handler; an undeclared or repeated one is 400 invalid-query', async () => {
    assert.deepEqual((await get('/api/things?color=red')).json(), { color: 'red' });
    const unknown = await get('/api/things?colour=red');
    assert.equal(unknown.statusCode, 400);
    assert.equal(unknown.json().code, 'invalid-query');
    assert.match(unknown.json().detail, /unknown query parameter "colour" \(this route takes color\)/);
    const twice = await get('/api/things?color=red&color=blue');
    assert.equal(twice.statusCode, 400);
    assert.match(twice.json().detail, /"color" is given more than once/);
    const proto = await get('/api/things?__proto__=x&constructor=y');
    assert.equal(proto.statusCode, 400);
  });

  it('the document declares the parameters, every status with its codes, and strict response bodies', async () => {
    const document = (await app.inject({ method: 'GET', url: '/api/openapi.json' })).json();
    const list = document.paths['/api/things'].get;
    assert.deepEqual(list.parameters, [
      { name: 'color', in: 'query', required: false, description: 'Only things of this color.', schema: { type: 'string' } },
    ]);
    assert.deepEqual(Object.keys(list.responses), ['200', '400', '401', '404', '500']);
    const problem = (r: { content: Record<string, { schema: { properties: { code: { enum: string[] } } } }> }) =>
      r.content['application/problem+json']!.schema.properties.code.enum;
    assert.deepEqual(problem(list.responses['400']), ['invalid-query']);
    assert.deepEqual(problem(list.responses['404']), ['unknown-thing']);
    assert.equal(list.responses['200'].content['application/json'].schema.additionalProperties, false);
    const make = document.paths['/api/things'].post;
    assert.deepEqual(Object.keys(make.responses), ['201', '202', '400', '401', '403', '413', '415', '500']);
    assert.deepEqual(problem(make.responses['400']), ['invalid-query', 'invalid-body', 'bad-request']);
    assert.deepEqual(problem(make.responses['403']), ['forbidden']);
  });
});
