//! `sidecar_plugin_callback_duration_seconds{plugin}` as a lock-free histogram: every guest call
//! observes one duration, on every worker at once, and prometheus-client's `Histogram` takes a
//! mutex per observation (shared by the workers: a contended lock per callback).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Bucket bounds, seconds.
const BOUNDS: [f64; 12] = [
    1e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.025, 0.1,
];

/// The same bounds in nanoseconds, compared against without floating point.
const BOUNDS_NS: [u64; 12] = [
    1_000,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    5_000_000,
    25_000_000,
    100_000_000,
];

#[derive(Debug, Default)]
struct Inner {
    /// Per bucket (not cumulative), the last one `+Inf`.
    counts: [AtomicU64; BOUNDS.len() + 1],
    sum_ns: AtomicU64,
}

/// One plugin's callback durations (cheap clones share the counts).
#[derive(Clone, Debug, Default)]
pub struct Durations(Arc<Inner>);

impl Durations {
    /// Records one callback.
    pub fn observe(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NS.partition_point(|bound| *bound < ns);
        self.0.counts[bucket].fetch_add(1, Relaxed);
        self.0.sum_ns.fetch_add(ns, Relaxed);
    }
}

impl TypedMetric for Durations {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Durations {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = BOUNDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.0.counts.iter().map(|c| c.load(Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, c)| c).sum();
        let sum = self.0.sum_ns.load(Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_agree_and_a_duration_on_a_bound_falls_in_that_bucket() {
        for (s, ns) in BOUNDS.iter().zip(BOUNDS_NS) {
            assert_eq!((s * 1e9).round() as u64, ns);
        }
        let durations = Durations::default();
        durations.observe(Duration::from_nanos(1_000));
        durations.observe(Duration::from_nanos(1_001));
        durations.observe(Duration::from_secs(1));
        let counts: Vec<u64> = durations.0.counts.iter().map(|c| c.load(Relaxed)).collect();
        assert_eq!(counts[0], 1, "le=1e-6 is inclusive");
        assert_eq!(counts[1], 1);
        assert_eq!(counts[BOUNDS.len()], 1, "+Inf");
    }
}
