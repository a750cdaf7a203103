//! The api's metric families, registered once (the contract is the API part of
//! `docs/metrics.md`); `/metrics` encodes them through the `exposition` crate.
//!
//! Counters are registered without `_total`: prometheus-client appends it. Units are part of
//! the names (`_seconds`), not declared with `# UNIT`. The pool gauges are a
//! [`Collector`] reading `pool.status()` on each scrape, so they are never stale and need no
//! background task.

use std::{fmt, time::Duration};

use deadpool_postgres::Pool;
use prometheus_client::{
    collector::Collector,
    encoding::{
        DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
    },
    metrics::{
        counter::Counter, exemplar::HistogramWithExemplars, family::Family, gauge::ConstGauge,
        gauge::Gauge, histogram::Histogram,
    },
    registry::Registry,
};

/// `db_query_duration_seconds` buckets, as the contract lists them.
pub const QUERY_BUCKETS: [f64; 11] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// `db_connection_pool_wait_seconds` buckets: a free connection is handed out in microseconds,
/// so the low end is finer than for queries; the top reaches past any sane wait timeout.
const POOL_WAIT_BUCKETS: [f64; 12] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The closed set of database statements, the `operation` label of `db_query_duration_seconds`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Operation {
    /// `INSERT` of a new item.
    Insert,
    /// `SELECT` of one item by id.
    Select,
    /// `SELECT` of a page of items.
    List,
    /// `UPDATE` (full replacement) of one item.
    Update,
    /// `DELETE` of one item.
    Delete,
    /// `SELECT 1` for `/readyz`.
    Ping,
    /// The start-up schema script.
    Schema,
}

impl Operation {
    /// Every operation, to create each series up front (so rates start at 0, not absent).
    pub const ALL: [Operation; 7] = [
        Self::Insert,
        Self::Select,
        Self::List,
        Self::Update,
        Self::Delete,
        Self::Ping,
        Self::Schema,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Select => "select",
            Self::List => "list",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Ping => "ping",
            Self::Schema => "schema",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EncodeLabelValue for Operation {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), fmt::Error> {
        fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: Operation,
}

/// A `db_query_duration_seconds` exemplar's labels: the sampled request's trace.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TraceLabels {
    trace_id: String,
}

/// A query histogram: a sampled request's statement is its bucket's exemplar.
type QueryHistogram = HistogramWithExemplars<TraceLabels>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

/// Business counters: what happened to items. Only successes count.
#[derive(Clone, Debug, Default)]
pub struct ItemMetrics {
    /// `items_created_total`.
    pub created: Counter,
    /// `items_read_total`: +1 per get by id, +n per list of n.
    pub read: Counter,
    /// `items_updated_total`.
    pub updated: Counter,
    /// `items_deleted_total`.
    pub deleted: Counter,
}

/// Database timings and pool events. Cheap to clone: every field is a shared handle.
#[derive(Clone, Debug)]
pub struct DbMetrics {
    query_duration: Family<OperationLabels, QueryHistogram, fn() -> QueryHistogram>,
    pool_wait: Histogram,
    pool_timeouts: Counter,
}

impl DbMetrics {
    /// Records one statement round trip; with the request's trace id when it is sampled,
    /// which becomes the bucket's exemplar.
    pub fn observe_query(
        &self,
        operation: Operation,
        elapsed: Duration,
        trace: Option<traces::TraceId>,
    ) {
        let exemplar = trace.map(|id| TraceLabels {
            trace_id: id.to_string(),
        });
        let at = exemplar.as_ref().map(|_| std::time::SystemTime::now());
        self.query_duration
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64(), exemplar, at);
    }

    /// Records the time spent waiting for a pooled connection.
    pub fn observe_pool_wait(&self, elapsed: Duration) {
        self.pool_wait.observe(elapsed.as_secs_f64());
    }

    /// Counts a pool timeout (wait, create or recycle).
    pub fn pool_timed_out(&self) {
        self.pool_timeouts.inc();
    }
}

/// Every family the api exposes, registered once.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Item counters, used by the handlers.
    pub items: ItemMetrics,
    /// Database metrics, used by [`crate::db::Db`].
    pub db: DbMetrics,
}

impl Metrics {
    /// Registers every api family into `registry`, including the pool gauges read from `pool`
    /// at scrape time, `api_build_info` and the `process_*` family.
    pub fn register(registry: &mut Registry, pool: &Pool) -> Metrics {
        let items = ItemMetrics::default();
        registry.register("items_created", "Items created", items.created.clone());
        registry.register(
            "items_read",
            "Items returned: +1 per get by id, +n per list of n",
            items.read.clone(),
        );
        registry.register(
            "items_updated",
            "Items replaced by PUT",
            items.updated.clone(),
        );
        registry.register("items_deleted", "Items deleted", items.deleted.clone());

        let db = DbMetrics {
            query_duration: Family::new_with_constructor(|| {
                HistogramWithExemplars::new(QUERY_BUCKETS.into_iter())
            }),
            pool_wait: Histogram::new(POOL_WAIT_BUCKETS),
            pool_timeouts: Counter::default(),
        };
        for operation in Operation::ALL {
            let _series = db
                .query_duration
                .get_or_create(&OperationLabels { operation });
        }
        // Units are spelled in the names rather than declared (`register_with_unit` adds a
        // `# UNIT` line, which some OpenMetrics parsers refuse on histograms).
        registry.register(
            "db_query_duration_seconds",
            "Statement round trip (prepare on first use included), pool wait excluded",
            db.query_duration.clone(),
        );
        registry.register(
            "db_connection_pool_wait_seconds",
            "Time spent waiting for a pooled connection (including opening one)",
            db.pool_wait.clone(),
        );
        registry.register(
            "db_connection_pool_timeouts",
            "Requests that got no connection in time (wait, connect or recycle timeout)",
            db.pool_timeouts.clone(),
        );
        registry.register_collector(Box::new(PoolCollector { pool: pool.clone() }));

        let build_info = Family::<VersionLabels, Gauge>::default();
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register(
            "api_build_info",
            "Build information; the value is always 1",
            build_info,
        );

        process_metrics::register(registry);
        Metrics { items, db }
    }
}

/// The pool gauges, read from deadpool at scrape time.
#[derive(Debug)]
struct PoolCollector {
    pool: Pool,
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let status = self.pool.status();
        let gauges = [
            (
                "db_connection_pool_size",
                "Connections currently open",
                status.size,
            ),
            (
                "db_connection_pool_max",
                "Largest number of connections the pool opens",
                status.max_size,
            ),
            (
                "db_connection_pool_available",
                "Open connections not in use",
                status.available,
            ),
            (
                "db_connection_pool_waiting",
                "Requests waiting for a connection",
                status.waiting,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}
