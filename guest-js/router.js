// Routes declared once: matched, validated and described as OpenAPI from the
// same declarations. Plain JavaScript with no imports, so it runs (and is
// tested) under Node.js as well as inside a component; `wasmhouse.js` plugs
// it into wasi:http and the ClickHouse query interface.
//
//   const app = new Router({ title: 'events', version: '1.0.0' });
//   app.get('/top-users', topUsers, { query: [param.uint('limit', { min: 1, max: 1000, default: 10 })], queries: true });
//   app.get('/events/{user}', events);
//
// A handler gets `call` ({ params, request }) and returns a response
// ({ status, headers, body }); see `wasmhouse.js` for the helpers. A path no
// route has is 404, a method it does not take 405 with Allow, a parameter
// missing or out of its rule 422 with a JSON body naming it and the rule.

export const OPENAPI_PATH = '/.well-known/openapi.json';

function declare(kind, name, options = {}) {
  const required = options.default === undefined && !options.optional;
  return { kind, name, required, ...options };
}

/** Parameter declarations: `param.uint('limit', { min: 1, max: 100, default: 10, description })`. */
export const param = {
  int: (name, options) => declare('int', name, options),
  uint: (name, options) => declare('uint', name, { min: 0, ...options }),
  float: (name, options) => declare('float', name, options),
  string: (name, options) => declare('string', name, options),
  bool: (name, options) => declare('bool', name, options),
  date: (name, options) => declare('date', name, options),
  datetime: (name, options) => declare('datetime', name, options),
  oneOf: (name, values, options) => declare('oneOf', name, { values, ...options }),
};

const INTEGER = /^[+-]?\d+$/;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function checkDate(text) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!match) return 'must be a date, YYYY-MM-DD';
  const [year, month, day] = match.slice(1).map(Number);
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  if (days === undefined) return `month ${month} does not exist`;
  if (day === 0 || day > days) return `day ${day} does not exist in ${match[1]}-${match[2]}`;
  return null;
}

/** Check `raw` (null: absent) against `p`: `{ value }` or `{ rule }`. */
export function check(p, raw) {
  if (raw === null || raw === undefined) {
    if (p.default !== undefined) return { value: p.default };
    return p.required ? { rule: 'is required' } : { value: undefined };
  }
  const text = raw.trim();
  const bounded = (n) => {
    if (p.min !== undefined && n < p.min) return { rule: `must be at least ${p.min}` };
    if (p.max !== undefined && n > p.max) return { rule: `must be at most ${p.max}` };
    return { value: n };
  };
  switch (p.kind) {
    case 'int':
      return INTEGER.test(text) ? bounded(Number(text)) : { rule: 'must be an integer' };
    case 'uint':
      return /^\+?\d+$/.test(text) ? bounded(Number(text)) : { rule: 'must be a non-negative integer' };
    case 'float':
      return DECIMAL.test(text) ? bounded(Number(text)) : { rule: 'must be a number' };
    case 'string':
      if (p.maxLength !== undefined && [...raw].length > p.maxLength) return { rule: `must be at most ${p.maxLength} characters` };
      return { value: raw };
    case 'bool': {
      const lower = text.toLowerCase();
      if (lower === 'true' || lower === '1') return { value: true };
      if (lower === 'false' || lower === '0') return { value: false };
      return { rule: 'must be true or false' };
    }
    case 'date': {
      const rule = checkDate(text);
      return rule ? { rule } : { value: text };
    }
    case 'datetime': {
      const [date, time] = text.split(/[ T]/);
      const rule = checkDate(date ?? '') ?? (/^([01]\d|2[0-3]):[0-5]\d:[0-5]\d$/.test(time ?? '') ? null : 'must be a date and time, YYYY-MM-DD hh:mm:ss');
      return rule ? { rule } : { value: `${date} ${time}` };
    }
    case 'oneOf':
      return p.values.includes(raw) ? { value: raw } : { rule: `must be one of ${p.values.join(', ')}` };
    default:
      return { rule: `has an unknown type ${p.kind}` };
  }
}

