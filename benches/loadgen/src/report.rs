//! The JSON result: parameters, totals, per-second rates, and CPU time of
//! the load generator (and of the server, when its pid is given) read from
//! /proc, so that the two are reported apart.

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// CPU seconds (user + system) of a process, from /proc/PID/stat.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((utime + stime) / tck)
}

/// Milliseconds from a µs histogram's quantile, 0.01 ms resolution.
pub fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    (h.value_at_quantile(q) as f64 / 10.0).round() / 100.0
}

/// `{p50, p90, p99, max}` in ms.
pub fn quantiles(h: &Histogram<u64>) -> Value {
    json!({
        "p50": ms(h, 0.5),
        "p90": ms(h, 0.9),
        "p99": ms(h, 0.99),
        "max": if h.is_empty() { 0.0 } else { (h.max() as f64 / 10.0).round() / 100.0 },
        "count": h.len(),
    })
}

/// `lost / expected` in percent.
pub fn loss_pct(lost: u64, expected: u64) -> f64 {
    if expected == 0 {
        0.0
    } else {
        (lost as f64 * 100.0 / expected as f64 * 1000.0).round() / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_time() {
        assert!(cpu_seconds("self").is_some_and(|s| s >= 0.0));
        assert!(cpu_seconds("0").is_none());
    }

    #[test]
    fn quantiles_in_ms() {
        let mut h = crate::stats::histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let q = quantiles(&h);
        assert!((q["p50"].as_f64().unwrap() - 500.0).abs() < 1.0);
        assert_eq!(loss_pct(1, 200), 0.5);
        assert_eq!(loss_pct(0, 0), 0.0);
    }
}
