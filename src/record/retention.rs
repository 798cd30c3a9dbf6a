//! Which recordings to delete, and whether there is room to record at all. Pure: the caller
//! lists the segments and reads the file system's size; nothing here touches the disk.

use std::time::{Duration, SystemTime};

/// Share of the file system always left free, whatever `max_bytes` says.
pub const KEEP_FREE_PERCENT: u64 = 10;
/// Share of the file system recordings may use when `max_bytes` is not set.
pub const DEFAULT_USE_PERCENT: u64 = 80;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub name: String,
    pub bytes: u64,
    pub started: SystemTime,
}

/// The recordings' file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub total: u64,
    pub free: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes all segments together may take; `None`: [`DEFAULT_USE_PERCENT`] of the disk.
    pub max_bytes: Option<u64>,
    /// Segments older than this go; `None`: kept until the space is needed.
    pub max_age: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Oldest first.
    pub delete: Vec<String>,
    /// Bytes recordings may take now: `max_bytes`, less when the disk holds other things.
    pub budget: u64,
    /// Even with every finished segment gone there is no room: recording must pause.
    pub disk_full: bool,
}

/// Deletes the oldest segments (never `writing`, the one being written) until the rest fit
/// the budget, and every segment older than `max_age`.
pub fn decide(
    segments: &[Segment],
    writing: Option<&str>,
    space: Space,
    limits: Limits,
    now: SystemTime,
) -> Verdict {
    let recorded: u64 = segments.iter().map(|s| s.bytes).sum();
    // Room for recordings: what they take plus what is free, less the share kept free.
    let floor = space.total / 100 * KEEP_FREE_PERCENT;
    let room = recorded.saturating_add(space.free).saturating_sub(floor);
    let cap = limits
        .max_bytes
        .unwrap_or(space.total / 100 * DEFAULT_USE_PERCENT);
    let budget = cap.min(room);
    let mut oldest_first: Vec<&Segment> = segments.iter().collect();
    oldest_first.sort_by(|a, b| (a.started, &a.name).cmp(&(b.started, &b.name)));
    let mut kept = recorded;
    let mut delete = Vec::new();
    for segment in oldest_first {
        if writing == Some(segment.name.as_str()) {
            continue;
        }
        let age = now.duration_since(segment.started).unwrap_or_default();
        let too_old = limits.max_age.is_some_and(|max| age > max);
        if too_old || kept > budget {
            kept -= segment.bytes;
            delete.push(segment.name.clone());
        }
    }
    Verdict {
        delete,
        budget,
        disk_full: budget == 0 || kept > budget,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn segment(name: &str, mb: u64, started: u64) -> Segment {
        Segment {
            name: name.to_owned(),
            bytes: mb * MB,
            started: at(started),
        }
    }

    fn roomy() -> Space {
        Space {
            total: 100_000 * MB,
            free: 90_000 * MB,
        }
    }

    fn bytes(max: u64) -> Limits {
        Limits {
            max_bytes: Some(max * MB),
            max_age: None,
        }
    }

    #[test]
    fn the_oldest_go_first_until_the_rest_fit_max_bytes() {
        let segments = [
            segment("c", 10, 1200),
            segment("a", 10, 0),
            segment("b", 10, 600),
        ];
        let verdict = decide(&segments, Some("c"), roomy(), bytes(15), at(1300));
        assert_eq!(verdict.delete, ["a", "b"]);
        assert!(!verdict.disk_full);
    }

    #[test]
    fn within_the_budget_nothing_goes() {
        let segments = [segment("a", 10, 0), segment("b", 10, 600)];
        let verdict = decide(&segments, Some("b"), roomy(), bytes(25), at(700));
        assert!(verdict.delete.is_empty());
        assert_eq!(verdict.budget, 25 * MB);
    }

    #[test]
    fn segments_past_max_age_go_even_with_room() {
        let segments = [
            segment("a", 1, 0),
            segment("b", 1, 3600),
            segment("c", 1, 7000),
        ];
        let limits = Limits {
            max_bytes: None,
            max_age: Some(Duration::from_secs(5000)),
        };
        let verdict = decide(&segments, Some("c"), roomy(), limits, at(7200));
        assert_eq!(verdict.delete, ["a"]);
    }

    #[test]
    fn the_segment_being_written_is_never_deleted() {
        let segments = [segment("old", 10, 0), segment("now", 10, 600)];
        let limits = Limits {
            max_bytes: Some(5 * MB),
            max_age: Some(Duration::from_secs(1)),
        };
        let verdict = decide(&segments, Some("now"), roomy(), limits, at(10_000));
        assert_eq!(verdict.delete, ["old"]);
        assert!(
            verdict.disk_full,
            "the current one alone is over the budget"
        );
    }

    #[test]
    fn without_max_bytes_recordings_take_at_most_80_percent() {
        let segments: Vec<_> = (0..9)
            .map(|i| segment(&i.to_string(), 10_000, i * 600))
            .collect();
        // 90 GB recorded on a 100 GB disk, nothing else on it.
        let space = Space {
            total: 100_000 * MB,
            free: 10_000 * MB,
        };
        let verdict = decide(&segments, Some("8"), space, Limits::default(), at(6000));
        assert_eq!(verdict.delete, ["0"]);
        assert_eq!(verdict.budget, 80_000 * MB);
    }

    #[test]
    fn other_files_filling_the_disk_shrink_the_budget_to_keep_10_percent_free() {
        let segments = [segment("a", 5_000, 0), segment("b", 5_000, 600)];
        // 95 GB used, 10 GB of it ours: 5 GB free, 10 GB must stay free.
        let space = Space {
            total: 100_000 * MB,
            free: 5_000 * MB,
        };
        let verdict = decide(&segments, Some("b"), space, Limits::default(), at(700));
        assert_eq!(verdict.budget, 5_000 * MB);
        assert_eq!(verdict.delete, ["a"]);
        assert!(!verdict.disk_full);
    }

    #[test]
    fn a_disk_full_of_other_things_pauses_recording() {
        let space = Space {
            total: 100_000 * MB,
            free: 3_000 * MB,
        };
        let verdict = decide(&[], None, space, Limits::default(), at(0));
        assert!(verdict.disk_full);
        assert_eq!(verdict.budget, 0);
        let roomy_again = decide(&[], None, roomy(), Limits::default(), at(0));
        assert!(
            !roomy_again.disk_full,
            "recording resumes once there is room"
        );
    }
}