function openapiParam(p, location) {
  const types = {
    int: ['integer', 'int64'], uint: ['integer', 'int64'], float: ['number'], string: ['string'],
    bool: ['boolean'], date: ['string', 'date'], datetime: ['string', 'date-time'], oneOf: ['string'],
  };
  const [type, format] = types[p.kind];
  const schema = { type };
  if (format) schema.format = format;
  if (p.kind === 'oneOf') schema.enum = p.values;
  if (p.min !== undefined) schema.minimum = p.min;
  if (p.max !== undefined) schema.maximum = p.max;
  if (p.maxLength !== undefined) schema.maxLength = p.maxLength;
  if (p.default !== undefined) schema.default = p.default;
  const out = { name: p.name, in: location, required: location === 'path' || p.required, schema };
  if (p.description) out.description = p.description;
  return out;
}

function decodeSegment(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

/** An error response: `{ error, kind }` and whatever `extra` adds. */
export function errorResponse(status, kind, message, extra = {}, headers = []) {
  return { status, headers, body: JSON.stringify({ error: message, kind, ...extra }), contentType: 'application/json' };
}

const invalid = (name, rule) => errorResponse(422, 'invalid_parameter', `${name} ${rule}`, { parameter: name, rule });

export class Router {
  constructor({ title = 'routes', version = '1.0.0', description } = {}) {
    this.info = { title, version, ...(description ? { description } : {}) };
    this.routes = [];
    this.schemas = {};
    this.tags = [];
  }

  /** A tag routes may be grouped under. */
  tag(name, description) {
    this.tags.push({ name, description });
    return this;
  }

  /** A schema routes may `$ref` as `#/components/schemas/{name}`. */
  schema(name, schema) {
    this.schemas[name] = schema;
    return this;
  }

  /**
   * `method pattern` (`/events/{user}`) answered by `handler(call)`.
   * Options: `query` and `path` (parameter declarations), `summary`,
   * `description`, `tags`, `operationId`, `responses` (OpenAPI response
   * objects by status), `body` (a JSON body's schema), `queries` (it
   * queries ClickHouse: 502, 503 and 504 are listed).
   */
  route(method, pattern, handler, options = {}) {
    const segments = pattern.split('/').filter((s) => s.length > 0).map((s) => {
      const match = /^\{(.+)\}$/.exec(s);
      return match ? { param: match[1] } : { literal: s };
    });
    const declared = new Map((options.path ?? []).map((p) => [p.name, { ...p, required: true }]));
    const pathParams = segments.filter((s) => s.param).map((s) => declared.get(s.param) ?? param.string(s.param));
    this.routes.push({ method: method.toUpperCase(), pattern, segments, pathParams, queryParams: options.query ?? [], handler, options });
    return this;
  }

  get(pattern, handler, options) { return this.route('GET', pattern, handler, options); }
  post(pattern, handler, options) { return this.route('POST', pattern, handler, options); }
  put(pattern, handler, options) { return this.route('PUT', pattern, handler, options); }
  delete(pattern, handler, options) { return this.route('DELETE', pattern, handler, options); }
  patch(pattern, handler, options) { return this.route('PATCH', pattern, handler, options); }

  /**
   * Answer a request: `{ method, path, query }` (path below the route's
   * prefix, query a URLSearchParams-like `get(name)`), plus whatever the
   * handler should see as `call.request`.
   */
  handle(request) {
    const { method, path } = request;
    if (path === OPENAPI_PATH && (method === 'GET' || method === 'HEAD')) {
      return { status: 200, headers: [], body: JSON.stringify(this.openapi()), contentType: 'application/json' };
    }
    const parts = path.split('/').filter((s) => s.length > 0);
    const allowed = [];
    for (const route of this.routes) {
      if (route.segments.length !== parts.length) continue;
      const raw = {};
      let matched = true;
      for (let i = 0; i < parts.length && matched; i++) {
        const segment = route.segments[i];
        if (segment.literal !== undefined) {
          matched = segment.literal === parts[i];
        } else {
          const decoded = decodeSegment(parts[i]);
          matched = decoded !== null;
          raw[segment.param] = decoded;
        }
      }
      if (!matched) continue;
      if (route.method !== method && !(route.method === 'GET' && method === 'HEAD')) {
        allowed.push(route.method, ...(route.method === 'GET' ? ['HEAD'] : []));
        continue;
      }
      const params = {};
      for (const p of route.pathParams) {
        const checked = check(p, raw[p.name]);
        if (checked.rule) return invalid(p.name, checked.rule);
        params[p.name] = checked.value;
      }
      for (const p of route.queryParams) {
        const checked = check(p, request.query.get(p.name));
        if (checked.rule) return invalid(p.name, checked.rule);
        if (checked.value !== undefined) params[p.name] = checked.value;
      }
      return route.handler({ params, request });
    }
    if (allowed.length === 0) return errorResponse(404, 'not_found', `no route for ${path}`);
    const allow = allowed.join(', ');
    return errorResponse(405, 'method_not_allowed', `${path} takes ${allow}, not ${method}`, {}, [['allow', allow]]);
  }

  /** The routes as an OpenAPI 3 document, paths below the component's prefix. */
  openapi() {
    const paths = {};
    const ref = (name) => ({ $ref: `#/components/responses/${name}` });
    for (const route of this.routes) {
      const o = route.options;
      const operation = {};
      if (o.tags) operation.tags = o.tags;
      if (o.operationId) operation.operationId = o.operationId;
      operation.summary = o.summary ?? `${route.method} ${route.pattern}`;
      if (o.description) operation.description = o.description;
      const parameters = [...route.pathParams.map((p) => openapiParam(p, 'path')), ...route.queryParams.map((p) => openapiParam(p, 'query'))];
      if (parameters.length > 0) operation.parameters = parameters;
      if (o.body) operation.requestBody = { required: true, content: { 'application/json': { schema: o.body } } };
      const responses = { ...(o.responses ?? {}) };
      responses['200'] ??= { description: 'Answered' };
      responses['405'] = ref('MethodNotAllowed');
      if (parameters.length > 0 || o.body) responses['422'] = ref('InvalidParameter');
      if (o.queries) {
        responses['502'] ??= ref('ClickHouseError');
        responses['503'] ??= ref('ClickHouseUnavailable');
        responses['504'] ??= ref('Timeout');
      }
      operation.responses = responses;
      paths[route.pattern] ??= {};
      paths[route.pattern][route.method.toLowerCase()] = operation;
    }
    const error = (description) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
    const doc = { openapi: '3.0.3', info: this.info };
    if (this.tags.length > 0) doc.tags = this.tags;
    doc.paths = paths;
    doc.components = {
      schemas: {
        Error: {
          type: 'object',
          required: ['error', 'kind'],
          properties: {
            error: { type: 'string', description: 'What went wrong, in words' },
            kind: { type: 'string', description: 'What went wrong, for programs' },
            parameter: { type: 'string', description: 'The parameter at fault (invalid_parameter)' },
            rule: { type: 'string', description: 'The rule it breaks (invalid_parameter)' },
          },
        },
        ...this.schemas,
      },
      responses: {
        InvalidParameter: error('A parameter is missing or breaks its rule (kind `invalid_parameter`, with `parameter` and `rule`)'),
        MethodNotAllowed: error('The path takes other methods, listed in `Allow` (kind `method_not_allowed`)'),
        ClickHouseError: error('ClickHouse refused the query (kind `clickhouse_error`)'),
        ClickHouseUnavailable: error('ClickHouse cannot be reached (kind `clickhouse_unavailable`)'),
        Timeout: error('The query ran past the route\'s time limit (kind `timeout`)'),
      },
    };
    return doc;
  }
}
