//! The admin API: deploy, list and roll back route components at run time.
//!
//! | method and path | does |
//! |---|---|
//! | `GET /admin/components` | every route: component hash, version, loaded-at, history |
//! | `GET /admin/components/{name}` | one route |
//! | `PUT /admin/components/{name}` | body = a `.wasm` component: validate, compile, swap in |
//! | `POST /admin/components/{name}/rollback` | back to the previous version |
//! | `POST /admin/reload` | re-read the manifest (like SIGHUP) |
//!
//! Off unless a token is configured; every call needs
//! `Authorization: Bearer <token>`.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::Method;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::{App, DeployError};
use crate::respond::{self, ResponseBody};
use crate::routes::{Deployment, Route};

/// Where and how the admin API is served.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AdminConfig {
    /// The bearer token; the API is off without one.
    pub token: Option<String>,
    /// A listener of its own; under `/admin` on the main one otherwise.
    pub listen: Option<SocketAddr>,
    /// Largest component upload, in bytes.
    pub max_upload: usize,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("listen", &self.listen)
            .field("max_upload", &self.max_upload)
            .finish()
    }
}

impl AdminConfig {
    /// Whether `/admin` on the main listener is the admin API.
    pub fn on_main_listener(&self) -> bool {
        self.token.is_some() && self.listen.is_none()
    }
}

/// Whether `path` is under `/admin`.
pub fn is_admin_path(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

/// Answer one admin request.
pub async fn handle(
    app: &Arc<App>,
    request: hyper::Request<Incoming>,
) -> hyper::Response<ResponseBody> {
    let config = app.admin();
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
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').skip(2).collect();
    let method = request.method().clone();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["components"]) => {
            let routes: Vec<Value> = app.routes().routes().iter().map(|r| describe(r)).collect();
            respond::json(200, &json!({ "components": routes }))
        }
        (&Method::GET, ["components", name]) => match app.routes().by_name(name) {
            Some(route) => respond::json(200, &describe(route)),
            None => deploy_error(&DeployError::NoSuchRoute((*name).to_owned())),
        },
        (&Method::PUT, ["components", name]) => {
            let name = (*name).to_owned();
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
            match app.deploy(&name, body.to_vec(), "upload").await {
                Ok(_) => {
                    let mut described = app
                        .routes()
                        .by_name(&name)
                        .map(|r| describe(r))
                        .unwrap_or(Value::Null);
                    described["deploy_ms"] = json!(started.elapsed().as_secs_f64() * 1000.0);
                    respond::json(200, &described)
                }
                Err(err) => deploy_error(&err),
            }
        }
        (&Method::POST, ["components", name, "rollback"]) => match app.rollback(name) {
            Ok(_) => respond::json(
                200,
                &app.routes()
                    .by_name(name)
                    .map(|r| describe(r))
                    .unwrap_or(Value::Null),
            ),
            Err(err) => deploy_error(&err),
        },
        (&Method::POST, ["reload"]) => match app.reload().await {
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

/// The 401/403 answer unless the request carries the bearer token. Compared
/// in constant time, after hashing, so neither the content nor the length of
/// the token leaks through timing.
fn reject_unauthorized<B>(
    request: &hyper::Request<B>,
    token: &str,
) -> Option<hyper::Response<ResponseBody>> {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
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
    let expected = Sha256::digest(token.as_bytes());
    let given = Sha256::digest(presented.trim().as_bytes());
    if bool::from(expected.ct_eq(&given)) {
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
    described["previous"] = json!(previous);
    described
}

fn summary(deployment: &Deployment) -> Value {
    json!({
        "version": deployment.version,
        "sha256": deployment.component.sha256(),
        "size": deployment.component.size(),
        "origin": deployment.origin,
        "deployed_at": timestamp(deployment.deployed_at),
    })
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
        DeployError::Reload(_) => (400, "reload_failed"),
    };
    error(status, kind, &err.to_string())
}

fn error(status: u16, kind: &str, message: &str) -> hyper::Response<ResponseBody> {
    respond::json(status, &json!({ "error": message, "kind": kind }))
}
