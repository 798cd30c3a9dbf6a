//! The viewer page, embedded in the binary so an installed fieldcast needs no files beside it.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../../web-viewer/index.html");
const VIEWER_JS: &str = include_str!("../../web-viewer/viewer.js");
const VIEWER_CSS: &str = include_str!("../../web-viewer/viewer.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The page changes only with the binary; a stale copy after an upgrade is the risk.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", VIEWER_JS)
}

pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", VIEWER_CSS)
}
