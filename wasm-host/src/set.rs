//! The live set of plugins, swapped atomically on reload. A request takes a snapshot (an `Arc`)
//! when it starts and keeps it to the end, so in-flight requests finish on the instances they
//! began with while new requests use the new set; old plugins are dropped with their last request.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::config::PluginConfig;
use super::plugin::Plugin;
use super::runtime::WasmRuntime;

/// The plugins every request goes through, in configuration order.
#[derive(Clone, Debug)]
pub struct PluginSet {
    runtime: Arc<WasmRuntime>,
    current: Arc<ArcSwap<Vec<Arc<Plugin>>>>,
    upstream: Option<Arc<str>>,
}

/// One worker's own copy of the live plugin list: each request clones it, which touches only
/// this copy's reference count; cloning the shared list made every worker write the same
/// cache line twice per request. (Plugins of a replaced list live until the worker's next
/// request.)
#[derive(Debug)]
pub(crate) struct WorkerSnapshot {
    seen: Arc<Vec<Arc<Plugin>>>,
    copy: Arc<[Arc<Plugin>]>,
}

/// The plugins requests go through (services are not attached to requests).
fn filters(plugins: &[Arc<Plugin>]) -> Arc<[Arc<Plugin>]> {
    plugins
        .iter()
        .filter(|p| !p.is_service())
        .cloned()
        .collect()
}

/// A reload's plugins, loaded and started but not yet serving.
#[derive(Debug)]
pub struct PreparedReload {
    plugins: Vec<Arc<Plugin>>,
    /// Plugins loaded anew (new, or changed bytes or configuration).
    pub loaded: Vec<String>,
    /// Plugins unchanged, kept warm.
    pub kept: Vec<String>,
}

impl PluginSet {
    /// Loads `configs`; any failure fails the whole start (a sidecar must not start half-configured).
    /// `upstream` is the `upstream.address` property (`host:port`).
    pub fn load(
        runtime: Arc<WasmRuntime>,
        configs: &[PluginConfig],
        upstream: Option<String>,
    ) -> anyhow::Result<PluginSet> {
        let upstream: Option<Arc<str>> = upstream.map(Arc::from);
        let plugins = configs
            .iter()
            .map(|c| runtime.load(c.clone(), upstream.clone()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for plugin in &plugins {
            tracing::info!(plugin = %plugin.config().name, path = %plugin.config().path.display(), "plugin loaded");
        }
        Ok(PluginSet {
            runtime,
            current: Arc::new(ArcSwap::from_pointee(plugins)),
            upstream,
        })
    }

    /// The plugins for a request starting now.
    pub(crate) fn snapshot(&self) -> Arc<Vec<Arc<Plugin>>> {
        self.current.load_full()
    }

    /// Whether no filter is loaded right now (services never see requests). Cheaper than
    /// `PluginSet::snapshot`: it takes no reference count, which every worker would otherwise
    /// bump on the same cache line.
    pub fn is_empty(&self) -> bool {
        self.current.load().iter().all(|p| p.is_service())
    }

    /// A copy of the live list of filters for one worker (see [`WorkerSnapshot`]).
    pub(crate) fn worker_snapshot(&self) -> WorkerSnapshot {
        let seen = self.current.load_full();
        let copy = filters(&seen);
        WorkerSnapshot { seen, copy }
    }

    /// The runtime (clusters are set through it).
    pub fn runtime(&self) -> &Arc<WasmRuntime> {
        &self.runtime
    }

    /// The filters for a request starting now, from the worker's copy (refreshed first when a
    /// reload swapped the live list).
    pub(crate) fn snapshot_for(&self, local: &mut WorkerSnapshot) -> Arc<[Arc<Plugin>]> {
        let current = self.current.load();
        if !Arc::ptr_eq(&local.seen, &current) {
            local.seen = Arc::clone(&current);
            local.copy = filters(&current);
        }
        local.copy.clone()
    }

    /// Loads what changed in `configs` without touching the live set: unchanged plugins (same
    /// configuration, same module bytes) keep their warm instances; changed or new ones are
    /// compiled and started. Any failure fails the whole reload (the live set stays as it was).
    pub fn prepare(&self, configs: &[PluginConfig]) -> anyhow::Result<PreparedReload> {
        let old = self.snapshot();
        let mut prepared = PreparedReload {
            plugins: Vec::with_capacity(configs.len()),
            loaded: Vec::new(),
            kept: Vec::new(),
        };
        for config in configs {
            let previous = old.iter().find(|p| p.config().name == config.name);
            let unchanged = previous.is_some_and(|p| {
                p.config() == config
                    && std::fs::read(&config.path)
                        .ok()
                        .map(|w| super::runtime::fingerprint(&w))
                        == Some(p.fingerprint())
            });
            match previous {
                Some(previous) if unchanged => {
                    prepared.kept.push(config.name.clone());
                    prepared.plugins.push(previous.clone());
                }
                _ => {
                    let plugin = self.runtime.load(config.clone(), self.upstream.clone())?;
                    prepared.plugins.push(plugin);
                    prepared.loaded.push(config.name.clone());
                }
            }
        }
        Ok(prepared)
    }

    /// Puts a prepared reload in service. Requests in flight finish on the plugins they started
    /// with; plugins no longer configured are dropped after their last request.
    pub fn commit(&self, prepared: PreparedReload) {
        let names: Vec<&str> = prepared
            .plugins
            .iter()
            .map(|p| p.config().name.as_str())
            .collect();
        self.runtime.retain_metrics(&names);
        tracing::info!(loaded = ?prepared.loaded, kept = ?prepared.kept, "plugins reloaded");
        let old = self.current.swap(Arc::new(prepared.plugins));
        let current = self.current.load();
        for plugin in old.iter() {
            if !current.iter().any(|p| Arc::ptr_eq(p, plugin)) {
                plugin.retire();
            }
        }
    }

    /// `prepare` then `commit`.
    pub fn reload(&self, configs: &[PluginConfig]) -> anyhow::Result<()> {
        let prepared = self.prepare(configs)?;
        self.commit(prepared);
        Ok(())
    }

    /// `configs` with relative module paths made relative to the TOML file's directory (or the
    /// working directory when there is no file).
    pub fn resolve(
        configs: &[PluginConfig],
        config_path: Option<&std::path::Path>,
    ) -> Vec<PluginConfig> {
        let base = config_path
            .and_then(std::path::Path::parent)
            .unwrap_or(std::path::Path::new(""));
        configs
            .iter()
            .cloned()
            .map(|mut c| {
                c.resolve_path(base);
                c
            })
            .collect()
    }
}
