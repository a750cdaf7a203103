//! The process-wide part of the host, built once: the wasmtime `Engine` (epoch interruption on,
//! optional compiled-code cache on disk keyed by the module's hash; where modules are compiled
//! is `compile`'s business), the `Linker` with every
//! hostcall, the epoch ticker, shared data per VM id, shared queues, the callout clusters, and
//! the metric stores. `load` compiles a
//! plugin once and starts its first instance as a canary, so a broken plugin or a rejected
//! configuration is a load error, not a runtime surprise.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use arc_swap::ArcSwap;
use prometheus_client::registry::Registry;
use wasmtime::{Cache, CacheConfig, Config, Engine, Linker, Module, ProfilingStrategy};

use super::abi::ABI_VERSIONS;
use super::cluster::{ClusterConfig, ClusterSet};
use super::compile::{CompileOptions, Compiler};
use super::config::PluginConfig;
use super::limits::EpochTicker;
use super::metrics::PluginMetrics;
use super::metrics::host::HostMetrics;
use super::plugin::Plugin;
use super::queues::QueueRegistry;
use super::shared_data::SharedDataRegistry;
use super::state::{HostState, PluginShared};

/// Engine, linker and process-wide plugin state.
pub struct WasmRuntime {
    engine: Engine,
    compiler: Compiler,
    linker: Linker<HostState>,
    shared_data: SharedDataRegistry,
    clusters: Arc<ArcSwap<ClusterSet>>,
    queues: Arc<QueueRegistry>,
    metrics: PluginMetrics,
    host_metrics: HostMetrics,
    /// Started with the first plugin: a sidecar without plugins has no 1 ms wake-ups.
    ticker: std::sync::Mutex<Option<EpochTicker>>,
}

impl std::fmt::Debug for WasmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmRuntime").finish_non_exhaustive()
    }
}

