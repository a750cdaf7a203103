//! Plugin-defined metrics (`proxy_define_metric` and friends), kept in the host so values
//! survive instance restarts and are shared by every instance of a plugin, and exposed on the
//! sidecar's `/metrics` by one prometheus-client `Collector` over all plugins.
//!
//! Ids are stable: the same `(type, name)` returns the same id (plugins may define on every
//! request or every instance). Each plugin has a cap on distinct series; past it, defines still
//! answer OK (the Rust SDK aborts on anything else) with the id of a per-type overflow series,
//! and `sidecar_plugin_series_overflow_total{plugin}` goes up.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;

use super::abi::{MetricType, Status};
use super::config::PluginConfig;
use super::metric_names::{NameParser, ParsedName};

/// Families receiving series defined past a plugin's cap (label `plugin`).
const OVERFLOW_FAMILIES: [&str; 3] = [
    "sidecar_plugin_overflow_series",
    "sidecar_plugin_overflow_series_gauge",
    "sidecar_plugin_overflow_series_histogram",
];

/// One series' value.
#[derive(Debug)]
enum Value {
    Counter(AtomicU64),
    Gauge(AtomicI64),
    Histogram {
        bounds: Vec<f64>,
        counts: Vec<AtomicU64>,
        sum: AtomicU64,
    },
}

/// One exposed series.
#[derive(Debug)]
struct Series {
    kind: MetricType,
    name: ParsedName,
    value: Value,
}

#[derive(Debug, Default)]
struct Inner {
    series: Vec<Arc<Series>>,
    by_raw: HashMap<(MetricType, String), u32>,
    by_name: HashMap<(MetricType, ParsedName), u32>,
    overflow: [Option<u32>; 3],
    distinct: usize,
}

/// The metrics of one plugin.
#[derive(Debug)]
pub struct MetricStore {
    plugin: String,
    parser: NameParser,
    default_buckets: Vec<f64>,
    buckets: BTreeMap<String, Vec<f64>>,
    max_series: usize,
    families: Arc<FamilyTypes>,
    overflowed: Counter,
    inner: RwLock<Inner>,
}

impl MetricStore {
    fn new(
        config: &PluginConfig,
        families: Arc<FamilyTypes>,
        overflowed: Counter,
    ) -> Result<MetricStore, regex::Error> {
        Ok(MetricStore {
            plugin: config.name.clone(),
            parser: NameParser::new(config)?,
            default_buckets: config.histogram_buckets.clone(),
            buckets: config.buckets.clone(),
            max_series: config.max_series,
            families,
            overflowed,
            inner: RwLock::default(),
        })
    }

    /// `proxy_define_metric`: the id of the series `raw` names, created on first use. Always
    /// succeeds for a known type.
    pub fn define(&self, kind: MetricType, raw: &str) -> u32 {
        let key = (kind, raw.to_owned());
        if let Some(id) = self
            .inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_raw
            .get(&key)
        {
            return *id;
        }
        let name = self.parser.parse(kind, raw);
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = inner.by_name.get(&(kind, name.clone())).copied() {
            inner.by_raw.insert(key, id);
            return id;
        }
        if inner.distinct >= self.max_series || !self.families.claim(&name.family, kind) {
            self.overflowed.inc();
            tracing::warn!(plugin = %self.plugin, metric = raw, "plugin metric lands in the overflow series");
            return self.overflow_id(&mut inner, kind);
        }
        let id = self.push(&mut inner, kind, name.clone());
        inner.distinct += 1;
        inner.by_name.insert((kind, name), id);
        inner.by_raw.insert(key, id);
        id
    }

    fn overflow_id(&self, inner: &mut Inner, kind: MetricType) -> u32 {
        if let Some(id) = inner.overflow[kind as usize] {
            return id;
        }
        let family = OVERFLOW_FAMILIES[kind as usize].to_owned();
        let labels = vec![("plugin".to_owned(), self.plugin.clone())];
        let id = self.push(inner, kind, ParsedName { family, labels });
        inner.overflow[kind as usize] = Some(id);
        id
    }

    fn push(&self, inner: &mut Inner, kind: MetricType, name: ParsedName) -> u32 {
        let value = match kind {
            MetricType::Counter => Value::Counter(AtomicU64::new(0)),
            MetricType::Gauge => Value::Gauge(AtomicI64::new(0)),
            MetricType::Histogram => {
                let bounds = self
                    .buckets
                    .get(&name.family)
                    .unwrap_or(&self.default_buckets)
                    .clone();
                let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
                Value::Histogram {
                    bounds,
                    counts,
                    sum: AtomicU64::new(0),
                }
            }
        };
        inner.series.push(Arc::new(Series { kind, name, value }));
        inner.series.len() as u32 // ids start at 1
    }

    fn series(&self, id: u32) -> Option<Arc<Series>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.series.get((id as usize).checked_sub(1)?).cloned()
    }

    /// `proxy_increment_metric`, with Envoy's rules: a counter takes only `delta > 0`, a
    /// histogram takes none.
    pub fn increment(&self, id: u32, delta: i64) -> Status {
        let Some(series) = self.series(id) else {
            return Status::NotFound;
        };
        match &series.value {
            Value::Counter(v) if delta > 0 => v.fetch_add(delta as u64, Ordering::Relaxed),
            Value::Gauge(v) => v.fetch_add(delta, Ordering::Relaxed) as u64,
            _ => return Status::BadArgument,
        };
        Status::Ok
    }

    /// `proxy_record_metric`: gauge set, histogram sample, counter add (Envoy parity).
    pub fn record(&self, id: u32, value: u64) -> Status {
        let Some(series) = self.series(id) else {
            return Status::NotFound;
        };
        match &series.value {
            Value::Counter(v) => {
                v.fetch_add(value, Ordering::Relaxed);
            }
            Value::Gauge(v) => v.store(value as i64, Ordering::Relaxed),
            Value::Histogram {
                bounds,
                counts,
                sum,
            } => {
                let slot = bounds.partition_point(|b| *b < value as f64);
                counts[slot].fetch_add(1, Ordering::Relaxed);
                sum.fetch_add(value, Ordering::Relaxed);
            }
        }
        Status::Ok
    }

    /// `proxy_get_metric`: counters and gauges; a histogram has no single value.
    pub fn get(&self, id: u32) -> Result<u64, Status> {
        let series = self.series(id).ok_or(Status::NotFound)?;
        match &series.value {
            Value::Counter(v) => Ok(v.load(Ordering::Relaxed)),
            Value::Gauge(v) => Ok(v.load(Ordering::Relaxed) as u64),
            Value::Histogram { .. } => Err(Status::BadArgument),
        }
    }
}

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
pub struct PluginMetrics {
    stores: Arc<RwLock<BTreeMap<String, Arc<MetricStore>>>>,
    families: Arc<FamilyTypes>,
}

impl PluginMetrics {
    /// The store for `config`: the existing one when its naming rules are unchanged (a reload
    /// keeps the values), else a fresh one.
    pub fn store(
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
    pub fn retain(&self, names: &[&str]) {
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
#[path = "metrics_tests.rs"]
mod tests;
