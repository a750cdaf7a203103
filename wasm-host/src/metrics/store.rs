//! One plugin's metrics: the series it defined (counters, gauges, histograms with their
//! buckets), the stable ids the hostcalls hand out, the per-plugin series cap with its overflow
//! series, and Envoy's semantics for increment, record and get.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use prometheus_client::metrics::counter::Counter;

use super::FamilyTypes;
use super::names::{NameParser, ParsedName};
use crate::abi::{MetricType, Status};
use crate::config::PluginConfig;

/// Families receiving series defined past a plugin's cap (label `plugin`).
const OVERFLOW_FAMILIES: [&str; 3] = [
    "sidecar_plugin_overflow_series",
    "sidecar_plugin_overflow_series_gauge",
    "sidecar_plugin_overflow_series_histogram",
];

/// One series' value.
#[derive(Debug)]
pub(super) enum Value {
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
pub(super) struct Series {
    pub(super) kind: MetricType,
    pub(super) name: ParsedName,
    pub(super) value: Value,
}

#[derive(Debug, Default)]
pub(super) struct Inner {
    pub(super) series: Vec<Arc<Series>>,
    by_raw: HashMap<(MetricType, String), u32>,
    by_name: HashMap<(MetricType, ParsedName), u32>,
    overflow: [Option<u32>; 3],
    distinct: usize,
}

/// The metrics of one plugin.
#[derive(Debug)]
pub(crate) struct MetricStore {
    plugin: String,
    pub(super) parser: NameParser,
    pub(super) default_buckets: Vec<f64>,
    pub(super) buckets: BTreeMap<String, Vec<f64>>,
    pub(super) max_series: usize,
    families: Arc<FamilyTypes>,
    overflowed: Counter,
    pub(super) inner: RwLock<Inner>,
}

impl MetricStore {
    pub(super) fn new(
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
    pub(crate) fn define(&self, kind: MetricType, raw: &str) -> u32 {
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
    pub(crate) fn increment(&self, id: u32, delta: i64) -> Status {
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
    pub(crate) fn record(&self, id: u32, value: u64) -> Status {
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
    pub(crate) fn get(&self, id: u32) -> Result<u64, Status> {
        let series = self.series(id).ok_or(Status::NotFound)?;
        match &series.value {
            Value::Counter(v) => Ok(v.load(Ordering::Relaxed)),
            Value::Gauge(v) => Ok(v.load(Ordering::Relaxed) as u64),
            Value::Histogram { .. } => Err(Status::BadArgument),
        }
    }
}
