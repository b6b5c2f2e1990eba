// The seed service's routes as a JavaScript route component: the same WIT
// world (wasmhouse:clickhouse/route) and the same answers as the Rust guest in
// guest/, declared with the JavaScript router (wasmhouse.js). Built with
// componentize-js (see README.md in this directory).

import { Router, param, query, json, stream, queryFailure, server, serve } from './wasmhouse.js';

const SIMPLE_QUERY = 'SELECT 1 AS value';
const HEAVY_QUERY = 'SELECT count() AS c, sum(number) AS s FROM (SELECT number FROM system.numbers LIMIT 10000000)';
const ISOLATION_QUERY = 'SELECT sleep({delay:Float64}) AS slept';
const MAX_DELAY_S = 3;
const MAX_STREAM_ROWS = 100_000_000;

// Drawn on first use in an instance (not at build time, when the module is
// pre-initialised and has no randomness): wasmhouse gives every request a
// fresh instance.
let instanceId = null;
let instanceRequests = 0;

function currentInstanceId() {
  instanceId ??= Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('');
  return instanceId;
}

const round3 = (value) => Math.round(value * 1000) / 1000;

function clickhouseStatus() {
  try {
    const rows = query('SELECT version() AS version').rows();
    const endpoint = server();
    return json({ status: 'connected', version: rows[0]?.version ?? null, host: endpoint.host, port: endpoint.port });
  } catch (err) {
    return json({ status: 'disconnected', error: JSON.parse(queryFailure(err).body).error }, 503);
  }
}

function timedQuery(sql) {
  const started = performance.now();
  const result = query(sql).rows();
  return json({ query: sql, result, elapsed_ms: round3(performance.now() - started) });
}

function testIsolation({ params }) {
  instanceRequests += 1;
  const startedAt = new Date();
  const started = performance.now();
  query(ISOLATION_QUERY, { delay: params.delay }).text();
  return json({
    request_id: crypto.randomUUID(),
    instance_id: currentInstanceId(),
    instance_requests: instanceRequests,
    delay: params.delay,
    started_at: startedAt.toISOString(),
    finished_at: new Date().toISOString(),
    elapsed_s: round3((performance.now() - started) / 1000),
  });
}

// The runtime copies the rows straight into the response body.
const streamNumbers = ({ params }) => stream(query('SELECT number FROM system.numbers LIMIT {n:UInt64}', { n: params.n }));

const app = new Router({
  title: 'wasmhouse built-in routes (JavaScript)',
  version: '1.0.0',
  description: "The FastAPI + clickhouse-connect seed service's routes, each answered by a fresh WebAssembly instance.",
})
  .get('/health', () => json({ status: 'healthy' }), { summary: 'Liveness: answers without touching ClickHouse' })
  .get('/clickhouse-status', clickhouseStatus, { summary: "ClickHouse's version, or why it cannot be reached" })
  .get('/concurrent/simple-query', () => timedQuery(SIMPLE_QUERY), { summary: "SELECT 1, with ClickHouse's time", queries: true })
  .get('/concurrent/heavy-query', () => timedQuery(HEAVY_QUERY), { summary: 'count() and sum() over ten million numbers', queries: true })
  .get('/concurrent/test-isolation', testIsolation, {
    summary: 'Sleep in ClickHouse; shows that every request gets a fresh instance',
    query: [param.float('delay', { min: 0, max: MAX_DELAY_S, default: 1, description: 'Seconds to sleep in ClickHouse, from 0 to 3' })],
    queries: true,
  })
  .get('/stream/numbers', streamNumbers, {
    summary: 'Stream n rows of system.numbers as JSON lines',
    query: [param.uint('n', { max: MAX_STREAM_ROWS, default: 1000, description: 'How many rows, up to 100,000,000' })],
    queries: true,
  });

export const incomingHandler = serve(app);
