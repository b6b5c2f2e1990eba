//! The API's description. Each route component describes its own routes by
//! answering `GET /.well-known/openapi.json` (below its route's prefix) with
//! an OpenAPI 3 document, the same way on wasmhouse and on Spin. The host
//! asks each live deployment once, then [`merge`]s the documents: paths go
//! under their route's prefix, component names that clash are renamed, and
//! what the host itself answers is added (API keys: 401/403; rate limits:
//! 429). The result is served at `/openapi.json` and browsed at `/docs`.

use serde_json::{Map, Value, json};

use crate::access::AccessRules;

/// Where a component describes its routes, below its prefix.
pub(crate) const COMPONENT_DOC_PATH: &str = "/.well-known/openapi.json";
/// Where the host serves the merged document.
pub(crate) const OPENAPI_PATH: &str = "/openapi.json";
/// Largest component document the host reads.
pub(crate) const MAX_COMPONENT_DOC: usize = 1 << 20;

/// HTTP methods an OpenAPI path item may hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One route as the document shows it.
pub(crate) struct RouteDoc<'a> {
    /// The route's name (its tag when the component gives none).
    pub(crate) name: &'a str,
    /// Its path prefix (`/`, `/reports`).
    pub(crate) prefix: &'a str,
    /// The live deployment's version and content hash.
    pub(crate) version: u64,
    /// The content hash of the live component.
    pub(crate) sha256: &'a str,
    /// Who may call it.
    pub(crate) access: &'a AccessRules,
    /// What the component said about itself, if anything.
    pub(crate) described: Option<&'a Value>,
}

/// Whether `doc` looks like an OpenAPI 3 document worth merging.
pub(crate) fn is_openapi3(doc: &Value) -> bool {
    doc.get("openapi")
        .and_then(Value::as_str)
        .is_some_and(|version| version.starts_with("3."))
        && doc.get("paths").is_some_and(Value::is_object)
}

/// The OpenAPI 3 document for `routes`, with the host's own answers.
pub(crate) fn merge(routes: &[RouteDoc<'_>]) -> Value {
    let mut paths = Map::new();
    let mut components: Map<String, Value> = host_components();
    let mut tags: Vec<Value> = Vec::new();
    let mut operation_ids = std::collections::HashSet::new();
    let mut listed = Vec::new();

    for route in routes {
        listed.push(json!({
            "name": route.name,
            "prefix": route.prefix,
            "version": route.version,
            "sha256": route.sha256,
            "api_key": route.access.api_key,
            "described": route.described.is_some(),
        }));
        let Some(doc) = route.described else {
            let operation = undescribed(route);
            paths
                .entry(route.prefix.to_owned())
                .or_insert_with(|| json!({ "get": operation }));
            continue;
        };
        let mut doc = doc.clone();
        let renames = rename_clashes(&doc, &components, route.name);
        if !renames.is_empty() {
            rewrite_refs(&mut doc, &renames);
        }
        if let Some(Value::Object(theirs)) = doc.get("components") {
            for (section, entries) in theirs {
                let Value::Object(entries) = entries else {
                    continue;
                };
                let ours = components
                    .entry(section.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(ours) = ours {
                    for (name, entry) in entries {
                        let name = renames
                            .get(&(section.clone(), name.clone()))
                            .cloned()
                            .unwrap_or_else(|| name.clone());
                        ours.entry(name).or_insert_with(|| entry.clone());
                    }
                }
            }
        }
        if let Some(Value::Array(theirs)) = doc.get("tags") {
            for tag in theirs {
                let name = tag.get("name");
                if !tags.iter().any(|known| known.get("name") == name) {
                    tags.push(tag.clone());
                }
            }
        }
        let Some(Value::Object(their_paths)) = doc.get_mut("paths") else {
            continue;
        };
        for (path, item) in std::mem::take(their_paths) {
            let Value::Object(mut item) = item else {
                continue;
            };
            for method in METHODS {
                if let Some(Value::Object(operation)) = item.get_mut(method) {
                    adapt_operation(operation, route, &mut operation_ids);
                }
            }
            paths
                .entry(join(route.prefix, &path))
                .or_insert(Value::Object(item));
        }
    }

    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "wasmhouse",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Routes served by WebAssembly components, a fresh instance per request. \
                Each route's component describes its own paths; the host adds its answers \
                for API keys (401, 403) and rate limits (429).",
        },
        "tags": tags,
        "paths": paths,
        "components": components,
        "x-wasmhouse-routes": listed,
    })
}

