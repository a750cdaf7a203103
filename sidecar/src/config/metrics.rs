//! The `[metrics]` section: how the RED metrics are named (the contract's names, or the
//! OpenTelemetry semantic conventions') and labelled (grouped or raw status, labels of the
//! in-progress gauge, the cap on distinct handlers) and their histogram buckets, defaulting to
//! the metric contract's.

use serde::Deserialize;

/// `[metrics]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MetricsConfig {
    /// `prometheus` (the contract's families) or `otel` (the semantic conventions').
    pub names: MetricNames,
    /// `grouped` (`2xx`, as the teaching stack) or `raw` (`200`).
    pub status: StatusMode,
    /// Give `http_requests_inprogress` the `handler` and `method` labels.
    pub inprogress_labels: bool,
    /// Most distinct `handler` values; templates past it report `none` and count an overflow.
    pub max_handlers: usize,
    /// Buckets of `http_request_duration_seconds`, in seconds.
    pub duration_buckets: Vec<f64>,
    /// Buckets of the request and response size histograms, in bytes.
    pub size_buckets: Vec<f64>,
}

/// Which names the RED families are exposed under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MetricNames {
    /// The metric contract's (`http_requests_total`, `http_request_duration_seconds{handler,method}`,
    /// ...), which the shipped dashboards and rules read.
    Prometheus,
    /// OpenTelemetry's HTTP server semantic conventions as Prometheus names:
    /// `http_server_request_duration_seconds{http_route,http_request_method,http_response_status_code}`
    /// and `http_server_active_requests{http_request_method}`.
    Otel,
}

/// How the `status` label is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StatusMode {
    /// `1xx` .. `5xx`.
    Grouped,
    /// The three-digit code.
    Raw,
}

/// The contract's buckets (`docs/metrics.md`; OTel's, a superset of the teaching stack's
/// 0.1/0.5/1).
pub(crate) const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            names: MetricNames::Prometheus,
            status: StatusMode::Grouped,
            inprogress_labels: false,
            max_handlers: 200,
            duration_buckets: DURATION_BUCKETS.to_vec(),
            size_buckets: vec![
                0.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
            ],
        }
    }
}
