//! One plugin's handles on the host families, resolved once at load, and the clock its guest
//! calls are timed with: what a callback costs is a few atomic adds.

use std::sync::OnceLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use super::{Callback, FaultKind};
use super::{CallbackLabels, FaultLabels, HostMetrics, PluginLabel};
use crate::metrics::shards::{Durations, ShardedCounter};

/// The clock guest calls are timed with: the TSC where it is invariant (calibrated once per
/// process), else the monotonic clock. A `clock_gettime` pair cost more than an empty guest call.
pub(crate) fn clock() -> &'static quanta::Clock {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

/// One plugin's metric handles, resolved once so a callback costs three atomic adds, on cache
/// lines no other worker writes (see [`crate::metrics::shards`]).
#[derive(Clone, Debug)]
pub(crate) struct PluginHandles {
    /// The shard this instance slot writes.
    shard: usize,
    callbacks: Vec<ShardedCounter>,
    /// By [`FaultKind::ALL`] order.
    faults: [Counter; FaultKind::ALL.len()],
    duration: Durations,
    memory: Gauge,
}

impl PluginHandles {
    /// Handles for `plugin`.
    pub(crate) fn new(metrics: &HostMetrics, plugin: &str) -> PluginHandles {
        let callbacks = Callback::ALL
            .iter()
            .map(|c| {
                let labels = CallbackLabels {
                    plugin: plugin.to_owned(),
                    callback: c.export(),
                };
                metrics.callbacks.get_or_create(&labels).clone()
            })
            .collect();
        let label = PluginLabel {
            plugin: plugin.to_owned(),
        };
        // A closed label set, created at load: every kind reads 0 rather than "No data".
        let faults = FaultKind::ALL.map(|kind| {
            let labels = FaultLabels {
                plugin: plugin.to_owned(),
                kind: kind.label(),
            };
            metrics.faults.get_or_create(&labels).clone()
        });
        PluginHandles {
            shard: 0,
            callbacks,
            faults,
            duration: metrics.duration.get_or_create(&label).clone(),
            memory: metrics.memory.get_or_create(&label).clone(),
        }
    }

    /// The handles an instance in slot `slot` uses.
    pub(crate) fn for_slot(&self, slot: usize) -> PluginHandles {
        PluginHandles {
            shard: slot,
            ..self.clone()
        }
    }

    /// Counts a callback and its duration in nanoseconds.
    pub(crate) fn callback(&self, callback: Callback, elapsed_ns: u64) {
        // `ALL` lists the variants in declaration order.
        if let Some(counter) = self.callbacks.get(callback as usize) {
            counter.inc(self.shard);
        }
        self.duration.observe(self.shard, elapsed_ns);
    }

    /// Counts a fault.
    pub(crate) fn fault(&self, kind: FaultKind) {
        // `ALL` lists the variants in declaration order.
        self.faults[kind as usize].inc();
    }

    /// Adds `delta` bytes to the plugin's memory gauge.
    pub(crate) fn memory_delta(&self, delta: i64) {
        self.memory.inc_by(delta);
    }
}
