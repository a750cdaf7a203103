//! The host's own metrics about each plugin (names fixed by the contract, `docs/metrics.md`):
//! `sidecar_plugin_callbacks_total{plugin,callback}`, `sidecar_plugin_faults_total{plugin,kind}`,
//! `sidecar_plugin_reloads_total{plugin,result}`, `sidecar_plugin_callback_duration_seconds{plugin}`,
//! `sidecar_plugin_memory_bytes{plugin}`, `sidecar_plugin_series_overflow_total{plugin}`,
//! `sidecar_plugin_callouts_total{plugin,cluster,result}`, `sidecar_plugin_queue_drops_total{plugin}`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use std::sync::OnceLock;

use super::shards::{Durations, ShardedCounter};

/// Why an instance was discarded (or never made).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// The guest trapped (panic, unreachable, out-of-bounds access, ...).
    Trap,
    /// A callback ran past its CPU deadline.
    Deadline,
    /// The guest asked for memory past its limit.
    Memory,
    /// A replacement instance failed to start.
    Instantiate,
    /// A paused request was not resumed in time (the request continued without the plugin).
    PauseTimeout,
}

impl FaultKind {
    /// Every kind: each plugin's fault series exist (at 0) from its load on.
    pub(crate) const ALL: [FaultKind; 5] = [
        FaultKind::Trap,
        FaultKind::Deadline,
        FaultKind::Memory,
        FaultKind::Instantiate,
        FaultKind::PauseTimeout,
    ];

    /// The `kind` label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            FaultKind::Trap => "trap",
            FaultKind::Deadline => "deadline",
            FaultKind::Memory => "memory",
            FaultKind::Instantiate => "instantiate",
            FaultKind::PauseTimeout => "pause_timeout",
        }
    }
}

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

/// The clock guest calls are timed with: the TSC where it is invariant (calibrated once per
/// process), else the monotonic clock. A `clock_gettime` pair cost more than an empty guest call.
pub(crate) fn clock() -> &'static quanta::Clock {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

/// The guest callbacks the host calls (the `callback` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Callback {
    /// `_initialize`.
    Initialize,
    /// `proxy_on_context_create`.
    ContextCreate,
    /// `proxy_on_vm_start`.
    VmStart,
    /// `proxy_on_configure`.
    Configure,
    /// `proxy_on_tick`.
    Tick,
    /// `proxy_on_request_headers`.
    RequestHeaders,
    /// `proxy_on_request_body`.
    RequestBody,
    /// `proxy_on_request_trailers`.
    RequestTrailers,
    /// `proxy_on_response_headers`.
    ResponseHeaders,
    /// `proxy_on_response_body`.
    ResponseBody,
    /// `proxy_on_response_trailers`.
    ResponseTrailers,
    /// `proxy_on_log`.
    Log,
    /// `proxy_on_done`.
    Done,
    /// `proxy_on_delete`.
    Delete,
    /// `proxy_on_http_call_response`.
    HttpCallResponse,
    /// `proxy_on_queue_ready`.
    QueueReady,
    /// `proxy_on_grpc_receive`.
    GrpcReceive,
    /// `proxy_on_grpc_close`.
    GrpcClose,
    /// `proxy_on_grpc_receive_initial_metadata`.
    GrpcInitialMetadata,
    /// `proxy_on_grpc_receive_trailing_metadata`.
    GrpcTrailingMetadata,
}

impl Callback {
    /// Every callback, in declaration order.
    pub(crate) const ALL: [Callback; 20] = [
        Callback::Initialize,
        Callback::ContextCreate,
        Callback::VmStart,
        Callback::Configure,
        Callback::Tick,
        Callback::RequestHeaders,
        Callback::RequestBody,
        Callback::RequestTrailers,
        Callback::ResponseHeaders,
        Callback::ResponseBody,
        Callback::ResponseTrailers,
        Callback::Log,
        Callback::Done,
        Callback::Delete,
        Callback::HttpCallResponse,
        Callback::QueueReady,
        Callback::GrpcReceive,
        Callback::GrpcClose,
        Callback::GrpcInitialMetadata,
        Callback::GrpcTrailingMetadata,
    ];

    /// The export's name, which is also the label.
    pub(crate) fn export(self) -> &'static str {
        match self {
            Callback::Initialize => "_initialize",
            Callback::ContextCreate => "proxy_on_context_create",
            Callback::VmStart => "proxy_on_vm_start",
            Callback::Configure => "proxy_on_configure",
            Callback::Tick => "proxy_on_tick",
            Callback::RequestHeaders => "proxy_on_request_headers",
            Callback::RequestBody => "proxy_on_request_body",
            Callback::RequestTrailers => "proxy_on_request_trailers",
            Callback::ResponseHeaders => "proxy_on_response_headers",
            Callback::ResponseBody => "proxy_on_response_body",
            Callback::ResponseTrailers => "proxy_on_response_trailers",
            Callback::Log => "proxy_on_log",
            Callback::Done => "proxy_on_done",
            Callback::Delete => "proxy_on_delete",
            Callback::HttpCallResponse => "proxy_on_http_call_response",
            Callback::QueueReady => "proxy_on_queue_ready",
            Callback::GrpcReceive => "proxy_on_grpc_receive",
            Callback::GrpcClose => "proxy_on_grpc_close",
            Callback::GrpcInitialMetadata => "proxy_on_grpc_receive_initial_metadata",
            Callback::GrpcTrailingMetadata => "proxy_on_grpc_receive_trailing_metadata",
        }
    }
}

/// One plugin's metric handles, resolved once so a callback costs three atomic adds, on cache
/// lines no other worker writes (see [`super::shards`]).
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