/// `prefix` + `path`, with one slash between them; a component's `/` is
/// the prefix itself (`/api` + `/` = `/api`, the path a request takes).
fn join(prefix: &str, path: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    if path == "/" && !prefix.is_empty() {
        prefix.to_owned()
    } else if path.starts_with('/') {
        format!("{prefix}{path}")
    } else {
        format!("{prefix}/{path}")
    }
}

/// The operation shown for a route whose component says nothing about itself.
fn undescribed(route: &RouteDoc<'_>) -> Value {
    let mut operation = Map::new();
    operation.insert("tags".into(), json!([route.name]));
    operation.insert(
        "summary".into(),
        json!(format!(
            "Route {:?}: paths under {} (its component does not describe them)",
            route.name, route.prefix
        )),
    );
    operation.insert(
        "responses".into(),
        json!({ "default": { "description": "Whatever the component answers" } }),
    );
    let mut ids = std::collections::HashSet::new();
    adapt_operation(&mut operation, route, &mut ids);
    Value::Object(operation)
}

/// Tag an operation with its route, keep its id unique, and add what the
/// host answers for the route's access rules.
fn adapt_operation(
    operation: &mut Map<String, Value>,
    route: &RouteDoc<'_>,
    ids: &mut std::collections::HashSet<String>,
) {
    if !operation.get("tags").is_some_and(Value::is_array) {
        operation.insert("tags".into(), json!([route.name]));
    }
    if let Some(id) = operation.get("operationId").and_then(Value::as_str) {
        let mut unique = id.to_owned();
        if !ids.insert(unique.clone()) {
            unique = format!("{}_{id}", route.name);
            ids.insert(unique.clone());
            operation.insert("operationId".into(), json!(unique));
        }
    }
    let responses = operation
        .entry("responses")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(responses) = responses else {
        return;
    };
    let mut add = |status: &str, name: &str| {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| json!({ "$ref": format!("#/components/responses/{name}") }));
    };
    add("503", "WasmhouseOverloaded");
    if route.access.api_key {
        add("401", "WasmhouseUnauthorized");
        add("403", "WasmhouseForbidden");
        operation.insert(
            "security".into(),
            json!([{ "wasmhouseBearer": [] }, { "wasmhouseApiKey": [] }]),
        );
    }
    if (route.access.per_key.is_some() || route.access.per_client.is_some())
        && let Some(Value::Object(responses)) = operation.get_mut("responses")
    {
        responses
            .entry("429")
            .or_insert_with(|| json!({ "$ref": "#/components/responses/WasmhouseRateLimited" }));
    }
}

/// Component entries of `doc` whose names are taken by a different entry:
/// (section, name) → the new name, prefixed with the route's.
fn rename_clashes(
    doc: &Value,
    known: &Map<String, Value>,
    route: &str,
) -> std::collections::HashMap<(String, String), String> {
    let mut renames = std::collections::HashMap::new();
    let Some(Value::Object(sections)) = doc.get("components") else {
        return renames;
    };
    for (section, entries) in sections {
        let (Value::Object(entries), Some(Value::Object(ours))) = (entries, known.get(section))
        else {
            continue;
        };
        for (name, entry) in entries {
            if ours.get(name).is_some_and(|existing| existing != entry) {
                let renamed: String = format!("{route}_{name}")
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                renames.insert((section.clone(), name.clone()), renamed);
            }
        }
    }
    renames
}

/// Point every `$ref` to a renamed component at its new name.
fn rewrite_refs(value: &mut Value, renames: &std::collections::HashMap<(String, String), String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "$ref"
                    && let Value::String(target) = child
                    && let Some(rest) = target.strip_prefix("#/components/")
                    && let Some((section, name)) = rest.split_once('/')
                    && let Some(renamed) = renames.get(&(section.to_owned(), name.to_owned()))
                {
                    *target = format!("#/components/{section}/{renamed}");
                } else {
                    rewrite_refs(child, renames);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                rewrite_refs(item, renames);
            }
        }
        _ => {}
    }
}

