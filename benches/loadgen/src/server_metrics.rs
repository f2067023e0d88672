//! Reads a histogram from the server's Prometheus endpoint, so that a
//! window of the run (the steady state) can be taken as the difference of
//! two scrapes. Used for kaigi's `kaigi_forward_delay_seconds`: the delay
//! the server itself adds, which the end-to-end delay cannot isolate when
//! the generator shares the machine.

use serde_json::{Value, json};

use crate::signal::http::{exchange, parse_response};
use crate::signal::tls::insecure_client_config;

/// A Prometheus histogram: cumulative counts per upper bound.
#[derive(Debug, Clone, PartialEq)]
pub struct PromHistogram {
    /// `(le, cumulative count)`, ascending, without `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    /// All observations.
    pub count: u64,
    /// Sum of the observations.
    pub sum: f64,
}

impl PromHistogram {
    /// What was observed between `earlier` and `self`.
    pub fn since(&self, earlier: &PromHistogram) -> PromHistogram {
        let buckets = self
            .buckets
            .iter()
            .zip(&earlier.buckets)
            .map(|(&(le, n), &(_, m))| (le, n.saturating_sub(m)))
            .collect();
        PromHistogram {
            buckets,
            count: self.count.saturating_sub(earlier.count),
            sum: self.sum - earlier.sum,
        }
    }

    /// The `q` quantile, interpolated linearly inside its bucket (as
    /// Prometheus's `histogram_quantile` does); `None` when empty. Above the
    /// last bound it answers the last bound: "at least this".
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q * self.count as f64;
        let mut prev = (0.0, 0u64);
        for &(le, n) in &self.buckets {
            if n as f64 >= rank {
                let in_bucket = (n - prev.1) as f64;
                let frac = if in_bucket > 0.0 {
                    (rank - prev.1 as f64) / in_bucket
                } else {
                    0.0
                };
                return Some(prev.0 + (le - prev.0) * frac);
            }
            prev = (le, n);
        }
        self.buckets.last().map(|&(le, _)| le)
    }

    /// p50/p90/p99/mean in milliseconds, for the results file.
    pub fn summary_ms(&self) -> Value {
        let ms = |v: Option<f64>| v.map(|s| (s * 1e6).round() / 1e3);
        json!({
            "count": self.count,
            "p50": ms(self.quantile(0.5)),
            "p90": ms(self.quantile(0.9)),
            "p99": ms(self.quantile(0.99)),
            "mean": ms((self.count > 0).then(|| self.sum / self.count as f64)),
        })
    }
}

/// Finds histogram `name` in Prometheus text format.
pub fn parse_histogram(text: &str, name: &str) -> Option<PromHistogram> {
    let bucket_prefix = format!("{name}_bucket{{");
    let mut buckets = Vec::new();
    let mut count = None;
    let mut sum = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(&bucket_prefix) {
            let le = rest.split("le=\"").nth(1)?.split('"').next()?;
            let n: u64 = rest.rsplit(' ').next()?.parse().ok()?;
            if le != "+Inf" {
                buckets.push((le.parse::<f64>().ok()?, n));
            }
        } else if let Some(v) = line.strip_prefix(&format!("{name}_count ")) {
            count = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix(&format!("{name}_sum ")) {
            sum = v.trim().parse().ok();
        }
    }
    Some(PromHistogram {
        buckets,
        count: count?,
        sum: sum?,
    })
}

/// `GET url` (http:// or https://, certificate not checked: loopback test
/// servers only); the body. Blocking, for `spawn_blocking`.
pub fn fetch(url: &str) -> anyhow::Result<String> {
    let raw = exchange(url, "GET", None, &insecure_client_config()?)?;
    Ok(String::from_utf8(parse_response(&raw)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP kaigi_forward_delay_seconds x
# TYPE kaigi_forward_delay_seconds histogram
kaigi_forward_delay_seconds_bucket{le=\"0.0001\"} 10
kaigi_forward_delay_seconds_bucket{le=\"0.001\"} 90
kaigi_forward_delay_seconds_bucket{le=\"0.002\"} 100
kaigi_forward_delay_seconds_bucket{le=\"+Inf\"} 100
kaigi_forward_delay_seconds_sum 0.05
kaigi_forward_delay_seconds_count 100
kaigi_other_total 3
";

    #[test]
    fn parses_and_interpolates() {
        let h = parse_histogram(TEXT, "kaigi_forward_delay_seconds").unwrap();
        assert_eq!(h.buckets, vec![(0.0001, 10), (0.001, 90), (0.002, 100)]);
        assert_eq!(h.count, 100);
        // Rank 50 is half-way through the (0.1 ms, 1 ms] bucket's 80.
        let p50 = h.quantile(0.5).unwrap();
        assert!((p50 - 0.00055).abs() < 1e-12, "{p50}");
        let p99 = h.quantile(0.99).unwrap();
        assert!((p99 - 0.0019).abs() < 1e-12, "{p99}");
    }

    #[test]
    fn window_is_the_difference_and_overflow_reports_the_last_bound() {
        let a = parse_histogram(TEXT, "kaigi_forward_delay_seconds").unwrap();
        let later = TEXT
            .replace("} 100\n", "} 140\n")
            .replace("_count 100", "_count 150")
            .replace("_sum 0.05", "_sum 1.05");
        let b = parse_histogram(&later, "kaigi_forward_delay_seconds").unwrap();
        let w = b.since(&a);
        assert_eq!(w.count, 50);
        assert_eq!(w.buckets, vec![(0.0001, 0), (0.001, 0), (0.002, 40)]);
        // 10 of the 50 are above 2 ms: p99 is "at least 2 ms".
        assert_eq!(w.quantile(0.99), Some(0.002));
        assert!(
            parse_histogram(TEXT, "kaigi_absent_seconds").is_none(),
            "a missing family is None"
        );
        assert_eq!(w.since(&w).quantile(0.5), None);
    }
}
