//! One `[[plugins]]` entry of the sidecar's TOML file: what to load and how to bound it.
//!
//! ```toml
//! [[plugins]]
//! name = "client-slo"
//! path = "plugins/dist/client-slo.wasm"    # relative to the TOML file's directory
//! configuration = '{"threshold_ms": 250}'  # passed verbatim to on_configure
//! ```
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A plugin declared in the sidecar's configuration.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Name used in logs, the `plugin` label of host metrics and the `plugin_name` property.
    pub name: String,
    /// Path to the `.wasm` module.
    pub path: PathBuf,
    /// `filter` (every request goes through it) or `service` (root context only: ticks, shared
    /// data, queues and callouts, never attached to a request; Envoy's `WasmService`).
    #[serde(default)]
    pub kind: PluginKind,
    /// For a service: one instance per sidecar (`true`, Envoy's `singleton`) or one per CPU
    /// (or `instances`). Ignored for filters.
    #[serde(default = "default_singleton")]
    pub singleton: bool,
    /// Items a shared queue registered by this plugin holds; past it, enqueued items are dropped.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// Plugin configuration, handed verbatim to `proxy_on_configure` (buffer type 7).
    #[serde(default)]
    pub configuration: String,
    /// VM configuration, handed verbatim to `proxy_on_vm_start` (buffer type 6).
    #[serde(default)]
    pub vm_configuration: String,
    /// Scope of shared data (`proxy_get/set_shared_data`); plugins with the same id share it.
    /// Defaults to the plugin name.
    #[serde(default)]
    pub vm_id: Option<String>,
    /// The `plugin_root_id` property. Defaults to the plugin name.
    #[serde(default)]
    pub root_id: Option<String>,
    /// Call `on_request_body` with the buffered request body.
    #[serde(default)]
    pub request_body: bool,
    /// Call `on_response_body` with the buffered response body.
    #[serde(default)]
    pub response_body: bool,
    /// Largest body buffered for the plugin; a larger one passes through unobserved.
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// How labels are read from metric names: `auto` (both), `prometheus`, `istio` or `none`.
    #[serde(default)]
    pub labels: LabelConvention,
    /// Envoy `stats_tags`: the first capture group is removed from the name, the second is the
    /// value of label `tag_name`. Applied before the convention.
    #[serde(default)]
    pub tag_regexes: Vec<TagRegex>,
    /// Histogram buckets (upper bounds, in the plugin's unit) for every histogram of the plugin.
    /// Defaults to Envoy's list.
    #[serde(default = "default_buckets")]
    pub histogram_buckets: Vec<f64>,
    /// Buckets per histogram name (the name after label extraction), overriding the above.
    #[serde(default)]
    pub buckets: BTreeMap<String, Vec<f64>>,
    /// Distinct series the plugin may define; past it, defines land in one overflow series.
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    /// Linear memory limit per instance, in MiB.
    #[serde(default = "default_memory_limit")]
    pub memory_limit_mib: u64,
    /// CPU deadline per callback, in milliseconds.
    #[serde(default = "default_deadline")]
    pub deadline_ms: u64,
    /// How long a request waits for a plugin that returned Pause before continuing without it.
    #[serde(default = "default_pause_timeout")]
    pub pause_timeout_ms: u64,
    /// Warm instances kept; 0 means one per CPU.
    #[serde(default)]
    pub instances: usize,
    /// Environment a WASI plugin sees through `environ_get` (never the sidecar's own).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// What a plugin is attached to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// An HTTP filter: its contexts follow requests.
    #[default]
    Filter,
    /// A service: a root context only, started with the sidecar and kept running.
    Service,
}

/// Where labels come from in a metric name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelConvention {
    /// Istio's `k=.=v;.;name` if the name has `=.=`, else Prometheus's `name{k="v"}`.
    #[default]
    Auto,
    /// Only `name{k="v",...}`.
    Prometheus,
    /// Only `k=.=v;.;k=.=v;.;name`.
    Istio,
    /// Names are opaque (tag regexes still apply).
    None,
}

