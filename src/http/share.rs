//! `GET /share.svg?url=…`: a QR code of a viewer link, so a teacher can put it on the
//! projector and the room can scan it. Made here: the device may have no internet.

use crate::http::error::ApiError;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use qrcode::QrCode;
use qrcode::render::svg;
use serde::Deserialize;

/// Longer links make a QR code too dense to scan from the back of a room.
const MAX_URL_BYTES: usize = 512;

#[derive(Deserialize)]
pub struct ShareQuery {
    url: Option<String>,
}

/// The SVG of a QR code for `url`, which must be an http(s) link.
pub fn render(url: &str) -> Result<String, String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("the url is longer than {MAX_URL_BYTES} bytes"));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err("the url must start with http:// or https://".to_owned());
    }
    let code = QrCode::new(url.as_bytes()).map_err(|e| format!("no QR code for that url: {e}"))?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

pub async fn qr_svg(
    query: Result<Query<ShareQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let url = query
        .url
        .ok_or_else(|| ApiError::bad_request("give the link to encode as ?url=…"))?;
    let svg = render(&url).map_err(ApiError::bad_request)?;
    let mut response = svg.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_svg_for_a_viewer_link() {
        let svg = render("http://192.168.1.20:8080/?token=abc").unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{svg}");
        assert!(svg.contains("<path"), "the code has dark modules");
    }

    #[test]
    fn refuses_other_schemes_and_long_links() {
        assert!(render("javascript:alert(1)").is_err());
        assert!(render(&format!("http://x/{}", "a".repeat(600))).is_err());
    }
}
