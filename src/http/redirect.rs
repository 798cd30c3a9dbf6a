//! With HTTPS on, plain HTTP only sends people there (308, so a POST stays a POST).

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// `https://host[:port]/path?query` for a request that came in as `host_header` and `uri`.
pub fn target(host_header: &str, uri: &Uri, https_port: u16) -> Option<String> {
    let host = match host_header.strip_prefix('[') {
        // [v6]:port
        Some(rest) => format!("[{}]", rest.split(']').next()?),
        None => host_header.split(':').next()?.to_owned(),
    };
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return None;
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Some(match https_port {
        443 => format!("https://{host}{path}"),
        port => format!("https://{host}:{port}{path}"),
    })
}

pub fn router(https_port: u16) -> Router {
    Router::new().fallback(move |headers: HeaderMap, uri: Uri| async move {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        match target(host, &uri, https_port).and_then(|t| HeaderValue::from_str(&t).ok()) {
            Some(location) => {
                let mut response: Response = StatusCode::PERMANENT_REDIRECT.into_response();
                response.headers_mut().insert(header::LOCATION, location);
                response
            }
            None => (StatusCode::BAD_REQUEST, "a Host header is needed\n").into_response(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_host_path_and_query_and_swaps_the_port() {
        let uri: Uri = "/whep?x=1".parse().unwrap();
        assert_eq!(
            target("pi.local:8080", &uri, 8443).as_deref(),
            Some("https://pi.local:8443/whep?x=1")
        );
        assert_eq!(
            target("10.0.0.5", &uri, 443).as_deref(),
            Some("https://10.0.0.5/whep?x=1")
        );
        assert_eq!(
            target("[fe80::1]:8080", &"/".parse().unwrap(), 8443).as_deref(),
            Some("https://[fe80::1]:8443/")
        );
        assert_eq!(target("", &uri, 443), None);
        assert_eq!(target("evil.example/@x", &uri, 443), None);
    }
}
