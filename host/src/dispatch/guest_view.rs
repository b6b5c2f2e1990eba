//! What a guest sees of a request, in one place for every request a guest
//! gets (a client's, or the host's own question for its OpenAPI document).
//!
//! Like Spin: the full path, and the part below the route's prefix in
//! `spin-path-info` with the prefix in `spin-component-route`, so one
//! component works at `/` and under any prefix; its request id in
//! `x-request-id`; the calling API key's name (never the key) in
//! `wasmhouse-api-key`. The admin token and the API keys never reach a
//! guest, from any header, on any route.

use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};

use crate::access::{self, Admission};
use crate::deploy::routes::Route;
use crate::request_id::REQUEST_ID;

/// Header carrying the path below the route's prefix (Spin's name for it).
pub(crate) const PATH_INFO: HeaderName = HeaderName::from_static("spin-path-info");
/// Header carrying the prefix of the route that matched.
pub(crate) const COMPONENT_ROUTE: HeaderName = HeaderName::from_static("spin-component-route");

/// Make `headers`, of a request for `path` on `route`, what its guest
/// sees: the host's secrets out, the route's facts in.
pub(crate) fn prepare(
    headers: &mut HeaderMap,
    route: &Route,
    path: &str,
    request_id: &str,
    admin_token: Option<&str>,
    keys: &access::KeyStore,
    admission: &Admission,
) {
    if let Some(token) = admin_token
        && crate::admin::strip_admin_token(headers, token)
    {
        tracing::warn!(
            request_id,
            route = route.name(),
            "removed the admin token from a request for a route"
        );
    }
    access::strip_keys(headers, keys, admission.key.is_some());
    if let Some(value) = admission
        .key
        .as_deref()
        .and_then(|name| HeaderValue::from_str(name).ok())
    {
        headers.insert(access::KEY_NAME_HEADER, value);
    }
    if let Some(params) = &admission.key_params {
        headers.insert(access::KEY_PARAMS_HEADER, params.clone());
    }
    if let Ok(value) = HeaderValue::from_str(route.path_info(path)) {
        headers.insert(PATH_INFO, value);
    }
    headers.insert(COMPONENT_ROUTE, route.prefix_header().clone());
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, value);
    }
}
