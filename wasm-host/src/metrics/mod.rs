//! Plugin-defined metrics (`proxy_define_metric` and friends), kept in the host so values
//! survive instance restarts and are shared by every instance of a plugin, and exposed on the
//! sidecar's `/metrics` by one prometheus-client `Collector` over all plugins.
//!
//! Ids are stable: the same `(type, name)` returns the same id (plugins may define on every
//! request or every instance). Each plugin has a cap on distinct series; past it, defines still
//! answer OK (the Rust SDK aborts on anything else) with the id of a per-type overflow series,
//! and `sidecar_plugin_series_overflow_total{plugin}` goes up.
//!
//! Every plugin metric lives here, one concern per file: this file holds what spans plugins
//! ([`PluginMetrics`]: every plugin's store, the collector over them, the family-type registry);
//! `store` one plugin's series ([`MetricStore`]); [`names`] how a defined name becomes a family
//! and labels; [`host`] the host's own `sidecar_plugin_*` families and per-plugin handles;
//! [`shards`] the per-worker shards of the metrics every guest call updates. The hostcalls
//! (`crate::host`'s `metrics`) only translate the ABI to these.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;

use super::abi::MetricType;
use super::config::PluginConfig;

pub(crate) mod host;
pub(crate) mod names;
pub(crate) mod shards;
mod store;

pub(crate) use store::MetricStore;
use store::{Series, Value};

/// Which type owns each family name, across plugins: Prometheus allows one type per family.
#[derive(Debug, Default)]
struct FamilyTypes(Mutex<HashMap<String, MetricType>>);

impl FamilyTypes {
    fn claim(&self, family: &str, kind: MetricType) -> bool {
        let mut types = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *types.entry(family.to_owned()).or_insert(kind) == kind
    }
}

/// Every plugin's store, and the collector exposing them.
#[derive(Clone, Debug, Default)]
pub(crate) struct PluginMetrics {
    stores: Arc<RwLock<BTreeMap<String, Arc<MetricStore>>>>,
    families: Arc<FamilyTypes>,
}

impl PluginMetrics {
    /// The store for `config`: the existing one when its naming rules are unchanged (a reload
    /// keeps the values), else a fresh one.
    pub(crate) fn store(
        &self,
        config: &PluginConfig,
        overflowed: Counter,
    ) -> Result<Arc<MetricStore>, regex::Error> {
        let mut stores = self.stores.write().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = stores.get(&config.name) {
            let fresh = MetricStore::new(config, self.families.clone(), overflowed.clone())?;
            let same = existing.max_series == fresh.max_series
                && existing.default_buckets == fresh.default_buckets
                && existing.buckets == fresh.buckets
                && format!("{:?}", existing.parser) == format!("{:?}", fresh.parser);
            if same {
                return Ok(existing.clone());
            }
        }
        let store = Arc::new(MetricStore::new(config, self.families.clone(), overflowed)?);
        stores.insert(config.name.clone(), store.clone());
        Ok(store)
    }

    /// Forgets plugins no longer configured.
    pub(crate) fn retain(&self, names: &[&str]) {
        let mut stores = self.stores.write().unwrap_or_else(|e| e.into_inner());
        stores.retain(|name, _| names.contains(&name.as_str()));
    }
}

impl Collector for PluginMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let stores: Vec<_> = self
            .stores
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut families: BTreeMap<(String, u8), Vec<Arc<Series>>> = BTreeMap::new();
        for store in &stores {
            for series in &store.inner.read().unwrap_or_else(|e| e.into_inner()).series {
                families
                    .entry((series.name.family.clone(), series.kind as u8))
                    .or_default()
                    .push(series.clone());
            }
        }
        for ((family, _), series) in &families {
            let kind = match series[0].kind {
                MetricType::Counter => prometheus_client::metrics::MetricType::Counter,
                MetricType::Gauge => prometheus_client::metrics::MetricType::Gauge,
                MetricType::Histogram => prometheus_client::metrics::MetricType::Histogram,
            };
            let mut metric =
                encoder.encode_descriptor(family, "Defined by a Proxy-Wasm plugin", None, kind)?;
            for s in series {
                let mut labelled = metric.encode_family(&s.name.labels)?;
                match &s.value {
                    Value::Counter(v) => labelled
                        .encode_counter::<NoLabelSet, _, u64>(&v.load(Ordering::Relaxed), None)?,
                    Value::Gauge(v) => labelled.encode_gauge(&v.load(Ordering::Relaxed))?,
                    Value::Histogram {
                        bounds,
                        counts,
                        sum,
                    } => {
                        let counts: Vec<u64> =
                            counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
                        let buckets: Vec<(f64, u64)> = bounds
                            .iter()
                            .copied()
                            .chain([f64::INFINITY])
                            .zip(counts.iter().copied())
                            .collect();
                        let count = counts.iter().sum();
                        labelled.encode_histogram::<NoLabelSet>(
                            sum.load(Ordering::Relaxed) as f64,
                            count,
                            &buckets,
                            None,
                        )?
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
