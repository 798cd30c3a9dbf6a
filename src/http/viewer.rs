//! The viewer page and the admin page, embedded in the binary so an installed fieldcast needs no files beside it.

use crate::http::AppState;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One file of `web-viewer/`, served at `path`.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../web-viewer/index.html"),
    },
    Asset {
        path: "/viewer.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../web-viewer/viewer.css"),
    },
    Asset {
        path: "/viewer.js",
        content_type: JS,
        body: include_str!("../../web-viewer/viewer.js"),
    },
    Asset {
        path: "/whep.js",
        content_type: JS,
        body: include_str!("../../web-viewer/whep.js"),
    },
    Asset {
        path: "/stats.js",
        content_type: JS,
        body: include_str!("../../web-viewer/stats.js"),
    },
    // The admin page itself is public; what it shows comes from /api/admin/status.
    Asset {
        path: "/admin",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../web-viewer/admin.html"),
    },
    Asset {
        path: "/admin.js",
        content_type: JS,
        body: include_str!("../../web-viewer/admin.js"),
    },
];

fn respond(asset: &'static Asset) -> Response {
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // The page changes only with the binary; a stale copy after an upgrade is the risk.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A GET route for every file of the page.
pub fn routes() -> Router<AppState> {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        router.route(asset.path, get(move || async move { respond(asset) }))
    })
}
