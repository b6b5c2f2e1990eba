// The seed service's routes as a JavaScript route component: the same WIT
// world (wasmhouse:clickhouse/route) and the same answers as the Rust guest in
// guest/. Built with componentize-js (see README.md in this directory).

import { execute, server } from 'wasmhouse:clickhouse/query@0.1.0';
import { Fields, OutgoingBody, OutgoingResponse, ResponseOutparam } from 'wasi:http/types@0.2.6';

const SIMPLE_QUERY = 'SELECT 1 AS value';
const HEAVY_QUERY = 'SELECT count() AS c, sum(number) AS s FROM (SELECT number FROM system.numbers LIMIT 10000000)';
const ISOLATION_QUERY = 'SELECT sleep({delay:Float64}) AS slept';
const MAX_DELAY_S = 3;
const MAX_STREAM_ROWS = 100_000_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// Drawn on first use in an instance (not at build time, when the module is
// pre-initialised and has no randomness): wasmhouse gives every request a
// fresh instance.
let instanceId = null;
let instanceRequests = 0;

function currentInstanceId() {
  instanceId ??= Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('');
  return instanceId;
}

/** Send a response; `body` is a string, or a function writing to the stream. */
function respond(out, status, contentType, body, extraHeaders = []) {
  const headers = new Fields();
  headers.append('content-type', encoder.encode(contentType));
  for (const [name, value] of extraHeaders) headers.append(name, encoder.encode(value));
  const response = new OutgoingResponse(headers);
  response.setStatusCode(status);
  const outgoing = response.body();
  ResponseOutparam.set(out, { tag: 'ok', val: response });
  const stream = outgoing.write();
  let complete = true;
  try {
    if (typeof body === 'function') {
      body(stream);
    } else {
      writeAll(stream, encoder.encode(body));
    }
  } catch {
    complete = false;
  }
  stream[Symbol.dispose]();
  // An unfinished body tells the client the response was cut short.
  if (complete) OutgoingBody.finish(outgoing, undefined);
}

function writeAll(stream, bytes) {
  let offset = 0;
  while (offset < bytes.length) {
    const room = Number(stream.checkWrite());
    if (room === 0) {
      stream.subscribe().block();
      continue;
    }
    const end = Math.min(bytes.length, offset + room);
    stream.write(bytes.subarray(offset, end));
    offset = end;
  }
  stream.blockingFlush();
}

const json = (out, status, value, headers) => respond(out, status, 'application/json', JSON.stringify(value), headers);
const error = (out, status, kind, message, headers) => json(out, status, { error: message, kind }, headers);

/** The WIT error variant of a failed query: status, kind and message. */
function queryFailure(err) {
  const payload = err && err.payload;
  if (!payload || !payload.tag) return [500, 'internal', String(err)];
  switch (payload.tag) {
    case 'server': return [502, 'clickhouse_error', `ClickHouse error ${payload.val.code}: ${payload.val.message}`];
    case 'unavailable': return [503, 'clickhouse_unavailable', `ClickHouse unavailable: ${payload.val}`];
    case 'timeout': return [504, 'timeout', 'query timed out'];
    case 'refused': return [403, 'refused', `query refused: ${payload.val}`];
    case 'invalid-parameter': return [500, 'invalid_parameter', `invalid query parameter: ${payload.val}`];
    default: return [500, 'internal', JSON.stringify(payload)];
  }
}

function run(sql, params = []) {
  return execute(sql, { params, settings: [], format: undefined });
}

function collect(rows) {
  let text = '';
  for (;;) {
    const chunk = rows.next();
    if (chunk === undefined) return text;
    text += decoder.decode(chunk, { stream: true });
  }
}

const jsonRows = (text) => text.split('\n').filter((line) => line.length > 0).map((line) => JSON.parse(line));
const round3 = (value) => Math.round(value * 1000) / 1000;

function health(out) {
  json(out, 200, { status: 'healthy' });
}

