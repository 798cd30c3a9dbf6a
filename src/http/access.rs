//! Who may watch and who may look inside. With no viewer tokens anyone who can reach the
//! device may watch, as on a club's own LAN; with them, WHEP requests must carry one as a
//! bearer token. The admin token (there always is one) is needed for the admin page, the
//! per-viewer details and `/metrics`, and may end or restart any viewer's session.

use crate::config::secrets::Credential;
use crate::http::error::ApiError;
use axum::http::{HeaderMap, header};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    viewer_tokens: Vec<String>,
    admin_token: String,
}

/// Equal without an early exit, so timing does not tell how much of a guess was right.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut difference = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        difference |= usize::from(x ^ y);
    }
    difference == 0
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl Access {
    pub fn new(viewer_tokens: Vec<String>, admin_token: String) -> Self {
        Self {
            viewer_tokens,
            admin_token,
        }
    }

    pub fn viewers_need_token(&self) -> bool {
        !self.viewer_tokens.is_empty()
    }

    fn admin(&self, token: &str) -> bool {
        same(&self.admin_token, token)
    }

    /// May this request watch? Returns the credential to remember with the session.
    pub fn viewer(&self, headers: &HeaderMap) -> Result<Credential, ApiError> {
        if !self.viewers_need_token() {
            // The admin may still act on any session, so an admin request says so.
            let is_admin = bearer(headers).is_some_and(|token| self.admin(token));
            return Ok(if is_admin {
                Credential::Admin
            } else {
                Credential::Open
            });
        }
        let token = bearer(headers).ok_or_else(|| {
            ApiError::unauthorized("this stream needs a token: open the link you were given")
        })?;
        if self.admin(token) {
            return Ok(Credential::Admin);
        }
        // Every token is compared, so timing does not reveal which one matched.
        let mut matched = None;
        for (index, known) in self.viewer_tokens.iter().enumerate() {
            if same(known, token) && matched.is_none() {
                matched = Some(index);
            }
        }
        matched
            .map(Credential::Viewer)
            .ok_or_else(|| ApiError::forbidden("that token does not open this stream"))
    }

    /// The request's credential must be the one its session was created with.
    pub fn same_viewer(&self, headers: &HeaderMap, owner: Credential) -> Result<(), ApiError> {
        match self.viewer(headers)? {
            found if found == owner || found == Credential::Admin => Ok(()),
            _ => Err(ApiError::forbidden("that session belongs to another token")),
        }
    }

    pub fn is_admin(&self, headers: &HeaderMap) -> bool {
        bearer(headers).is_some_and(|token| self.admin(token))
    }

    pub fn require_admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.is_admin(headers) {
            Ok(())
        } else if bearer(headers).is_none() {
            Err(ApiError::unauthorized("this needs the admin token"))
        } else {
            Err(ApiError::forbidden("that is not the admin token"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, StatusCode};

    fn with_token(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        headers.insert(header::AUTHORIZATION, value);
        headers
    }

    fn access() -> Access {
        Access::new(
            vec!["class-7b".into(), "parents".into()],
            "teacher-token".into(),
        )
    }

    #[test]
    fn anyone_watches_without_viewer_tokens_but_details_stay_closed() {
        let open = Access::new(Vec::new(), "teacher-token".into());
        assert_eq!(open.viewer(&HeaderMap::new()), Ok(Credential::Open));
        assert!(!open.is_admin(&HeaderMap::new()));
        assert!(!open.is_admin(&with_token("guess-guess")));
        assert_eq!(
            open.viewer(&with_token("teacher-token")),
            Ok(Credential::Admin)
        );
    }

    #[test]
    fn without_viewer_tokens_a_session_answers_to_its_owner_and_the_admin() {
        let open = Access::new(Vec::new(), "teacher-token".into());
        assert!(
            open.same_viewer(&HeaderMap::new(), Credential::Open)
                .is_ok()
        );
        assert!(
            open.same_viewer(&with_token("teacher-token"), Credential::Open)
                .is_ok()
        );
        let admin_session = open.same_viewer(&HeaderMap::new(), Credential::Admin);
        assert_eq!(admin_session.unwrap_err().status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn missing_token_is_401_with_a_challenge_and_wrong_is_403() {
        let missing = access().viewer(&HeaderMap::new()).unwrap_err();
        assert_eq!(
            (missing.status, missing.challenge),
            (StatusCode::UNAUTHORIZED, true)
        );
        let wrong = access().viewer(&with_token("class-7c")).unwrap_err();
        assert_eq!(wrong.status, StatusCode::FORBIDDEN);
        assert_eq!(
            access().viewer(&with_token("parents")),
            Ok(Credential::Viewer(1))
        );
        assert_eq!(
            access().viewer(&with_token("teacher-token")),
            Ok(Credential::Admin)
        );
    }

    #[test]
    fn a_session_answers_only_to_its_own_token_or_the_admin() {
        let owner = Credential::Viewer(0);
        assert!(access().same_viewer(&with_token("class-7b"), owner).is_ok());
        assert!(
            access()
                .same_viewer(&with_token("teacher-token"), owner)
                .is_ok()
        );
        let other = access()
            .same_viewer(&with_token("parents"), owner)
            .unwrap_err();
        assert_eq!(other.status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn details_need_the_admin_token() {
        assert!(!access().is_admin(&with_token("parents")));
        assert!(access().is_admin(&with_token("teacher-token")));
        assert_eq!(
            access()
                .require_admin(&HeaderMap::new())
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn comparison_is_exact() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abcd"));
        assert!(!same("abc", "abd"));
        assert!(!same("", "a"));
    }
}
