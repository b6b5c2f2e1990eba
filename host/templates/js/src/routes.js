// {{name}}: HTTP routes over ClickHouse. wasmhouse gives every request a
// fresh, sandboxed instance of this component.
//
// Each route declares its method, its path pattern and its parameters with
// their rules; the router answers 404, 405 and 422 for them and describes
// them at /docs (from /.well-known/openapi.json, generated from the same
// declarations).

import { Router, param, query, json } from '../lib/wasmhouse.js';

export const app = new Router({
  title: '{{name}}',
  version: '0.1.0',
  description: 'Routes over ClickHouse, served by wasmhouse.',
});

// GET /hello/{name}: the name arrives percent-decoded and goes to ClickHouse
// as data ({name:String}), never as SQL.
app.get('/hello/{name}', ({ params }) => {
  const rows = query("SELECT concat('Hello, ', {name:String}, '!') AS greeting", { name: params.name }).rows();
  return json(rows[0] ?? null);
}, {
  summary: 'A greeting, written by ClickHouse',
  path: [param.string('name', { maxLength: 100, description: 'Who to greet' })],
  queries: true,
});

// GET /numbers?limit=N&offset=M. A table of your own reads the same way:
// SELECT user, count() AS n FROM events GROUP BY user ORDER BY n DESC LIMIT {limit:UInt32}
app.get('/numbers', ({ params }) => {
  const rows = query(
    'SELECT number, number * number AS square FROM system.numbers LIMIT {limit:UInt32} OFFSET {offset:UInt32}',
    { limit: params.limit, offset: params.offset },
  ).rows();
  return json(rows);
}, {
  summary: 'Numbers and their squares, a page at a time',
  query: [
    param.uint('limit', { min: 1, max: 1000, default: 10, description: 'How many rows, 1 to 1000' }),
    param.uint('offset', { max: 1000000, default: 0, description: 'Rows to skip first' }),
  ],
  queries: true,
});
