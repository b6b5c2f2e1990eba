// wasmhouse route components in JavaScript: the router (router.js) on
// wasi:http, and ClickHouse queries through wasmhouse:clickhouse/query.
//
//   import { Router, param, query, json, serve } from './wasmhouse.js';
//
//   const app = new Router({ title: 'events', version: '1.0.0' });
//   app.get('/top-users', ({ params }) => json(query(
//     'SELECT user, count() AS n FROM events GROUP BY user ORDER BY n DESC LIMIT {limit:UInt32}',
//     { limit: params.limit }).rows()),
//     { query: [param.uint('limit', { min: 1, max: 1000, default: 10 })], queries: true });
//   export const incomingHandler = serve(app);
//
// Paths are matched below the route's prefix (`spin-path-info`), so the
// component works at `/` and under any prefix, on every runtime. A failed
// query thrown out of a handler becomes the JSON error that fits it (502,
// 503, 504, 403, 422); anything else thrown is a 500 with its message.

import { execute, executeCached, server, replicas } from 'wasmhouse:clickhouse/query@0.1.0';
import { Fields, OutgoingBody, OutgoingResponse, ResponseOutparam } from 'wasi:http/types@0.2.6';

import { Router, param, check, errorResponse, OPENAPI_PATH } from './router.js';

export { Router, param, check, errorResponse, OPENAPI_PATH, server, replicas };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A JSON response. */
export function json(value, status = 200, headers = []) {
  return { status, headers, body: JSON.stringify(value), contentType: 'application/json' };
}

/** A JSON response from text that is JSON already. */
export function jsonText(text, status = 200, headers = []) {
  return { status, headers, body: text, contentType: 'application/json' };
}

/** A plain-text response. */
export function text(body, status = 200, contentType = 'text/plain; charset=utf-8', headers = []) {
  return { status, headers, body, contentType };
}

/** A ClickHouse result streamed to the client without passing through the component. */
export function stream(result, contentType = 'application/x-ndjson', status = 200, headers = []) {
  return { status, headers, rows: result.handle, contentType };
}

/** A failed query as the JSON error that fits it: status, kind and message. */
export function queryFailure(err) {
  const payload = err && err.payload;
  if (!payload || !payload.tag) return errorResponse(500, 'internal', String(err && err.message ? err.message : err));
  switch (payload.tag) {
    case 'server': return errorResponse(502, 'clickhouse_error', `ClickHouse error ${payload.val.code}: ${payload.val.message}`);
    case 'unavailable': return errorResponse(503, 'clickhouse_unavailable', `ClickHouse unavailable: ${payload.val}`);
    case 'timeout': return errorResponse(504, 'timeout', 'query timed out');
    case 'refused': return errorResponse(403, 'refused', `query refused: ${payload.val}`);
    case 'invalid-parameter': return errorResponse(422, 'invalid_parameter', `invalid query parameter: ${payload.val}`);
    default: return errorResponse(500, 'internal', JSON.stringify(payload));
  }
}

/** A started query: read its rows (`rows()`, `text()`) or stream it (`stream(result)`). */
class Result {
  constructor(handle) {
    this.handle = handle;
  }

  /** The whole result as text. */
  text() {
    let out = '';
    for (;;) {
      const chunk = this.handle.next();
      if (chunk === undefined) return out + decoder.decode();
      out += decoder.decode(chunk, { stream: true });
    }
  }

  /** The rows of a JSONEachRow result, parsed. */
  rows() {
    return this.text().split('\n').filter((line) => line.length > 0).map((line) => JSON.parse(line));
  }
}

/**
 * Run `sql` with `{name:Type}` placeholders bound to `params` (an object or
 * `[name, value]` pairs; the runtime checks each value against its type).
 * Options: `settings`, `format`, `cacheSeconds`.
 */
export function query(sql, params = {}, options = {}) {
  const pairs = Array.isArray(params) ? params : Object.entries(params);
  const opts = {
    params: pairs.map(([name, value]) => [name, String(value)]),
    settings: Object.entries(options.settings ?? {}).map(([name, value]) => [name, String(value)]),
    format: options.format,
  };
  const handle = options.cacheSeconds
    ? executeCached(sql, opts, { ttlSeconds: options.cacheSeconds })
    : execute(sql, opts);
  return new Result(handle);
}

function header(request, name) {
  const values = request.headers().get(name);
  return values.length > 0 ? decoder.decode(values[0]) : null;
}

function writeAll(stream, bytes) {
  // WASI's own blocking write takes at most 4096 bytes a call.
  for (let offset = 0; offset < bytes.length; offset += 4096) {
    stream.blockingWriteAndFlush(bytes.subarray(offset, offset + 4096));
  }
}

function send(out, response) {
  const headers = new Fields();
  headers.append('content-type', encoder.encode(response.contentType ?? 'application/json'));
  for (const [name, value] of response.headers ?? []) headers.append(name, encoder.encode(value));
  const outgoing = new OutgoingResponse(headers);
  outgoing.setStatusCode(response.status ?? 200);
  const body = outgoing.body();
  ResponseOutparam.set(out, { tag: 'ok', val: outgoing });
  const stream = body.write();
  let complete = true;
  try {
    if (response.rows) {
      response.rows.forward(stream);
    } else if (response.body !== undefined) {
      writeAll(stream, typeof response.body === 'string' ? encoder.encode(response.body) : response.body);
    }
  } catch {
    complete = false;
  }
  stream[Symbol.dispose]();
  // An unfinished body tells the client the response was cut short.
  if (complete) OutgoingBody.finish(body, undefined);
}

/** The request body, whole (at most 16 MiB). */
function readBody(request) {
  const input = request.consume().stream();
  const parts = [];
  let size = 0;
  for (;;) {
    let chunk;
    try {
      chunk = input.blockingRead(65536n);
    } catch (err) {
      if (err && err.payload && err.payload.tag === 'closed') break;
      throw err;
    }
    size += chunk.length;
    if (size > 16 * 1024 * 1024) throw new Error('the request body is over 16 MiB');
    parts.push(chunk);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    bytes.set(part, offset);
    offset += part.length;
  }
  return bytes;
}

const METHODS = { get: 'GET', head: 'HEAD', post: 'POST', put: 'PUT', delete: 'DELETE', patch: 'PATCH', options: 'OPTIONS', connect: 'CONNECT', trace: 'TRACE' };

/** `app` as the component's `wasi:http/incoming-handler`. */
export function serve(app) {
  return {
    handle(request, out) {
      const target = request.pathWithQuery() ?? '/';
      const [fullPath, search = ''] = target.split('?', 2);
      const tag = request.method();
      const method = tag.tag === 'other' ? tag.val : METHODS[tag.tag];
      const path = header(request, 'spin-path-info') ?? fullPath;
      let response;
      try {
        response = app.handle({
          method,
          path,
          query: new URLSearchParams(search),
          header: (name) => header(request, name),
          body: () => readBody(request),
          json: () => JSON.parse(decoder.decode(readBody(request))),
          raw: request,
        });
      } catch (err) {
        response = queryFailure(err);
      }
      send(out, response);
    },
  };
}
