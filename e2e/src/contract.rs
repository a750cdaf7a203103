//! The metric contract as documented (`/work/shared/reference/metrics.md` and the project brief):
//! the static side of the "every metric a panel uses exists" check. The end-to-end test checks
//! the same panels against a real scrape of both processes.

use std::collections::BTreeSet;

/// What kind of family a documented metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Exposed as the name given (counters are listed with their `_total`).
    Plain,
    /// Exposed as `_bucket`, `_sum` and `_count` series.
    Histogram,
}

/// Documented families: (exposed name, kind, who exposes it).
pub const DOCUMENTED: &[(&str, Kind, &str)] = &[
    // Sidecar: the RED family.
    ("http_requests_total", Kind::Plain, "sidecar"),
    ("http_request_duration_seconds", Kind::Histogram, "sidecar"),
    (
        "http_request_duration_highr_seconds",
        Kind::Histogram,
        "sidecar",
    ),
    ("http_requests_inprogress", Kind::Plain, "sidecar"),
    ("http_request_size_bytes", Kind::Histogram, "sidecar"),
    ("http_response_size_bytes", Kind::Histogram, "sidecar"),
    // Sidecar's own.
    ("sidecar_upstream_errors_total", Kind::Plain, "sidecar"),
    ("sidecar_build_info", Kind::Plain, "sidecar"),
    ("sidecar_route_overflow_total", Kind::Plain, "sidecar"),
    // Plugin host, per plugin.
    ("sidecar_plugin_callbacks_total", Kind::Plain, "sidecar"),
    ("sidecar_plugin_faults_total", Kind::Plain, "sidecar"),
    ("sidecar_plugin_reloads_total", Kind::Plain, "sidecar"),
    (
        "sidecar_plugin_callback_duration_seconds",
        Kind::Histogram,
        "sidecar",
    ),
    ("sidecar_plugin_memory_bytes", Kind::Plain, "sidecar"),
    (
        "sidecar_plugin_series_overflow_total",
        Kind::Plain,
        "sidecar",
    ),
    // items-business plugin.
    ("business_items_created_total", Kind::Plain, "sidecar"),
    ("business_revenue_cents_total", Kind::Plain, "sidecar"),
    ("business_item_price_cents", Kind::Histogram, "sidecar"),
    ("business_item_mutations_total", Kind::Plain, "sidecar"),
    // client-slo plugin.
    ("client_requests_total", Kind::Plain, "sidecar"),
    ("latency_slo_requests_total", Kind::Plain, "sidecar"),
    // API.
    ("items_created_total", Kind::Plain, "api"),
    ("items_read_total", Kind::Plain, "api"),
    ("items_updated_total", Kind::Plain, "api"),
    ("items_deleted_total", Kind::Plain, "api"),
    ("db_query_duration_seconds", Kind::Histogram, "api"),
    ("db_connection_pool_size", Kind::Plain, "api"),
    ("db_connection_pool_max", Kind::Plain, "api"),
    ("db_connection_pool_available", Kind::Plain, "api"),
    ("db_connection_pool_waiting", Kind::Plain, "api"),
    ("db_connection_pool_wait_seconds", Kind::Histogram, "api"),
    ("db_connection_pool_timeouts_total", Kind::Plain, "api"),
    ("api_build_info", Kind::Plain, "api"),
    // Process metrics ("welcome on both processes").
    ("process_cpu_seconds_total", Kind::Plain, "api,sidecar"),
    ("process_resident_memory_bytes", Kind::Plain, "api,sidecar"),
];

/// Documented families that have no series (and so, with prometheus-client, no `# TYPE` line
/// either) until an event happens that a healthy stack under normal traffic never produces.
/// The e2e test accepts their absence from a scrape; promtool tests cover the rules reading them,
/// and the sidecar's own tests cover the events.
pub const EVENT_ONLY: &[(&str, &str)] = &[(
    "sidecar_plugin_faults_total",
    "counted only when a plugin traps, overruns its deadline or memory, or fails to instantiate",
)];

/// Series Prometheus itself writes for every target or alert (not exported by our processes).
pub const PROMETHEUS_SYNTHETIC: &[&str] = &[
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_series_added",
    "ALERTS",
    "ALERTS_FOR_STATE",
];

/// The seed's PromQL (metrics.md, "must return data against a running stack under traffic").
/// Every one must appear verbatim in a dashboard panel, and return data in the e2e test.
pub const SEED_QUERIES: &[&str] = &[
    "sum(rate(http_requests_total[5m]))",
    "sum(rate(http_requests_total[5m])) by (handler)",
    "histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m]))",
    r#"(sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))) * 100"#,
    "http_requests_inprogress",
    "rate(items_created_total[5m])",
    "rate(items_read_total[5m])",
    "rate(items_updated_total[5m])",
    "rate(items_deleted_total[5m])",
    "histogram_quantile(0.95, rate(db_query_duration_seconds_bucket[1m]))",
    "rate(db_query_duration_seconds_bucket[1m])",
    r#"sum(rate(db_query_duration_seconds_bucket{le="0.1"}[5m]))"#,
    "db_connection_pool_size",
    "sum(http_requests_total) by (method)",
];

/// Every series name the documented families expose (histograms expanded).
pub fn documented_series() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (name, kind, _) in DOCUMENTED {
        match kind {
            Kind::Plain => {
                out.insert((*name).to_owned());
            }
            Kind::Histogram => {
                for s in ["_bucket", "_sum", "_count"] {
                    out.insert(format!("{name}{s}"));
                }
            }
        }
    }
    out
}
