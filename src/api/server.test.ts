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
      assert.deepEqual(Object.keys(document.paths).sort(), ['/api/things', '/healthz']);
      assert.equal(document.paths['/api/things'].get.summary, 'The things.');
      assert.equal(document.paths['/api/things'].get.responses['200'].content['application/json'].schema.type, 'array');
      assert.equal(document.info.version, '9.9.9');
    } finally {
      await app.close();
    }
  });
});
