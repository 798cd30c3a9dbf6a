//! What the kernel says about a process and the machine: CPU time (utime + stime from
//! /proc/PID/stat), resident memory (VmRSS), per-CPU busy and steal time (/proc/stat) and UDP
//! receive errors (/proc/net/snmp).

use std::time::Instant;

/// Clock ticks per second for /proc times (`getconf CLK_TCK`; 100 on every Linux we run on).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of `pid`, in ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    fieldcast::procfs::cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// VmRSS of `pid`, in MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(fieldcast::procfs::rss_kib(&status)? as f64 / 1024.0)
}

/// Ticks of one CPU since boot, from its /proc/stat line.
#[derive(Debug, Clone, Copy, Default)]
struct CpuTimes {
    /// Everything but idle and iowait; steal included.
    busy: u64,
    /// Time the hypervisor ran something else while this virtual CPU had work.
    steal: u64,
    total: u64,
}

/// Ticks of each CPU.
fn cpu_times() -> Vec<CpuTimes> {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return Vec::new();
    };
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let values: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal (guest time is inside user)
            let field = |i: usize| values.get(i).copied().unwrap_or(0);
            let total: u64 = (0..8).map(field).sum();
            CpuTimes {
                busy: total - field(3) - field(4),
                steal: field(7),
                total,
            }
        })
        .collect()
}

/// UDP receive errors and buffer overflows so far, machine-wide.
fn udp_errors() -> u64 {
    let Ok(snmp) = std::fs::read_to_string("/proc/net/snmp") else {
        return 0;
    };
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .filter(|(name, _)| *name == "InErrors")
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum()
}

/// A reading at the start of a window.
pub struct Sample {
    at: Instant,
    processes: Vec<Option<u64>>,
    cpus: Vec<CpuTimes>,
    udp_errors: u64,
}

/// Over a window: CPU of each process (% of one core), busy and steal % of each CPU, UDP
/// errors.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WindowUsage {
    pub seconds: f64,
    pub process_cpu_pct: Vec<Option<f64>>,
    pub machine_cpu_busy_pct: Vec<f64>,
    /// Share of each CPU the hypervisor gave to other guests while it had work: on a shared
    /// host this delays whatever was waiting, latency first.
    pub machine_cpu_steal_pct: Vec<f64>,
    pub udp_receive_errors: u64,
}

impl Sample {
    pub fn take(pids: &[u32]) -> Sample {
        Sample {
            at: Instant::now(),
            processes: pids.iter().map(|&pid| cpu_ticks(pid)).collect(),
            cpus: cpu_times(),
            udp_errors: udp_errors(),
        }
    }

    pub fn until_now(&self, pids: &[u32], ticks_per_s: f64) -> WindowUsage {
        let end = Sample::take(pids);
        let seconds = end.at.duration_since(self.at).as_secs_f64();
        WindowUsage {
            seconds,
            process_cpu_pct: self
                .processes
                .iter()
                .zip(&end.processes)
                .map(|(a, b)| {
                    Some((b.as_ref()? - a.as_ref()?) as f64 / ticks_per_s / seconds * 100.0)
                })
                .collect(),
            machine_cpu_busy_pct: self.cpu_share(&end, |t| t.busy),
            machine_cpu_steal_pct: self.cpu_share(&end, |t| t.steal),
            udp_receive_errors: end.udp_errors - self.udp_errors,
        }
    }

    /// Per CPU, the part of its ticks over the window that `part` counts, in %.
    fn cpu_share(&self, end: &Sample, part: impl Fn(&CpuTimes) -> u64) -> Vec<f64> {
        self.cpus
            .iter()
            .zip(&end.cpus)
            .map(|(a, b)| (part(b) - part(a)) as f64 / (b.total - a.total).max(1) as f64 * 100.0)
            .collect()
    }
}
