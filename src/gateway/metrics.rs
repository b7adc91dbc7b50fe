//! Prometheus text metrics: requests by route and status, a latency histogram per route,
//! signatures by format, verdicts by indication, the batch queue depth and, on a routing node,
//! the outbox by state.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket upper bounds, seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    signatures: BTreeMap<String, u64>,
    verdicts: BTreeMap<String, u64>,
    batches_unfinished: i64,
}

/// The gateway's counters.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// Counts a finished request.
    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
        self.with(|m| {
            *m.requests.entry((route.to_string(), status)).or_default() += 1;
            let h = m.latency.entry(route.to_string()).or_default();
            let secs = elapsed.as_secs_f64();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.sum += secs;
            h.count += 1;
        });
    }

    /// Counts a signature made, by format (`pdf`, `cms`, `xml`).
    pub fn signature(&self, format: &str) {
        self.with(|m| *m.signatures.entry(format.to_string()).or_default() += 1);
    }

    /// Counts a verification verdict.
    pub fn verdict(&self, indication: &str) {
        self.with(|m| *m.verdicts.entry(indication.to_string()).or_default() += 1);
    }

    /// Sets the number of batches queued or running (in the database: every process's).
    pub fn set_batches_unfinished(&self, n: i64) {
        self.with(|m| m.batches_unfinished = n);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.with(|m| {
            let mut out = String::new();
            out.push_str("# HELP signgate_http_requests_total HTTP requests by route and status.\n# TYPE signgate_http_requests_total counter\n");
            for ((route, status), n) in &m.requests {
                let _ = writeln!(
                    out,
                    "signgate_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
            out.push_str("# HELP signgate_http_request_duration_seconds Request latency by route.\n# TYPE signgate_http_request_duration_seconds histogram\n");
            for (route, h) in &m.latency {
                for (i, bound) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "signgate_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(out, "signgate_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(
                    out,
                    "signgate_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "signgate_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count
                );
            }
            out.push_str("# HELP signgate_signatures_total Signatures made, by format.\n# TYPE signgate_signatures_total counter\n");
            for (format, n) in &m.signatures {
                let _ = writeln!(out, "signgate_signatures_total{{format=\"{format}\"}} {n}");
            }
            out.push_str("# HELP signgate_verdicts_total Verification verdicts, by indication.\n# TYPE signgate_verdicts_total counter\n");
            for (indication, n) in &m.verdicts {
                let _ = writeln!(
                    out,
                    "signgate_verdicts_total{{indication=\"{indication}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "# HELP signgate_batches_unfinished Batches queued or running (every gateway process of the database).\n# TYPE signgate_batches_unfinished gauge\nsigngate_batches_unfinished {}",
                m.batches_unfinished
            );
            out
        })
    }
}

/// The routing outbox gauge (items by state: pending, delivered, dead), appended to the
/// exposition by a gateway that is a routing node.
pub fn render_route_outbox(states: &[(String, i64)]) -> String {
    let mut out = String::from(
        "# HELP signgate_route_outbox Routing outbox items by state.\n# TYPE signgate_route_outbox gauge\n",
    );
    for (state, n) in states {
        let _ = writeln!(out, "signgate_route_outbox{{state=\"{state}\"}} {n}");
    }
    out
}
