//! The admin API: deploy, list and roll back route components at run time.
//!
//! | method and path | does |
//! |---|---|
//! | `GET /admin/components` | every route: component hash, version, loaded-at, history |
//! | `GET /admin/components/{name}` | one route |
//! | `PUT /admin/components/{name}` | body = a `.wasm` component: validate, compile, swap in |
//! | `PUT /admin/components/{name}` with `Content-Type: application/json` | body = `{"component": "oci://…"}`: pull, then the same |
//! | `POST /admin/components/{name}/rollback` | back to the previous version |
//! | `POST /admin/reload` | re-read the manifest (like SIGHUP) |
//!
//! Off unless a token is configured; every call needs
//! `Authorization: Bearer <token>`. With a shared deployments directory, an
//! upload or a rollback is also published to the fleet; the answer's
//! `shared` field says whether that worked.

use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::Method;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::AdminConfig;
use crate::deploy::routes::{Deployment, Route};
use crate::deploy::shared::SharedError;
use crate::deploy::{DeployError, Deployer};
use crate::registry::{OciReference, RegistryError};
use crate::respond::{self, ResponseBody};

/// Whether `path` is under `/admin` once normalised (see
/// [`normalise_path`]), in any letter case: a request that any proxy or
/// router could read as an admin call is never handed to a guest.
pub(crate) fn is_admin_path(path: &str) -> bool {
    let path = normalise_path(path);
    let lower = path.to_ascii_lowercase();
    lower == "/admin" || lower.starts_with("/admin/")
}

/// `path` percent-decoded, with empty and `.` segments dropped and `..`
/// segments resolved: `//admin/./components/`, `/x/../admin` and
/// `/%61dmin` all become `/admin/...`.
pub(crate) fn normalise_path(path: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let mut normalised = String::with_capacity(decoded.len() + 1);
    for segment in &segments {
        normalised.push('/');
        normalised.push_str(segment);
    }
    if normalised.is_empty() {
        normalised.push('/');
    }
    normalised
}

/// Remove the admin token from a request bound for a guest, from whatever
/// header carries it: the token is the host's, never a route's. Returns
/// whether it was there.
pub(crate) fn strip_admin_token(headers: &mut hyper::HeaderMap, token: &str) -> bool {
    crate::credentials::strip_secret(headers, token)
}

/// Compare in constant time, after hashing, so neither the content nor the
/// length of the token leaks through timing.
fn tokens_match(presented: &str, token: &str) -> bool {
    let expected = Sha256::digest(token.as_bytes());
    let given = Sha256::digest(presented.trim().as_bytes());
    bool::from(expected.ct_eq(&given))
}

/// Answer one admin request.
pub(crate) async fn handle(
    deployer: &Arc<Deployer>,
    config: &AdminConfig,
    request: hyper::Request<Incoming>,
) -> hyper::Response<ResponseBody> {
    let Some(token) = &config.token else {
        return error(
            404,
            "admin_disabled",
            "the admin API is off; set WASMHOUSE_ADMIN_TOKEN to enable it",
        );
    };
    if let Some(rejection) = reject_unauthorized(&request, token) {
        return rejection;
    }
    let path = normalise_path(request.uri().path());
    let segments: Vec<&str> = path.split('/').skip(2).collect();
    let method = request.method().clone();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["components"]) => {
            let routes: Vec<Value> = deployer
                .routes()
                .routes()
                .iter()
                .map(|r| describe(r))
                .collect();
            respond::json(200, &json!({ "components": routes }))
        }
        (&Method::GET, ["components", name]) => match deployer.routes().by_name(name) {
            Some(route) => respond::json(200, &describe(route)),
            None => deploy_error(&DeployError::NoSuchRoute((*name).to_owned())),
        },
        (&Method::PUT, ["components", name]) => {
            let name = (*name).to_owned();
            let is_json = request
                .headers()
                .get(hyper::header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .is_some_and(|value| value.trim().starts_with("application/json"));
            let body = match Limited::new(request.into_body(), config.max_upload)
                .collect()
                .await
            {
                Ok(body) => body.to_bytes(),
                Err(err) if err.is::<http_body_util::LengthLimitError>() => {
                    return error(
                        413,
                        "upload_too_large",
                        &format!(
                            "components are limited to {} bytes (WASMHOUSE_ADMIN_MAX_UPLOAD)",
                            config.max_upload
                        ),
                    );
                }
                Err(err) => return error(400, "bad_upload", &format!("reading the upload: {err}")),
            };
            let started = std::time::Instant::now();
            let deployed = if is_json {
                match reference_in(&body) {
                    Ok(reference) => deployer.deploy_reference(&name, &reference).await,
                    Err(why) => return error(400, "bad_reference", &why),
                }
            } else {
                deployer.deploy(&name, body.to_vec(), "upload").await
            };
            match deployed {
                Ok(deployment) => {
                    let deploy_ms = started.elapsed().as_secs_f64() * 1000.0;
                    let bytes = (!is_json).then_some(&body[..]);
                    let shared = deployer.publish(&name, &deployment, bytes).await;
                    let mut described = deployer
                        .routes()
                        .by_name(&name)
                        .map(|r| describe(r))
                        .unwrap_or(Value::Null);
                    described["deploy_ms"] = json!(deploy_ms);
                    add_shared(&mut described, shared);
                    respond::json(200, &described)
                }
                Err(err) => deploy_error(&err),
            }
        }
        (&Method::POST, ["components", name, "rollback"]) => match deployer.rollback(name) {
            Ok(deployment) => {
                let shared = deployer.publish(name, &deployment, None).await;
                let mut described = deployer
                    .routes()
                    .by_name(name)
                    .map(|r| describe(r))
                    .unwrap_or(Value::Null);
                add_shared(&mut described, shared);
                respond::json(200, &described)
            }
            Err(err) => deploy_error(&err),
        },
        (&Method::POST, ["reload"]) => match deployer.reload().await {
            Ok(routes) => respond::json(200, &json!({ "reloaded": routes })),
            Err(err) => deploy_error(&err),
        },
        (_, ["components"] | ["components", _] | ["components", _, "rollback"] | ["reload"]) => {
            error(
                405,
                "method_not_allowed",
                &format!("{method} is not allowed on {path}"),
            )
        }
        _ => error(404, "not_found", &format!("no admin endpoint {path}")),
    }
}

