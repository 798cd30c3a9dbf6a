//! The admin token always exists: the configured one, else the one kept in the state
//! directory, else a new one made at first start and kept there (mode 0600) so the admin link
//! printed that once keeps working across restarts.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// File name inside the state directory.
pub const FILE_NAME: &str = "admin-token";
/// Random bits in a generated token: far past guessing over HTTP.
const GENERATED_BITS: u32 = 128;

/// Where this run's admin token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `access.admin_token` or `access.admin_token_file`.
    Configured,
    /// Read from the state directory, made at an earlier start.
    Kept(PathBuf),
    /// Made now and saved there: the only time its link is logged.
    Generated(PathBuf),
    /// Made now but could not be saved: good until the process ends.
    Ephemeral(String),
}

impl Origin {
    /// Whether the admin link must be shown now: nobody could know the token otherwise.
    pub fn announce(&self) -> bool {
        matches!(self, Origin::Generated(_) | Origin::Ephemeral(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminToken {
    pub token: String,
    pub origin: Origin,
}

/// A fresh token: 128 random bits from the operating system's generator, as hex.
pub fn generate() -> String {
    debug_assert_eq!(GENERATED_BITS, u128::BITS);
    format!("{:032x}", rand::random::<u128>())
}

/// The configured token, or the kept one, or a new one saved for next time.
pub fn resolve(configured: Option<String>, state_dir: &Path) -> Result<AdminToken, String> {
    if let Some(token) = configured {
        return Ok(AdminToken {
            token,
            origin: Origin::Configured,
        });
    }
    let path = state_dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let token = text.trim().to_owned();
            if token.len() < super::secrets::MIN_TOKEN_CHARS || token.contains(char::is_whitespace)
            {
                return Err(format!(
                    "{}: not a usable admin token; delete the file to have a new one made",
                    path.display()
                ));
            }
            // Someone may have copied it in with a looser mode: only we should read it.
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            Ok(AdminToken {
                token,
                origin: Origin::Kept(path),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = generate();
            match save(state_dir, &path, &token) {
                Ok(()) => Ok(AdminToken {
                    token,
                    origin: Origin::Generated(path),
                }),
                Err(e) => Ok(AdminToken {
                    token,
                    origin: Origin::Ephemeral(format!("cannot save {}: {e}", path.display())),
                }),
            }
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn save(dir: &Path, path: &Path, token: &str) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // create_new: two daemons starting at once must not overwrite each other's token.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(format!("{token}\n").as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "fieldcast-admin-{name}-{}-{:x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn first_start_makes_a_token_kept_private_and_reused_after() {
        let dir = temp_dir("first").join("nested");
        let first = resolve(None, &dir).unwrap();
        assert_eq!(first.origin, Origin::Generated(dir.join(FILE_NAME)));
        assert!(first.origin.announce());
        assert_eq!(first.token.len(), 32);
        let mode = std::fs::metadata(dir.join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = resolve(None, &dir).unwrap();
        assert_eq!(second.token, first.token);
        assert_eq!(second.origin, Origin::Kept(dir.join(FILE_NAME)));
        assert!(!second.origin.announce());
    }

    #[test]
    fn a_configured_token_wins_and_touches_no_file() {
        let dir = temp_dir("configured");
        let token = resolve(Some("teacher-secret".into()), &dir).unwrap();
        assert_eq!(token.token, "teacher-secret");
        assert!(!dir.exists());
    }

    #[test]
    fn an_unwritable_directory_gives_a_token_for_this_run() {
        // Nothing can be made under /proc, not even by root.
        let token = resolve(None, Path::new("/proc/fieldcast-state")).unwrap();
        assert!(matches!(token.origin, Origin::Ephemeral(_)));
        assert!(token.origin.announce());
    }

    #[test]
    fn a_damaged_token_file_is_an_error_naming_the_file() {
        let dir = temp_dir("damaged");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(FILE_NAME), "abc\n").unwrap();
        let err = resolve(None, &dir).unwrap_err();
        assert!(err.contains(FILE_NAME), "{err}");
        assert!(!err.contains("abc"), "the token is never shown: {err}");
    }

    #[test]
    fn generated_tokens_differ() {
        assert_ne!(generate(), generate());
    }
}
