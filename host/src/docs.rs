//! `/docs`: a page that lists the routes described in `/openapi.json` and
//! lets a user try them. Its HTML, script and style are in `docs/`, built
//! into the binary: nothing is fetched from the internet.

use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};

use crate::respond::{self, ResponseBody};

const PAGE: &str = include_str!("docs/index.html");
const SCRIPT: &str = include_str!("docs/docs.js");
const STYLE: &str = include_str!("docs/docs.css");

/// The page itself or one of its assets, for a path under `/docs`.
pub(crate) fn asset(path: &str) -> Option<hyper::Response<ResponseBody>> {
    let (body, content_type) = match path {
        "/docs" | "/docs/" => (PAGE, "text/html; charset=utf-8"),
        "/docs/docs.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "/docs/docs.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return None,
    };
    let mut response = hyper::Response::new(respond::full(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // The page runs only its own script and talks only to this server.
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    Some(response)
}