/// One operator tag regex (Envoy `stats_config.stats_tags`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRegex {
    /// The label name.
    pub tag_name: String,
    /// The regex: group 1 is removed from the name, group 2 (or 1) is the label value.
    pub regex: String,
}

/// Envoy's default histogram buckets.
pub(crate) const ENVOY_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

fn default_singleton() -> bool {
    true
}
fn default_queue_capacity() -> usize {
    1024
}
fn default_body_limit() -> usize {
    64 * 1024
}
fn default_buckets() -> Vec<f64> {
    ENVOY_BUCKETS.to_vec()
}
fn default_max_series() -> usize {
    1000
}
fn default_memory_limit() -> u64 {
    64
}
fn default_deadline() -> u64 {
    100
}
fn default_pause_timeout() -> u64 {
    2000
}

impl PluginConfig {
    /// A config with every default, for `name` at `path`.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> PluginConfig {
        PluginConfig {
            name: name.into(),
            path: path.into(),
            kind: PluginKind::Filter,
            singleton: default_singleton(),
            queue_capacity: default_queue_capacity(),
            configuration: String::new(),
            vm_configuration: String::new(),
            vm_id: None,
            root_id: None,
            request_body: false,
            response_body: false,
            body_limit_bytes: default_body_limit(),
            labels: LabelConvention::Auto,
            tag_regexes: Vec::new(),
            histogram_buckets: default_buckets(),
            buckets: BTreeMap::new(),
            max_series: default_max_series(),
            memory_limit_mib: default_memory_limit(),
            deadline_ms: default_deadline(),
            pause_timeout_ms: default_pause_timeout(),
            instances: 0,
            env: BTreeMap::new(),
        }
    }

    /// Makes a relative `path` relative to `base` (the TOML file's directory).
    pub(crate) fn resolve_path(&mut self, base: &Path) {
        if self.path.is_relative() {
            self.path = base.join(&self.path);
        }
    }

    /// Checks what serde cannot: a usable name, sorted buckets, non-zero limits.
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(format!(
                "plugin name {:?} must be [A-Za-z0-9_-]+",
                self.name
            ));
        }
        for (what, buckets) in std::iter::once(("histogram_buckets", &self.histogram_buckets))
            .chain(self.buckets.iter().map(|(k, v)| (k.as_str(), v)))
        {
            if buckets.is_empty()
                || buckets.windows(2).any(|w| w[0] >= w[1])
                || buckets.iter().any(|b| !b.is_finite())
            {
                return Err(format!(
                    "{}: {what} must be finite and strictly increasing",
                    self.name
                ));
            }
        }
        if self.memory_limit_mib == 0
            || self.deadline_ms == 0
            || self.max_series == 0
            || self.queue_capacity == 0
        {
            return Err(format!(
                "{}: memory_limit_mib, deadline_ms, max_series and queue_capacity must be > 0",
                self.name
            ));
        }
        for tag in &self.tag_regexes {
            regex::Regex::new(&tag.regex)
                .map_err(|e| format!("{}: tag regex {:?}: {e}", self.name, tag.tag_name))?;
        }
        Ok(())
    }

    /// The shared-data scope.
    pub(crate) fn vm_id(&self) -> &str {
        self.vm_id.as_deref().unwrap_or(&self.name)
    }

    /// The `plugin_root_id` property.
    pub(crate) fn root_id(&self) -> &str {
        self.root_id.as_deref().unwrap_or(&self.name)
    }

    /// Whether this is a service (root context only, not attached to requests).
    pub fn is_service(&self) -> bool {
        self.kind == PluginKind::Service
    }

    /// Instances kept warm: a singleton service has one; otherwise `instances`, 0 meaning one
    /// per CPU.
    pub fn instance_count(&self) -> usize {
        if self.is_service() && self.singleton {
            return 1;
        }
        match self.instances {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }

    /// Per-callback CPU deadline.
    pub(crate) fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    /// Linear memory limit in bytes.
    pub(crate) fn memory_limit_bytes(&self) -> usize {
        usize::try_from(self.memory_limit_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }
}