function clickhouseStatus(out) {
  try {
    const rows = jsonRows(collect(run('SELECT version() AS version')));
    const endpoint = server();
    json(out, 200, { status: 'connected', version: rows[0]?.version ?? null, host: endpoint.host, port: endpoint.port });
  } catch (err) {
    json(out, 503, { status: 'disconnected', error: queryFailure(err)[2] });
  }
}

function timedQuery(out, sql) {
  const started = performance.now();
  try {
    const result = jsonRows(collect(run(sql)));
    json(out, 200, { query: sql, result, elapsed_ms: round3(performance.now() - started) });
  } catch (err) {
    const [status, kind, message] = queryFailure(err);
    error(out, status, kind, message);
  }
}

function parseDelay(raw) {
  if (raw === null) return 1;
  const trimmed = raw.trim();
  // Like Rust's f64 parser: a plain decimal number, nothing else.
  const delay = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(trimmed) ? Number(trimmed) : NaN;
  if (!(delay >= 0 && delay <= MAX_DELAY_S)) {
    throw new Error(`query parameter delay must be a number of seconds from 0 to ${MAX_DELAY_S}, got ${JSON.stringify(raw)}`);
  }
  return delay;
}

function testIsolation(out, query) {
  let delay;
  try {
    delay = parseDelay(query.get('delay'));
  } catch (err) {
    return error(out, 422, 'invalid_parameter', err.message);
  }
  instanceRequests += 1;
  const startedAt = new Date();
  const started = performance.now();
  try {
    collect(run(ISOLATION_QUERY, [['delay', String(delay)]]));
  } catch (err) {
    const [status, kind, message] = queryFailure(err);
    return error(out, status, kind, message);
  }
  json(out, 200, {
    request_id: crypto.randomUUID(),
    instance_id: currentInstanceId(),
    instance_requests: instanceRequests,
    delay,
    started_at: startedAt.toISOString(),
    finished_at: new Date().toISOString(),
    elapsed_s: round3((performance.now() - started) / 1000),
  });
}

function streamNumbers(out, query) {
  const raw = query.get('n');
  const n = raw === null ? 1000 : /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 0 && n <= MAX_STREAM_ROWS)) {
    return error(out, 422, 'invalid_parameter', `query parameter n must be a whole number up to ${MAX_STREAM_ROWS}, got ${JSON.stringify(raw)}`);
  }
  let rows;
  try {
    // n is a checked whole number: safe to format into LIMIT, which takes no
    // typed placeholder on servers before 19.11.
    rows = run(`SELECT number FROM system.numbers LIMIT ${n}`, []);
  } catch (err) {
    const [status, kind, message] = queryFailure(err);
    return error(out, status, kind, message);
  }
  // The runtime copies the rows straight into the response body.
  respond(out, 200, 'application/x-ndjson', (stream) => rows.forward(stream));
}

const ROUTES = {
  '/health': health,
  '/clickhouse-status': clickhouseStatus,
  '/concurrent/simple-query': (out) => timedQuery(out, SIMPLE_QUERY),
  '/concurrent/heavy-query': (out) => timedQuery(out, HEAVY_QUERY),
  '/concurrent/test-isolation': testIsolation,
  '/stream/numbers': streamNumbers,
};

export const incomingHandler = {
  handle(request, out) {
    const target = request.pathWithQuery() ?? '/';
    const [path, search = ''] = target.split('?', 2);
    const route = ROUTES[path];
    if (!route) return error(out, 404, 'not_found', `no route for ${path}`);
    const method = request.method();
    if (method.tag !== 'get' && method.tag !== 'head') {
      const name = method.tag === 'other' ? method.val : method.tag.toUpperCase();
      return error(out, 405, 'method_not_allowed', `use GET for ${path}, not ${name}`, [['allow', 'GET, HEAD']]);
    }
    route(out, new URLSearchParams(search));
  },
};
