//! What Linux's /proc says about a process: CPU time and resident memory. The parsing is
//! pure; `/metrics` reads its own process, the benchmark reads the servers it measures.

/// utime + stime, in clock ticks, from the text of `/proc/PID/stat`.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name, which may hold spaces and ends with ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// VmRSS in KiB, from the text of `/proc/PID/status`.
pub fn rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// CPU ticks and resident KiB of the process `pid` ("self" for this one).
pub fn usage(pid: &str) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((cpu_ticks(&stat)?, rss_kib(&status)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_times_after_a_command_name_with_spaces_and_parens() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 17 0 0 20 0 3 0";
        assert_eq!(cpu_ticks(stat), Some(267));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn reads_resident_memory() {
        let status = "Name:\tfieldcast\nVmPeak:\t  99 kB\nVmRSS:\t   27812 kB\nThreads:\t9\n";
        assert_eq!(rss_kib(status), Some(27812));
        assert_eq!(rss_kib("Name:\tx\n"), None);
    }
}
