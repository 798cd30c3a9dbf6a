//! Where fieldcast keeps what it makes for itself (the admin token): the configured
//! `server.state_dir`, else systemd's `$STATE_DIRECTORY`, else `/var/lib/fieldcast` for root,
//! else the user's `$XDG_STATE_HOME/fieldcast` (`~/.local/state/fieldcast`).

use std::path::{Path, PathBuf};

/// The service's directory when run by root outside systemd.
pub const SYSTEM_STATE_DIR: &str = "/var/lib/fieldcast";

/// What the process's environment says, read once so the choice itself is pure.
#[derive(Debug, Default, Clone)]
pub struct Environment {
    pub state_directory: Option<String>,
    pub xdg_state_home: Option<String>,
    pub home: Option<String>,
    pub is_root: bool,
}

impl Environment {
    pub fn of_process() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Self {
            state_directory: var("STATE_DIRECTORY"),
            xdg_state_home: var("XDG_STATE_HOME"),
            home: var("HOME"),
            is_root: effective_uid() == Some(0),
        }
    }
}

/// The directory to use; `configured` wins over everything the environment says.
pub fn choose(configured: Option<&Path>, env: &Environment) -> PathBuf {
    if let Some(dir) = configured {
        return dir.to_owned();
    }
    // systemd may list several directories, separated by colons: ours is the first.
    if let Some(dirs) = &env.state_directory
        && let Some(first) = dirs.split(':').find(|d| !d.is_empty())
    {
        return PathBuf::from(first);
    }
    if env.is_root {
        return PathBuf::from(SYSTEM_STATE_DIR);
    }
    match (&env.xdg_state_home, &env.home) {
        (Some(xdg), _) => Path::new(xdg).join("fieldcast"),
        (None, Some(home)) => Path::new(home).join(".local/state/fieldcast"),
        (None, None) => PathBuf::from(SYSTEM_STATE_DIR),
    }
}

/// The effective user id, from `/proc/self/status` (`Uid: real effective saved fs`).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> Environment {
        Environment {
            home: Some("/home/coach".into()),
            ..Environment::default()
        }
    }

    #[test]
    fn the_configured_directory_wins() {
        let env = Environment {
            state_directory: Some("/var/lib/fieldcast".into()),
            ..user()
        };
        assert_eq!(
            choose(Some(Path::new("/srv/fc")), &env),
            PathBuf::from("/srv/fc")
        );
    }

    #[test]
    fn systemd_state_directory_comes_next_first_of_several() {
        let env = Environment {
            state_directory: Some("/var/lib/fieldcast:/var/lib/other".into()),
            ..user()
        };
        assert_eq!(choose(None, &env), PathBuf::from("/var/lib/fieldcast"));
    }

    #[test]
    fn root_uses_the_system_directory_and_a_user_their_own() {
        let root = Environment {
            is_root: true,
            ..user()
        };
        assert_eq!(choose(None, &root), PathBuf::from(SYSTEM_STATE_DIR));
        assert_eq!(
            choose(None, &user()),
            PathBuf::from("/home/coach/.local/state/fieldcast")
        );
        let xdg = Environment {
            xdg_state_home: Some("/tmp/state".into()),
            ..user()
        };
        assert_eq!(choose(None, &xdg), PathBuf::from("/tmp/state/fieldcast"));
    }

    #[test]
    fn this_process_has_a_uid() {
        assert!(effective_uid().is_some());
    }
}
