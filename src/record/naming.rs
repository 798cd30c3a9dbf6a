//! Segment file names: the UTC start time then the title, e.g.
//! `2026-12-04T11-20-00Z-under-11s-final.mp4`, so a directory listing sorts by time and says
//! what each file is. Pure: the time is passed in.

use chrono::{DateTime, NaiveDateTime, Utc};
use std::time::SystemTime;

pub const EXTENSION: &str = "mp4";
/// Colons are not allowed in file names everywhere the files may be copied to.
const TIME_FORMAT: &str = "%Y-%m-%dT%H-%M-%SZ";
const TIME_LEN: usize = "2026-12-04T11-20-00Z".len();
/// Titles are cut to this many characters in names.
const MAX_SLUG: usize = 48;

/// Lower-case ASCII letters and digits, runs of anything else as one `-`.
pub fn slug(title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= MAX_SLUG {
            break;
        }
    }
    slug.trim_end_matches('-').to_owned()
}

/// The name of a segment started at `started`; `counter` (0 for the first) tells apart
/// segments started within the same second.
pub fn segment_name(started: SystemTime, title: &str, counter: u32) -> String {
    let time = DateTime::<Utc>::from(started).format(TIME_FORMAT);
    let slug = slug(title);
    let mut name = if slug.is_empty() {
        time.to_string()
    } else {
        format!("{time}-{slug}")
    };
    if counter > 0 {
        name.push_str(&format!("-{counter}"));
    }
    format!("{name}.{EXTENSION}")
}

/// When the segment called `name` started, or `None` when it is not one of ours.
pub fn started(name: &str) -> Option<SystemTime> {
    let stem = name.strip_suffix(EXTENSION)?.strip_suffix('.')?;
    let suffix_ok = stem.len() == TIME_LEN || stem.as_bytes().get(TIME_LEN) == Some(&b'-');
    if !suffix_ok || name.contains('/') || name.contains('\\') {
        return None;
    }
    let time = NaiveDateTime::parse_from_str(stem.get(..TIME_LEN)?, TIME_FORMAT).ok()?;
    Some(time.and_utc().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn dec_4_11_20() -> SystemTime {
        // 2026-12-04T11:20:00Z
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_383_200)
    }

    #[test]
    fn a_name_is_the_utc_start_then_the_title() {
        assert_eq!(
            segment_name(dec_4_11_20(), "Under 11s: Final!", 0),
            "2026-12-04T11-20-00Z-under-11s-final.mp4"
        );
        assert_eq!(
            segment_name(dec_4_11_20(), "Under 11s: Final!", 2),
            "2026-12-04T11-20-00Z-under-11s-final-2.mp4"
        );
    }

    #[test]
    fn a_title_without_letters_leaves_the_time_alone() {
        assert_eq!(
            segment_name(dec_4_11_20(), "★ ★", 0),
            "2026-12-04T11-20-00Z.mp4"
        );
    }

    #[test]
    fn the_start_is_read_back_from_the_name() {
        for counter in [0, 3] {
            let name = segment_name(dec_4_11_20(), "Maths 4B", counter);
            assert_eq!(started(&name), Some(dec_4_11_20()), "{name}");
        }
    }

    #[test]
    fn other_files_and_paths_are_not_segments() {
        for name in [
            "notes.txt",
            "2026-12-04T11-20-00Z.mkv",
            "2026-12-04T11-20-00Zx.mp4",
            "../2026-12-04T11-20-00Z.mp4",
            "2026-12-04T11-20-00Z-a/b.mp4",
            "admin-token",
        ] {
            assert_eq!(started(name), None, "{name}");
        }
    }

    #[test]
    fn long_titles_are_cut() {
        assert!(slug(&"long title ".repeat(20)).len() <= MAX_SLUG);
    }
}