impl WasmRuntime {
    /// Builds the engine and registers plugin and host metrics into `registry` (the root one).
    /// `options` say where modules are compiled and cached.
    pub fn new(
        registry: &mut Registry,
        options: &CompileOptions,
    ) -> anyhow::Result<Arc<WasmRuntime>> {
        let compiler = Compiler::new(options);
        let engine = Engine::new(&engine_config(compiler.cache_dir(options))?)
            .map_err(anyhow::Error::from)
            .context("creating the wasm engine")?;
        let mut linker = Linker::new(&engine);
        super::host::add_to_linker(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking the Proxy-Wasm hostcalls")?;
        // Calibrated now (a few milliseconds), not inside the first guest call's deadline.
        super::metrics::host::clock();
        let metrics = PluginMetrics::default();
        registry.register_collector(Box::new(metrics.clone()));
        let host_metrics = HostMetrics::register(registry);
        Ok(Arc::new(WasmRuntime {
            engine,
            compiler,
            linker,
            shared_data: SharedDataRegistry::default(),
            clusters: Arc::default(),
            queues: Arc::default(),
            metrics,
            host_metrics,
            ticker: std::sync::Mutex::new(None),
        }))
    }

    /// Compiles `config.path`, checks its ABI version, and starts a canary instance.
    /// `upstream` is the `upstream.address` property (`host:port`).
    pub(crate) fn load(
        &self,
        config: PluginConfig,
        upstream: Option<Arc<str>>,
    ) -> anyhow::Result<Arc<Plugin>> {
        let name = config.name.clone();
        let result = self.load_inner(config, upstream);
        self.host_metrics.reload(&name, result.is_ok());
        result.with_context(|| format!("loading plugin {name}"))
    }

    fn load_inner(
        &self,
        config: PluginConfig,
        upstream: Option<Arc<str>>,
    ) -> anyhow::Result<Arc<Plugin>> {
        config.validate().map_err(anyhow::Error::msg)?;
        {
            let mut ticker = self.ticker.lock().unwrap_or_else(|e| e.into_inner());
            if ticker.is_none() {
                *ticker = Some(
                    EpochTicker::start(self.engine.weak())
                        .context("starting the epoch ticker thread")?,
                );
            }
        }
        let wasm = std::fs::read(&config.path)
            .with_context(|| format!("reading {}", config.path.display()))?;
        let module = self
            .compiler
            .compile(&self.engine, &wasm, &config.name)
            .with_context(|| format!("compiling {}", config.path.display()))?;
        check_abi_version(&module)?;
        let mut linker = self.linker.clone();
        // Imports outside the ABI (exotic WASI, Envoy extensions) trap only if called.
        linker.define_unknown_imports_as_traps(&module)?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(anyhow::Error::from)
            .context("linking the module's imports")?;
        let metrics = self
            .metrics
            .store(&config, self.host_metrics.overflow_counter(&config.name))
            .context("compiling tag regexes")?;
        let shared = Arc::new(PluginShared {
            shared_data: self.shared_data.get(config.vm_id()),
            metrics,
            clusters: self.clusters.clone(),
            queues: self.queues.clone(),
            queue_drops: self.host_metrics.queue_drops(&config.name),
            config,
            upstream,
        });
        Plugin::start(
            &self.engine,
            pre,
            shared,
            &self.host_metrics,
            fingerprint(&wasm),
        )
    }

    /// Puts `configs` in service as the clusters callouts may target (at start and on reload;
    /// unchanged clusters keep their connection pools). Invalid entries are refused whole.
    pub fn set_clusters(&self, configs: &[ClusterConfig]) -> anyhow::Result<()> {
        for config in configs {
            config.validate().map_err(anyhow::Error::msg)?;
        }
        let previous = self.clusters.load();
        self.clusters
            .store(Arc::new(ClusterSet::build(configs, Some(&previous))));
        Ok(())
    }

    /// Drops the metric stores of plugins no longer configured.
    pub fn retain_metrics(&self, names: &[&str]) {
        self.metrics.retain(names);
    }
}

/// The engine's settings, the same in every process that compiles for it: a child compiling
/// into the cache must hash its settings as the runtime that loads from it does.
pub(super) fn engine_config(cache_dir: Option<&Path>) -> anyhow::Result<Config> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    // Compiled on a thread of its own (see `compile`), not on rayon's threads, which live on.
    config.parallel_compilation(false);
    // For `perf`: names the guest's compiled functions in /tmp/perf-<pid>.map.
    if std::env::var_os("REDSIDE_WASM_PERFMAP").is_some_and(|v| v == "1") {
        config.profiler(ProfilingStrategy::PerfMap);
    }
    if let Some(dir) = cache_dir {
        let mut cache = CacheConfig::new();
        cache.with_directory(dir);
        let cache = Cache::new(cache)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("opening the wasm cache in {}", dir.display()))?;
        config.cache(Some(cache));
    }
    Ok(config)
}

/// The module must export `proxy_abi_version_0_2_0` or `_0_2_1` (a marker, never called).
fn check_abi_version(module: &Module) -> anyhow::Result<()> {
    let markers: Vec<&str> = module
        .exports()
        .map(|e| e.name())
        .filter(|n| n.starts_with("proxy_abi_version_"))
        .collect();
    if markers.iter().any(|m| ABI_VERSIONS.contains(m)) {
        return Ok(());
    }
    match markers.first() {
        Some(other) => {
            bail!("unsupported Proxy-Wasm ABI version {other:?}: this host speaks 0.2.0 and 0.2.1")
        }
        None => bail!(
            "not a Proxy-Wasm module: no proxy_abi_version_0_2_x export (this host speaks 0.2.0 and 0.2.1)"
        ),
    }
}

/// Identity of a module's bytes, to tell whether a reload changed it.
pub(super) fn fingerprint(wasm: &[u8]) -> (usize, u64) {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    wasm.hash(&mut hasher);
    (wasm.len(), hasher.finish())
}
