//! `GET /api/openapi.json`: the HTTP API's contract (`api/openapi.json`), checked against the
//! running daemon by `tests/openapi.rs` and by schemathesis in CI.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

pub const DOCUMENT: &str = include_str!("../../api/openapi.json");

pub async fn document() -> Response {
    let mut response = DOCUMENT.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
