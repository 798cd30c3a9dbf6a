//! Tokens, given inline or read from files (one per line) so they stay out of the unit file
//! and the process list. Never logged.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessSettings {
    pub viewer_tokens: Vec<String>,
    pub viewer_token_file: Option<PathBuf>,
    pub admin_token: Option<String>,
    pub admin_token_file: Option<PathBuf>,
}

/// The tokens, ready to compare against requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    pub viewers: Vec<String>,
    pub admin: Option<String>,
}

/// The credential a session was created with; its PATCH and DELETE must show the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// No viewer tokens are configured.
    Open,
    /// The viewer token at this index (in [`Tokens::viewers`]).
    Viewer(usize),
    Admin,
}

/// Which key is wrong and why, without the token itself.
pub type TokenProblem = (&'static str, String);

/// Shortest token accepted: long enough that guessing over HTTP is hopeless.
pub const MIN_TOKEN_CHARS: usize = 8;

/// Tokens in a file: one per line; blank lines and `#` comments are skipped.
pub fn read_tokens(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

impl AccessSettings {
    /// Every viewer token and the admin token, from inline values and files.
    /// Errors name the key, never the token.
    pub fn load(&self) -> Result<Tokens, TokenProblem> {
        let mut viewers = self.viewer_tokens.clone();
        if let Some(path) = &self.viewer_token_file {
            viewers.extend(read_tokens(path).map_err(|e| ("access.viewer_token_file", e))?);
        }
        let mut admin = self.admin_token.clone();
        if let Some(path) = &self.admin_token_file {
            let mut tokens = read_tokens(path).map_err(|e| ("access.admin_token_file", e))?;
            if tokens.len() != 1 {
                return Err((
                    "access.admin_token_file",
                    format!("{}: must hold exactly one token", path.display()),
                ));
            }
            admin = tokens.pop();
        }
        if viewers
            .iter()
            .chain(admin.iter())
            .any(|t| t.chars().count() < MIN_TOKEN_CHARS || t.contains(char::is_whitespace))
        {
            return Err((
                "access",
                format!(
                    "every token must be at least {MIN_TOKEN_CHARS} characters, without spaces"
                ),
            ));
        }
        Ok(Tokens { viewers, admin })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_inline_tokens_combine() {
        let dir = std::env::temp_dir().join(format!("fieldcast-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let viewers = dir.join("viewers");
        std::fs::write(&viewers, "# pupils\nclass-7b-2026\n\nparents-2026\n").unwrap();
        let admin = dir.join("admin");
        std::fs::write(&admin, "teacher-secret\n").unwrap();
        let settings = AccessSettings {
            viewer_tokens: vec!["inline-token".into()],
            viewer_token_file: Some(viewers),
            admin_token: None,
            admin_token_file: Some(admin),
        };
        let Tokens { viewers, admin } = settings.load().unwrap();
        assert_eq!(
            viewers,
            vec!["inline-token", "class-7b-2026", "parents-2026"]
        );
        assert_eq!(admin.as_deref(), Some("teacher-secret"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn short_tokens_and_missing_files_are_refused_without_showing_the_token() {
        let short = AccessSettings {
            viewer_tokens: vec!["abc".into()],
            ..Default::default()
        };
        let (key, message) = short.load().unwrap_err();
        assert_eq!(key, "access");
        assert!(!message.contains("abc"));
        let missing = AccessSettings {
            viewer_token_file: Some("/nonexistent/tokens".into()),
            ..Default::default()
        };
        assert_eq!(missing.load().unwrap_err().0, "access.viewer_token_file");
    }
}
