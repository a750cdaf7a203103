//! The host metrics every guest call updates (`sidecar_plugin_callbacks_total` and
//! `sidecar_plugin_callback_duration_seconds`), split in per-slot shards. Each proxy worker keeps
//! to its own instance slot, so with shards the workers never write the same cache line; a plain
//! shared counter bounced its line between cores on every callback, and prometheus-client's
//! `Histogram` even takes a mutex per observation. Scrapes add the shards up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Shards per metric; a slot writes shard `slot % SHARDS`.
pub(crate) const SHARDS: usize = 8;

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

/// A value on its own cache lines (128 bytes: adjacent-line prefetching pairs lines).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Line<T>(T);

/// A counter in shards.
#[derive(Clone, Debug, Default)]
pub(crate) struct ShardedCounter(Arc<[Line<AtomicU64>; SHARDS]>);

impl ShardedCounter {
    /// Adds one in `shard`.
    pub(crate) fn inc(&self, shard: usize) {
        self.0[shard % SHARDS].0.fetch_add(1, Relaxed);
    }

    /// The total.
    pub(crate) fn get(&self) -> u64 {
        self.0.iter().map(|s| s.0.load(Relaxed)).sum()
    }
}

impl TypedMetric for ShardedCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for ShardedCounter {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[derive(Debug, Default)]
struct Buckets {
    /// Per bucket (not cumulative), the last one `+Inf`.
    counts: [AtomicU64; BOUNDS.len() + 1],
    sum_ns: AtomicU64,
}

/// One plugin's callback durations, in shards (cheap clones share the counts).
#[derive(Clone, Debug, Default)]
pub(crate) struct Durations(Arc<[Line<Buckets>; SHARDS]>);

impl Durations {
    /// Records one callback of `ns` nanoseconds in `shard`.
    pub(crate) fn observe(&self, shard: usize, ns: u64) {
        let bucket = BOUNDS_NS.partition_point(|bound| *bound < ns);
        let shard = &self.0[shard % SHARDS].0;
        shard.counts[bucket].fetch_add(1, Relaxed);
        shard.sum_ns.fetch_add(ns, Relaxed);
    }

    /// Per-bucket counts (not cumulative) and the sum in nanoseconds, over all shards.
    fn totals(&self) -> ([u64; BOUNDS.len() + 1], u64) {
        let mut counts = [0; BOUNDS.len() + 1];
        let mut sum = 0;
        for shard in self.0.iter() {
            for (total, count) in counts.iter_mut().zip(&shard.0.counts) {
                *total += count.load(Relaxed);
            }
            sum += shard.0.sum_ns.load(Relaxed);
        }
        (counts, sum)
    }
}

impl TypedMetric for Durations {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Durations {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (counts, sum_ns) = self.totals();
        let buckets: Vec<(f64, u64)> = BOUNDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(counts)
            .collect();
        let count = counts.iter().sum();
        encoder.encode_histogram::<NoLabelSet>(sum_ns as f64 / 1e9, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
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
        durations.observe(0, 1_000);
        durations.observe(1, 1_001);
        durations.observe(SHARDS + 3, 1_000_000_000);
        let (counts, sum) = durations.totals();
        assert_eq!(counts[0], 1, "le=1e-6 is inclusive");
        assert_eq!(counts[1], 1);
        assert_eq!(counts[BOUNDS.len()], 1, "+Inf");
        assert_eq!(sum, 1_000_002_001);
    }

    #[test]
    fn a_sharded_counter_adds_its_shards_up() {
        let counter = ShardedCounter::default();
        for shard in 0..3 * SHARDS {
            counter.inc(shard);
        }
        assert_eq!(counter.get(), 3 * SHARDS as u64);
    }
}