/// The 401/403 answer unless the request carries the bearer token.
fn reject_unauthorized<B>(
    request: &hyper::Request<B>,
    token: &str,
) -> Option<hyper::Response<ResponseBody>> {
    let presented = crate::credentials::bearer_token(request.headers());
    let Some(presented) = presented else {
        let mut response = error(
            401,
            "unauthorized",
            "send Authorization: Bearer <WASMHOUSE_ADMIN_TOKEN>",
        );
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"wasmhouse-admin\""),
        );
        return Some(response);
    };
    if tokens_match(presented, token) {
        None
    } else {
        Some(error(403, "forbidden", "the admin token is wrong"))
    }
}

fn describe(route: &Route) -> Value {
    let live = route.current();
    let previous: Vec<Value> = route
        .history()
        .iter()
        .map(|deployment| summary(deployment))
        .collect();
    let mut described = summary(&live);
    described["name"] = json!(route.name());
    described["route"] = json!(route.prefix());
    described["loaded_at"] = json!(timestamp(live.component.loaded_at()));
    // Baseline code serves until the optimised code is compiled.
    described["code"] = json!(live.component.tier().name());
    described["previous"] = json!(previous);
    described
}

/// Whether a deployment reached the fleet's shared directory (nothing when
/// deployments are not shared): the call succeeded locally either way.
fn add_shared(described: &mut Value, published: Option<Result<(), SharedError>>) {
    let Some(published) = published else { return };
    if !described.is_object() {
        return;
    }
    described["shared"] = match published {
        Ok(()) => json!({ "published": true }),
        Err(err) => json!({ "published": false, "error": err.to_string() }),
    };
}

fn summary(deployment: &Deployment) -> Value {
    let mut summary = json!({
        "version": deployment.version,
        "sha256": deployment.component.sha256(),
        "size": deployment.component.size(),
        "origin": deployment.origin,
        "deployed_at": timestamp(deployment.deployed_at),
    });
    if let Some(registry) = &deployment.registry {
        summary["reference"] = json!(registry.reference.to_string());
        summary["digest"] = json!(registry.digest);
    }
    summary
}

/// The reference of a JSON deploy body, `{"component": "oci://…"}`.
fn reference_in(body: &[u8]) -> Result<OciReference, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        component: String,
    }
    let body: Body = serde_json::from_slice(body).map_err(|err| {
        format!("a JSON deploy body is {{\"component\": \"oci://registry/repository:tag\"}}: {err}")
    })?;
    OciReference::parse(&body.component).map_err(|err| err.to_string())
}

fn timestamp(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

fn deploy_error(err: &DeployError) -> hyper::Response<ResponseBody> {
    let (status, kind) = match err {
        DeployError::NoSuchRoute(_) => (404, "no_such_route"),
        DeployError::NoPreviousVersion(_) => (409, "no_previous_version"),
        DeployError::Invalid(_) => (400, "invalid_component"),
        DeployError::Manifest(_) => (400, "invalid_manifest"),
        DeployError::Route { .. } => (400, "reload_failed"),
        DeployError::Refused { .. } => (400, "sql_check_failed"),
        DeployError::Registry { failure, .. } => match failure {
            RegistryError::Unreachable { .. } => (502, "registry_unreachable"),
            RegistryError::Refused { .. } => (400, "registry_refused"),
        },
        DeployError::Interrupted(_) => (503, "interrupted"),
    };
    error(status, kind, &err.to_string())
}

fn error(status: u16, kind: &str, message: &str) -> hyper::Response<ResponseBody> {
    respond::json(status, &json!({ "error": message, "kind": kind }))
}

#[cfg(test)]
mod tests {
    use super::{is_admin_path, normalise_path};

    #[test]
    fn admin_paths_are_recognised_however_spelt() {
        for path in [
            "/admin",
            "/admin/",
            "//admin/components",
            "/./admin/components",
            "/x/../admin/components",
            "/%61dmin/components",
            "/ADMIN/components",
            "/admin%2Fcomponents",
            "\\admin/components",
        ] {
            assert!(is_admin_path(path), "{path}");
        }
        for path in ["/", "/administrator", "/api/admin", "/health"] {
            assert!(!is_admin_path(path), "{path}");
        }
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(normalise_path("//a/./b/../c/"), "/a/c");
        assert_eq!(normalise_path("/../../"), "/");
        assert_eq!(normalise_path("/%E2%9C%93"), "/✓");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Any path normalises to one that starts with `/`, has no empty,
        /// `.` or `..` segment, and normalises to itself.
        #[test]
        fn normalising_is_total_and_idempotent(path in "[/.a-z%0-9\\\\\\PC]{0,200}") {
            let once = normalise_path(&path);
            proptest::prop_assert!(once.starts_with('/'));
            proptest::prop_assert!(!once.split('/').skip(1).any(|s| s == "." || s == ".."));
            // Decoding twice may decode `%25xx` further; the admin check
            // decodes only once, like the router, so compare decoded-free paths.
            if !once.contains('%') {
                proptest::prop_assert_eq!(normalise_path(&once), once.clone());
            }
            let _ = is_admin_path(&path);
        }
    }
}
