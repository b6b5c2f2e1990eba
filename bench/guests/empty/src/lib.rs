//! The smallest useful `wasi:http` handler: `200 OK`, no body. What it costs
//! to serve is what the sandbox costs: a fresh instance and one call.

mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "wasi:http/proxy@0.2.6",
        generate_all,
    });
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Empty;

impl Guest for Empty {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let response = OutgoingResponse::new(Fields::new());
        let body = response.body().ok();
        ResponseOutparam::set(out, Ok(response));
        if let Some(body) = body {
            let _ = OutgoingBody::finish(body, None);
        }
    }
}

// Exported on wasm32 only: a native build (tests, `cargo build --workspace`)
// has no WASI imports to link the export against.
#[cfg(target_arch = "wasm32")]
#[expect(unsafe_code, reason = "wit-bindgen's generated export glue")]
mod export {
    use super::Empty;
    crate::bindings::export!(Empty with_types_in crate::bindings);
}
