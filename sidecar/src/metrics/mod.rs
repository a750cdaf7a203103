//! The metric families the proxy records, registered once into the registry: the RED family
//! of the metric contract (`docs/metrics.md`) and the sidecar's own `sidecar_*` counters.
//!
//! - [`shard`]: the RED family's per-request series, one shard per proxy worker (no state
//!   shared between cores on the hot path); [`WorkerMetrics`] is a worker's handle.
//! - [`collector`]: adds the shards up and encodes them when `/metrics` is scraped.
//! - [`otel`]: the same measurements under OpenTelemetry's semantic-convention names
//!   (`[metrics] names = "otel"`), with the status code on the duration.
//! - The rare counters (upstream errors, client aborts, route overflow) are ordinary
//!   prometheus-client families.
//!
//! Every label value comes from a closed set: route templates (or `none`), the standard methods
//! (or `_OTHER`), status classes (or codes), and [`ProxyError`] types.

mod collector;
mod exemplars;
mod otel;
mod shard;

pub(crate) use exemplars::Exemplars;

use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use http::{Method, StatusCode};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, info::Info},
    registry::Registry,
};

use self::{
    collector::RedCollector,
    shard::{Bounds, RouteSeries, Shard, Shards},
};

use crate::{
    config::{MetricNames, MetricsConfig, StatusMode},
    error::ProxyError,
};

/// The teaching stack's `http_request_duration_highr_seconds` bounds, exactly
/// (`docs/metrics.md`).
pub(crate) const HIGHR_BUCKETS: [f64; 21] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0,
    7.5, 10.0, 30.0, 60.0,
];

/// `error_type` of a response body that broke off after its headers were sent.
pub(crate) const BODY_ERROR: &str = "body_error";
/// `error_type` of a response body the upstream stopped sending, past the idle timeout.
pub(crate) const BODY_TIMEOUT: &str = "body_timeout";

/// `handler`, `method`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    handler: Arc<str>,
    method: &'static str,
}

/// `handler`, `method`, `error_type`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ErrorLabels {
    handler: Arc<str>,
    method: &'static str,
    error_type: &'static str,
}

/// The `method` label: upper-case standard methods, everything else `_OTHER`.
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

#[derive(Debug)]
struct Families {
    shards: Arc<Shards>,
    upstream_errors: Family<ErrorLabels, Counter>,
    client_aborts: Family<RouteLabels, Counter>,
    route_overflow: Counter,
    status_mode: StatusMode,
    inprogress_labels: bool,
    names: MetricNames,
}

/// Handles on every family the proxy records; clones share the families.
#[derive(Clone, Debug)]
pub(crate) struct Metrics(Arc<Families>);

/// One proxy worker's handle: its own shard of the RED series, and the shared families.
/// Clones share one allocation per worker, so cloning it (each request's recording holds one,
/// each connection's stack another) touches no count another core writes.
#[derive(Clone, Debug)]
pub(crate) struct WorkerMetrics(Arc<Worker>);

#[derive(Debug)]
struct Worker {
    shard: Arc<Shard>,
    shared: Metrics,
}

/// How one request ended, as the RED layer saw it.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The status sent, or `None` when the client went away before the response headers.
    pub status: Option<StatusCode>,
    /// Why the sidecar made the response itself, if it did.
    pub error: Option<ProxyError>,
    /// The response body broke off after the headers: [`BODY_ERROR`] or [`BODY_TIMEOUT`].
    pub body_error: Option<&'static str>,
    /// From the end of the request headers to the end of the response body.
    pub elapsed: Duration,
    /// Response body bytes sent.
    pub response_bytes: u64,
    /// The request's trace, when it is sampled: its duration becomes a bucket's exemplar.
    pub trace: Option<traces::TraceId>,
}