/// What the host answers itself, as OpenAPI components.
fn host_components() -> Map<String, Value> {
    let error = json!({ "$ref": "#/components/schemas/WasmhouseError" });
    let rate_headers = json!({
        "RateLimit-Limit": { "description": "Requests allowed per window", "schema": { "type": "integer" } },
        "RateLimit-Remaining": { "description": "Requests left now", "schema": { "type": "integer" } },
        "RateLimit-Reset": { "description": "Seconds until the bucket is full again", "schema": { "type": "integer" } },
    });
    let mut limited_headers = rate_headers.clone();
    if let Value::Object(headers) = &mut limited_headers {
        headers.insert(
            "Retry-After".into(),
            json!({ "description": "Seconds to wait before retrying", "schema": { "type": "integer" } }),
        );
    }
    let components = json!({
        "schemas": {
            "WasmhouseError": {
                "type": "object",
                "description": "An error the host answers itself",
                "required": ["error", "kind", "request_id"],
                "properties": {
                    "error": { "type": "string", "description": "What went wrong, for people" },
                    "kind": { "type": "string", "description": "What went wrong, for programs" },
                    "request_id": { "type": "string", "description": "The X-Request-Id of the request" },
                },
            },
        },
        "responses": {
            "WasmhouseUnauthorized": {
                "description": "No API key, or an unknown one (kind `unauthorized`)",
                "headers": { "WWW-Authenticate": { "schema": { "type": "string" } } },
                "content": { "application/json": { "schema": error } },
            },
            "WasmhouseForbidden": {
                "description": "The API key may not call this route (kind `forbidden`)",
                "content": { "application/json": { "schema": error } },
            },
            "WasmhouseRateLimited": {
                "description": "Over the route's rate limit (kind `rate_limited`)",
                "headers": limited_headers,
                "content": { "application/json": { "schema": error } },
            },
            "WasmhouseOverloaded": {
                "description": "Every instance slot is busy, or ClickHouse cannot be reached (kinds `overloaded`, `clickhouse_unavailable`)",
                "content": { "application/json": { "schema": { "type": "object" } } },
            },
        },
        "securitySchemes": {
            "wasmhouseBearer": { "type": "http", "scheme": "bearer", "description": "An API key as a bearer token" },
            "wasmhouseApiKey": { "type": "apiKey", "in": "header", "name": "X-API-Key" },
        },
    });
    match components {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(paths: Value, components: Value) -> Value {
        json!({ "openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": paths, "components": components })
    }

    #[test]
    fn a_components_root_is_its_prefix() {
        assert_eq!(join("/api", "/"), "/api");
        assert_eq!(join("/", "/"), "/");
        assert_eq!(join("/api/", "/x"), "/api/x");
        assert_eq!(join("/api", "x"), "/api/x");
    }

    #[test]
    fn paths_go_under_their_prefix_and_clashing_names_are_renamed() {
        let error_a = json!({ "type": "object" });
        let error_b = json!({ "type": "string" });
        let a = doc(
            json!({ "/x": { "get": { "operationId": "x", "responses": { "200": { "$ref": "#/components/schemas/Error" } } } } }),
            json!({ "schemas": { "Error": error_a } }),
        );
        let b = doc(
            json!({ "/x": { "get": { "operationId": "x", "responses": { "200": { "$ref": "#/components/schemas/Error" } } } } }),
            json!({ "schemas": { "Error": error_b } }),
        );
        let open = AccessRules::default();
        let keyed = AccessRules {
            api_key: true,
            ..AccessRules::default()
        };
        let merged = merge(&[
            RouteDoc {
                name: "a",
                prefix: "/",
                version: 1,
                sha256: "aa",
                access: &open,
                described: Some(&a),
            },
            RouteDoc {
                name: "b",
                prefix: "/b/",
                version: 2,
                sha256: "bb",
                access: &keyed,
                described: Some(&b),
            },
        ]);
        let paths = &merged["paths"];
        assert_eq!(paths["/x"]["get"]["operationId"], "x");
        assert_eq!(paths["/b/x"]["get"]["operationId"], "b_x");
        assert_eq!(
            paths["/b/x"]["get"]["responses"]["200"]["$ref"],
            "#/components/schemas/b_Error"
        );
        assert_eq!(merged["components"]["schemas"]["b_Error"], error_b);
        assert_eq!(merged["components"]["schemas"]["Error"], error_a);
        assert!(paths["/b/x"]["get"]["responses"]["401"].is_object());
        assert!(paths["/x"]["get"]["responses"].get("401").is_none());
        assert_eq!(paths["/b/x"]["get"]["tags"], json!(["b"]));
    }

    #[test]
    fn an_undescribed_route_is_listed_by_its_prefix() {
        let open = AccessRules::default();
        let merged = merge(&[RouteDoc {
            name: "quiet",
            prefix: "/quiet",
            version: 1,
            sha256: "cc",
            access: &open,
            described: None,
        }]);
        assert!(merged["paths"]["/quiet"]["get"]["summary"].is_string());
        assert_eq!(merged["x-wasmhouse-routes"][0]["described"], false);
    }

    #[test]
    fn only_openapi_3_documents_are_taken() {
        assert!(is_openapi3(&json!({ "openapi": "3.1.0", "paths": {} })));
        assert!(!is_openapi3(&json!({ "swagger": "2.0", "paths": {} })));
        assert!(!is_openapi3(&json!({ "openapi": "3.0.0" })));
        assert!(!is_openapi3(&json!("nope")));
    }
}
