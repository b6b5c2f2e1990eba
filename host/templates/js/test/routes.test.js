// The routes' declarations, checked in Node (`npm test`): what each request
// would reach and the 404, 405 and 422 the router answers. The queries
// themselves run under `wasmhouse dev`. wit-stub.mjs stands in for the WIT
// imports, which exist only inside a WebAssembly runtime.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { app } from '../src/routes.js';

const request = (method, target) => {
  const [path, search = ''] = target.split('?');
  return { method, path, query: new URLSearchParams(search) };
};
const body = (response) => JSON.parse(response.body);

test('parameters are checked against their rules', () => {
  const tooMany = app.handle(request('GET', '/numbers?limit=5000'));
  assert.equal(tooMany.status, 422);
  assert.equal(body(tooMany).parameter, 'limit');
  assert.equal(body(tooMany).rule, 'must be at most 1000');
  assert.equal(app.handle(request('GET', '/numbers?offset=-1')).status, 422);
});

test('unknown paths and methods are refused', () => {
  assert.equal(app.handle(request('GET', '/nope')).status, 404);
  const post = app.handle(request('POST', '/numbers'));
  assert.equal(post.status, 405);
  assert.deepEqual(post.headers, [['allow', 'GET, HEAD']]);
});

test('the OpenAPI document lists the routes', () => {
  const doc = app.openapi();
  const limit = doc.paths['/numbers'].get.parameters[0];
  assert.equal(limit.name, 'limit');
  assert.equal(limit.schema.maximum, 1000);
  assert.equal(doc.paths['/hello/{name}'].get.parameters[0].in, 'path');
});