impl Metrics {
    /// Registers every family into `registry`.
    pub(crate) fn register(registry: &mut Registry, config: &MetricsConfig) -> Self {
        // `http_server_active_requests` is by method: the otel names count per series.
        let inprogress_labels = config.inprogress_labels || config.names == MetricNames::Otel;
        let families = Families {
            shards: Arc::new(Shards::new(Bounds {
                duration: config.duration_buckets.clone().into(),
                size: config.size_buckets.clone().into(),
                highr: Arc::from(HIGHR_BUCKETS),
            })),
            upstream_errors: Family::default(),
            client_aborts: Family::default(),
            route_overflow: Counter::default(),
            status_mode: config.status,
            inprogress_labels,
            names: config.names,
        };
        // http_requests, the duration histograms, in progress and the size histograms.
        registry.register_collector(Box::new(RedCollector {
            shards: families.shards.clone(),
            status_mode: config.status,
            inprogress_labels,
            names: config.names,
        }));
        registry.register(
            "sidecar_upstream_errors",
            "Requests the upstream failed, by error type (the sidecar answered 502/503/504 itself, or the body broke off)",
            families.upstream_errors.clone(),
        );
        registry.register(
            "sidecar_client_aborts",
            "Requests whose client went away before the response headers (not counted in http_requests_total)",
            families.client_aborts.clone(),
        );
        registry.register(
            "sidecar_route_overflow",
            "Requests reported as handler=\"none\" because their template is past metrics.max_handlers",
            families.route_overflow.clone(),
        );
        registry.register(
            "sidecar_build",
            "Sidecar build information",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        Self(Arc::new(families))
    }

    /// Creates the route's error series at 0 (every upstream error type, client aborts), so
    /// a rate over them is 0 before the first failure instead of missing.
    fn zero_fill(&self, handler: &Arc<str>, method: &'static str) {
        let f = &self.0;
        let _ = f.client_aborts.get_or_create(&route(handler, method));
        for error_type in (ProxyError::ALL.iter())
            .filter(|error| error.is_upstream())
            .map(|error| error.error_type())
            .chain([BODY_ERROR, BODY_TIMEOUT])
        {
            let _ = f.upstream_errors.get_or_create(&ErrorLabels {
                handler: handler.clone(),
                method,
                error_type,
            });
        }
    }

    /// The exemplars of every worker's shard, for `/metrics`.
    pub(crate) fn exemplars(&self) -> Exemplars {
        Exemplars(self.0.shards.clone())
    }

    /// A handle for one proxy worker, with a shard of its own.
    pub(crate) fn worker(&self) -> WorkerMetrics {
        WorkerMetrics(Arc::new(Worker {
            shard: self.0.shards.add(),
            shared: self.clone(),
        }))
    }
}

/// One request's series, from [`WorkerMetrics::start`] to [`WorkerMetrics::finish`].
#[derive(Clone, Debug)]
pub(crate) struct Started(Arc<RouteSeries>);

impl Started {
    /// The worker's copy of the `handler` label.
    pub(crate) fn handler(&self) -> &Arc<str> {
        &self.0.handler
    }

    /// The `method` label.
    pub(crate) fn method(&self) -> &'static str {
        self.0.method
    }

    /// Records the request body's size.
    pub(crate) fn request_size(&self, bytes: u64) {
        self.0.request_size.observe(bytes as f64);
    }
}

impl WorkerMetrics {
    /// A request's headers arrived.
    pub(crate) fn start(&self, handler: &str, method: &'static str) -> Started {
        let (series, created) = self.0.shard.route(handler, method);
        if created {
            self.0.shared.zero_fill(&series.handler, method);
        }
        if self.0.shared.0.inprogress_labels {
            series.inprogress.fetch_add(1, Relaxed);
        } else {
            self.0.shard.inprogress.fetch_add(1, Relaxed);
        }
        Started(series)
    }

    /// A request ended (exactly once per [`WorkerMetrics::start`]).
    pub(crate) fn finish(&self, started: &Started, outcome: Outcome) {
        let f = &self.0.shared.0;
        let series = &started.0;
        if f.inprogress_labels {
            series.inprogress.fetch_sub(1, Relaxed);
        } else {
            self.0.shard.inprogress.fetch_sub(1, Relaxed);
        }
        let Some(status) = outcome.status else {
            f.client_aborts
                .get_or_create(&route(&series.handler, series.method))
                .inc();
            return;
        };
        // With the otel names, the duration histogram's count by code is the request count.
        let otel = f.names == MetricNames::Otel;
        match f.status_mode {
            _ if otel => {}
            StatusMode::Grouped => {
                series.classes[usize::from(status.as_u16() / 100 % 10)].fetch_add(1, Relaxed);
            }
            StatusMode::Raw => {
                *series
                    .codes
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(status.as_u16())
                    .or_default() += 1;
            }
        }
        // A 101 (an HTTP/2 client's WebSocket too: `h2_connect`) is counted once, and kept out
        // of the histograms: the connection it opens is not a request, and its lifetime has its
        // own family (`proxy::Tunnels`).
        if status != StatusCode::SWITCHING_PROTOCOLS {
            let seconds = outcome.elapsed.as_secs_f64();
            if otel {
                (series.by_status).observe(status.as_u16(), seconds, outcome.trace);
            } else {
                series.duration.observe(seconds);
                if let Some(trace_id) = outcome.trace {
                    series.exemplars.record(seconds, trace_id);
                }
                self.0.shard.highr.observe(seconds);
            }
            series.response_size.observe(outcome.response_bytes as f64);
        }
        let error_type = match outcome.error {
            Some(error) if error.is_upstream() => Some(error.error_type()),
            _ => outcome.body_error,
        };
        if let Some(error_type) = error_type {
            f.upstream_errors
                .get_or_create(&ErrorLabels {
                    handler: series.handler.clone(),
                    method: series.method,
                    error_type,
                })
                .inc();
        }
    }

    /// A template past the cap was reported as `none`.
    pub(crate) fn route_overflowed(&self) {
        self.0.shared.0.route_overflow.inc();
    }
}

fn route(handler: &Arc<str>, method: &'static str) -> RouteLabels {
    RouteLabels {
        handler: handler.clone(),
        method,
    }
}
