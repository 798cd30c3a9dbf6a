//! Summaries of the measurements: percentiles, the console table with fieldcast/Janus ratios.

use crate::round::RoundResult;
use crate::servers::Kind;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Distribution {
    pub count: usize,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// Nearest-rank percentiles; sorts `values`.
pub fn percentiles(values: &mut [f64]) -> Distribution {
    values.sort_by(f64::total_cmp);
    let at = |p: f64| {
        (!values.is_empty())
            .then(|| values[((values.len() as f64 * p).ceil() as usize).clamp(1, values.len()) - 1])
    };
    Distribution {
        count: values.len(),
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        max: values.last().copied(),
    }
}

fn num(value: Option<f64>, decimals: usize) -> String {
    value.map_or("-".to_owned(), |v| format!("{v:.decimals$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".to_owned(),
    }
}

/// Server CPU per RTP packet sent, in microseconds of one core.
pub fn cpu_us_per_packet(r: &RoundResult) -> Option<f64> {
    let packets_per_s = r.viewers as f64 * r.packets_per_viewer_s;
    let cpu = r.cpu_pct?;
    (packets_per_s > 0.0).then(|| cpu / 100.0 * 1e6 / packets_per_s)
}

pub fn print_table(results: &[RoundResult]) {
    println!(
        "\n{:<9} {:>4} {:>6} {:>8} {:>13} {:>7} {:>8} {:>7} {:>7} {:>9} {:>13} {:>7} {:>9}",
        "server",
        "N",
        "joined",
        "all s",
        "ttff p50/p95",
        "cpu %",
        "cpu/N %",
        "rss MiB",
        "pkt/s",
        "lost p/f",
        "lat p50/p99",
        "client%",
        "steal%"
    );
    for r in results {
        println!(
            "{:<9} {:>4} {:>6} {:>8} {:>13} {:>7} {:>8} {:>7} {:>7.1} {:>9} {:>13} {:>7} {:>9}",
            r.server.name(),
            r.viewers,
            r.joined,
            num(r.all_video_s, 2),
            format!("{}/{}", num(r.ttff_ms.p50, 0), num(r.ttff_ms.p95, 0)),
            num(r.cpu_pct, 1),
            num(r.cpu_per_viewer_pct, 3),
            num(r.rss_mib, 1),
            r.packets_per_viewer_s,
            format!("{}/{}", r.packets_lost, r.frames_lost),
            format!("{}/{}", num(r.latency_ms.p50, 2), num(r.latency_ms.p99, 2)),
            num(r.client_cpu_pct, 0),
            r.machine
                .machine_cpu_steal_pct
                .iter()
                .map(|steal| format!("{steal:.0}"))
                .collect::<Vec<_>>()
                .join("/"),
        );
    }
    let find = |kind: Kind, n: usize| results.iter().find(|r| r.server == kind && r.viewers == n);
    let mut counts: Vec<usize> = results.iter().map(|r| r.viewers).collect();
    counts.dedup();
    let ab: Vec<_> = counts
        .iter()
        .filter_map(|&n| Some((n, find(Kind::Fieldcast, n)?, find(Kind::Baseline, n)?)))
        .collect();
    if !ab.is_empty() {
        println!("\nthis build / the baseline build (fc-base)");
        println!(
            "{:>4} {:>15} {:>9} {:>7} {:>9}",
            "N", "us/pkt new/base", "cpu/pkt", "rss", "lat p99"
        );
        for (n, l, c) in ab {
            println!(
                "{:>4} {:>15} {:>9} {:>7} {:>9}",
                n,
                format!(
                    "{}/{}",
                    num(cpu_us_per_packet(l), 2),
                    num(cpu_us_per_packet(c), 2)
                ),
                ratio(cpu_us_per_packet(l), cpu_us_per_packet(c)),
                ratio(l.rss_mib, c.rss_mib),
                ratio(l.latency_ms.p99, c.latency_ms.p99),
            );
        }
    }
    let pairs: Vec<_> = counts
        .iter()
        .filter_map(|&n| Some((n, find(Kind::Fieldcast, n)?, find(Kind::Janus, n)?)))
        .collect();
    if pairs.is_empty() {
        return;
    }
    println!("\nfieldcast / Janus");
    println!(
        "{:>4} {:>9} {:>7} {:>9} {:>9}",
        "N", "cpu/N", "rss", "ttff p50", "lat p99"
    );
    for (n, f, j) in pairs {
        println!(
            "{:>4} {:>9} {:>7} {:>9} {:>9}",
            n,
            ratio(f.cpu_per_viewer_pct, j.cpu_per_viewer_pct),
            ratio(f.rss_mib, j.rss_mib),
            ratio(f.ttff_ms.p50, j.ttff_ms.p50),
            ratio(f.latency_ms.p99, j.latency_ms.p99),
        );
    }
}
