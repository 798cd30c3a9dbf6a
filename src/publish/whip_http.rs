//! WHIP signalling over HTTP (RFC 9725, sending side): the offer in a POST (redirects
//! followed), the session URL from `Location`, ICE servers from `Link`, trickle and ICE restart
//! in a PATCH with `If-Match`, DELETE at the end. Every request carries the bearer token.

use super::PublishError;
use super::whip_links;
use crate::webrtc::api::IceServer;
use reqwest::header::{self, HeaderMap};
use reqwest::{Client, Method, StatusCode};
use std::time::Duration;

/// Longest an engine may take to answer one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Redirects followed before giving up (RFC 9725 §4.5 lets an endpoint redirect the POST).
const MAX_REDIRECTS: usize = 5;
const SDP: &str = "application/sdp";
const SDPFRAG: &str = "application/trickle-ice-sdpfrag";

/// The engine's end of one publishing session.
pub struct WhipSession {
    pub url: url::Url,
    pub etag: Option<String>,
    pub answer: String,
    pub ice_servers: Vec<IceServer>,
    /// Where the POST finally went, when the endpoint redirected it.
    pub redirected_to: Option<url::Url>,
}

pub struct WhipClient {
    http: Client,
    endpoint: url::Url,
    token: Option<String>,
}

fn link_servers(headers: &HeaderMap) -> Vec<IceServer> {
    let values: Vec<&str> = headers
        .get_all(header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    whip_links::ice_servers(&values)
}

/// What a refusing status means, for the log and the backoff.
fn refusal(what: &str, status: StatusCode, body: &str) -> PublishError {
    let detail = body.lines().next().unwrap_or_default().trim();
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(": {}", detail.chars().take(200).collect::<String>())
    };
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => PublishError::Refused(format!(
            "{what}: the engine refused the token ({status}){detail}"
        )),
        s if s.is_client_error() => {
            PublishError::Refused(format!("{what}: the engine said {status}{detail}"))
        }
        _ => PublishError::Lost(format!("{what}: the engine said {status}{detail}")),
    }
}

fn unreachable(what: &str, e: reqwest::Error) -> PublishError {
    // reqwest's Display hides the cause ("error sending request"); the source says why.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    PublishError::Lost(format!("{what}: {text}"))
}

impl WhipClient {
    pub fn new(endpoint: &str, token: Option<String>) -> Result<WhipClient, PublishError> {
        let endpoint = url::Url::parse(endpoint)
            .map_err(|e| PublishError::Refused(format!("the WHIP URL: {e}")))?;
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| PublishError::Lost(format!("no HTTP client: {e}")))?;
        Ok(WhipClient {
            http,
            endpoint,
            token,
        })
    }

    fn request(&self, method: Method, url: url::Url) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// ICE servers the endpoint offers before any session (its `Link` headers on OPTIONS);
    /// none when it does not answer OPTIONS.
    pub async fn discover(&self) -> Vec<IceServer> {
        match self
            .request(Method::OPTIONS, self.endpoint.clone())
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => link_servers(response.headers()),
            _ => Vec::new(),
        }
    }

    /// POSTs the offer; the answer and the session's URL come back.
    pub async fn publish(&self, offer: String) -> Result<WhipSession, PublishError> {
        let response = self
            .request(Method::POST, self.endpoint.clone())
            .header(header::CONTENT_TYPE, SDP)
            .body(offer)
            .send()
            .await
            .map_err(|e| unreachable("POST", e))?;
        let status = response.status();
        let final_url = response.url().clone();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        if status != StatusCode::CREATED {
            return Err(refusal("POST", status, &body));
        }
        let location = headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| PublishError::Refused("the 201 has no Location".to_owned()))?;
        let url = final_url
            .join(location)
            .map_err(|e| PublishError::Refused(format!("Location {location:?}: {e}")))?;
        Ok(WhipSession {
            url,
            etag: headers
                .get(header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            answer: body,
            ice_servers: link_servers(&headers),
            redirected_to: (final_url != self.endpoint).then_some(final_url),
        })
    }

    /// PATCHes an SDP fragment: late candidates (204) or an ICE restart (200 with the
    /// engine's new fragment, and a new ETag).
    pub async fn patch(
        &self,
        session: &mut WhipSession,
        fragment: String,
    ) -> Result<Option<String>, PublishError> {
        let mut request = self
            .request(Method::PATCH, session.url.clone())
            .header(header::CONTENT_TYPE, SDPFRAG)
            .body(fragment);
        if let Some(etag) = &session.etag {
            request = request.header(header::IF_MATCH, etag);
        }
        let response = request.send().await.map_err(|e| unreachable("PATCH", e))?;
        let status = response.status();
        if let Some(etag) = response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
        {
            session.etag = Some(etag.to_owned());
        }
        let body = response.text().await.unwrap_or_default();
        match status {
            StatusCode::NO_CONTENT => Ok(None),
            StatusCode::OK => Ok(Some(body)),
            _ => Err(refusal("PATCH", status, &body)),
        }
    }

    /// Ends the session at the engine; failures only logged (we are leaving anyway).
    pub async fn delete(&self, session: &WhipSession) {
        match self
            .request(Method::DELETE, session.url.clone())
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                tracing::debug!("WHIP DELETE answered {}", response.status());
            }
            Err(e) => tracing::debug!("WHIP DELETE failed: {e}"),
        }
    }
}
