//! The host's own metrics about each plugin (names fixed by the contract, `docs/metrics.md`):
//! `sidecar_plugin_callbacks_total{plugin,callback}`, `sidecar_plugin_faults_total{plugin,kind}`,
//! `sidecar_plugin_reloads_total{plugin,result}`, `sidecar_plugin_callback_duration_seconds{plugin}`,
//! `sidecar_plugin_memory_bytes{plugin}`, `sidecar_plugin_series_overflow_total{plugin}`,
//! `sidecar_plugin_callouts_total{plugin,cluster,result}`, `sidecar_plugin_queue_drops_total{plugin}`.
//!
//! This file registers the families; [`labels`] holds the closed sets of the `callback` and
//! `kind` labels, [`handles`] what one plugin's guest calls update.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::shards::{Durations, ShardedCounter};

mod handles;
mod labels;

pub(crate) use handles::{PluginHandles, clock};
pub(crate) use labels::{Callback, FaultKind};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallbackLabels {
    plugin: String,
    callback: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    plugin: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CalloutLabels {
    plugin: String,
    cluster: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    plugin: String,
    result: &'static str,
}

/// Handles to the host metric families (cheap clones).
#[derive(Clone, Debug, Default)]
pub(crate) struct HostMetrics {
    callbacks: Family<CallbackLabels, ShardedCounter>,
    faults: Family<FaultLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    duration: Family<PluginLabel, Durations>,
    memory: Family<PluginLabel, Gauge>,
    overflow: Family<PluginLabel, Counter>,
    callouts: Family<CalloutLabels, Counter>,
    queue_drops: Family<PluginLabel, Counter>,
}

impl HostMetrics {
    /// Registers the families into `registry` (the root one: names are not prefixed further).
    pub(crate) fn register(registry: &mut Registry) -> HostMetrics {
        let m = HostMetrics::default();
        registry.register(
            "sidecar_plugin_callbacks",
            "Plugin callbacks called",
            m.callbacks.clone(),
        );
        registry.register(
            "sidecar_plugin_faults",
            "Plugin instances discarded, by fault kind",
            m.faults.clone(),
        );
        registry.register(
            "sidecar_plugin_reloads",
            "Plugin (re)loads, by result",
            m.reloads.clone(),
        );
        // Units spelled in the names: some OpenMetrics parsers refuse `# UNIT` on histograms.
        registry.register(
            "sidecar_plugin_callback_duration_seconds",
            "Time spent in plugin callbacks",
            m.duration.clone(),
        );
        registry.register(
            "sidecar_plugin_memory_bytes",
            "Linear memory of a plugin's live instances",
            m.memory.clone(),
        );
        registry.register(
            "sidecar_plugin_series_overflow",
            "Metric definitions past the plugin's series cap",
            m.overflow.clone(),
        );
        registry.register(
            "sidecar_plugin_callouts",
            "HTTP and gRPC callouts answered to plugins, by cluster and result",
            m.callouts.clone(),
        );
        registry.register(
            "sidecar_plugin_queue_drops",
            "Items dropped because a plugin's shared queue was full",
            m.queue_drops.clone(),
        );
        m
    }

    /// Counts a callout's end.
    pub(crate) fn callout(&self, plugin: &str, cluster: &str, result: &'static str) {
        self.callouts
            .get_or_create(&CalloutLabels {
                plugin: plugin.to_owned(),
                cluster: cluster.to_owned(),
                result,
            })
            .inc();
    }

    /// The queue-drop counter of queues `plugin` registers.
    pub(crate) fn queue_drops(&self, plugin: &str) -> Counter {
        self.queue_drops
            .get_or_create(&PluginLabel {
                plugin: plugin.to_owned(),
            })
            .clone()
    }

    /// Counts a load or reload.
    pub(crate) fn reload(&self, plugin: &str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reloads
            .get_or_create(&ReloadLabels {
                plugin: plugin.to_owned(),
                result,
            })
            .inc();
    }

    /// The overflow counter of `plugin`, handed to its metric store.
    pub(crate) fn overflow_counter(&self, plugin: &str) -> Counter {
        self.overflow
            .get_or_create(&PluginLabel {
                plugin: plugin.to_owned(),
            })
            .clone()
    }
}
